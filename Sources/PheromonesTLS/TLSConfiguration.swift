import Pheromones

/// What a ``TLSContext`` is made of: the protocol versions, ciphers, identity, trust, client
/// authentication, ALPN, resumption and the handshake timeout. The defaults are safe for a client
/// on the internet: TLS 1.2 or 1.3 (1.3 whenever the peer can), OpenSSL's default ciphers, the
/// system's trust store, full certificate and host name verification, resumption on.
public struct TLSConfiguration: Sendable {
    /// A TLS protocol version.
    public enum Version: Sendable, Hashable, Comparable {
        case tlsv12
        case tlsv13
    }

    /// Which certificate authorities a peer's certificate may lead to.
    public enum TrustRoots: Sendable {
        /// The operating system's store (OpenSSL's default paths: `/etc/ssl/certs` on Debian).
        case system
        /// Only these.
        case certificates([TLSCertificate])
        /// Those of a PEM file.
        case file(String)
    }

    /// How much of the peer's certificate is checked.
    public enum CertificateVerification: Sendable, Hashable {
        /// Nothing (tests only: anyone can then impersonate the peer).
        case none
        /// The chain leads to a trusted root; the name is not checked.
        case noHostnameVerification
        /// The chain leads to a trusted root and (client side) names the host dialed.
        case fullVerification
    }

    /// Whether a server asks its clients for a certificate (mutual TLS).
    public enum ClientAuthentication: Sendable, Hashable {
        /// It does not ask.
        case none
        /// It asks; a client may send none, but one it sends must verify.
        case optional
        /// A client must send one, and it must verify.
        case required
    }

    /// The oldest version accepted. Default: TLS 1.2.
    public var minimumVersion: Version = .tlsv12
    /// The newest version offered. Default: TLS 1.3.
    public var maximumVersion: Version = .tlsv13
    /// The TLS 1.2 cipher list, in OpenSSL's syntax (nil: OpenSSL's default).
    public var cipherList: String?
    /// The TLS 1.3 cipher suites, in OpenSSL's syntax (nil: OpenSSL's default).
    public var cipherSuites: String?
    /// What this side proves itself with: required for a server, optional for a client (mutual TLS).
    public var identity: TLSIdentity?
    /// Server side: identities picked by the server name a client asks for (SNI), case-insensitive;
    /// ``identity`` serves the others.
    public var identitiesByServerName: [String: TLSIdentity] = [:]
    /// Whose certificates are trusted.
    public var trustRoots: TrustRoots = .system
    /// How the peer's certificate is checked (for a server: a client's, when it sends one).
    public var certificateVerification: CertificateVerification = .fullVerification
    /// Server side: whether clients must prove themselves.
    public var clientAuthentication: ClientAuthentication = .none
    /// ALPN: the application protocols this side speaks, preferred first (empty: no ALPN).
    public var applicationProtocols: [String] = []
    /// Whether sessions are resumed with tickets (a client offers the last session it got from
    /// the same server name; a server issues tickets).
    public var sessionResumption = true
    /// How long a handshake may take once the connection is up; zero or less: no limit.
    public var handshakeTimeout: TimeAmount = .seconds(10)

    /// A client configuration with the defaults.
    public static func makeClientConfiguration() -> TLSConfiguration {
        TLSConfiguration()
    }

    /// A server configuration proving itself with `identity`; clients are not asked for certificates.
    public static func makeServerConfiguration(identity: TLSIdentity) -> TLSConfiguration {
        var configuration = TLSConfiguration()
        configuration.identity = identity
        return configuration
    }

    /// Creates a configuration with the defaults.
    public init() {}
}
