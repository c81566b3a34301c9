import COpenSSL

/// What a ``TLSHandler`` tells the stages after it, as a user inbound event.
public enum TLSEvent: Sendable {
    /// The handshake completed: application data flows from now on.
    case handshakeCompleted(TLSHandshakeResult)
}

/// What a completed handshake agreed on.
public struct TLSHandshakeResult: Sendable {
    /// The protocol version.
    public var version: TLSConfiguration.Version?
    /// The cipher suite's OpenSSL name.
    public var cipherSuite: String
    /// The application protocol ALPN chose, if any.
    public var negotiatedProtocol: String?
    /// The peer's certificate, if it sent one.
    public var peerCertificate: TLSCertificate?
    /// Whether a previous session was resumed (no full handshake).
    public var isResumed: Bool

    /// Reads the result of `ssl`'s completed handshake.
    init(ssl: OpaquePointer) {
        switch SSL_version(ssl) {
        case pheromones_TLS1_3_VERSION: version = .tlsv13
        case pheromones_TLS1_2_VERSION: version = .tlsv12
        default: version = nil
        }
        cipherSuite = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? ""
        var selected: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &selected, &length)
        negotiatedProtocol = selected.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self) }
        peerCertificate = SSL_get1_peer_certificate(ssl).map { TLSCertificate(taking: $0) }
        isResumed = SSL_session_reused(ssl) == 1
    }
}
