import Crypto

/// A peer's identity as others name it: the SHA-256 digest of its raw 32-byte Ed25519 identity
/// public key. It cannot be claimed, only proven: the Noise handshake (``NoiseHandler``) shows the
/// key and a signature made with it.
///
/// Printed as `ph1` followed by the 32 digest bytes in lowercase base32 without padding (55
/// characters in all), e.g. `ph1` + 52 characters of `a`–`z`, `2`–`7`; ``short`` is the first 11
/// characters, for logs.
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    /// What every printable peer id starts with (the `1` is the format's version).
    public static let prefix = "ph1"
    /// The length of the digest.
    public static let byteCount = 32
    /// The length of the printable form.
    static let printableLength = prefix.utf8.count + (byteCount * 8 + 4) / 5

    /// The 32 bytes of the digest.
    public let bytes: [UInt8]

    /// The peer id of `publicKey`.
    public init(publicKey: Curve25519.Signing.PublicKey) {
        bytes = Array(SHA256.hash(data: publicKey.rawRepresentation))
    }

    /// Parses the printable form (``description``); case does not matter.
    ///
    /// - Throws: ``IdentityError/invalidPeerID(_:)`` naming what is wrong.
    public init(_ text: String) throws(IdentityError) {
        let lowercased = text.lowercased()
        guard lowercased.hasPrefix(Self.prefix) else {
            throw .invalidPeerID("it does not start with '\(Self.prefix)'")
        }
        guard lowercased.utf8.count == Self.printableLength else {
            throw .invalidPeerID("it has \(lowercased.utf8.count) characters, not \(Self.printableLength)")
        }
        guard let digest = Base32.decode(lowercased.dropFirst(Self.prefix.count)),
              digest.count == Self.byteCount
        else {
            throw .invalidPeerID("it is not base32 (a-z, 2-7) of \(Self.byteCount) bytes")
        }
        bytes = digest
    }

    /// The printable form: `ph1` and the digest in lowercase base32.
    public var description: String { Self.prefix + Base32.encode(bytes) }

    /// The first 11 characters of the printable form (40 bits of the digest): enough to tell peers
    /// apart in a log, not to identify one securely.
    public var short: String { String(description.prefix(Self.prefix.count + 8)) }
}
