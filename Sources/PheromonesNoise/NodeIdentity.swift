import Crypto

/// A node's long-term identity: an Ed25519 key pair. Its public key names the node
/// (``peerID``); its private key signs the node's Noise static keys, which is how a handshake
/// proves the node is who its peer id says.
///
/// Keep the private key in a file with ``IdentityFile``.
public struct NodeIdentity: Sendable {
    /// The length of the private key's seed (all an Ed25519 private key is made from).
    public static let seedLength = 32

    /// The private key.
    public let privateKey: Curve25519.Signing.PrivateKey
    /// The public key, which the peer id is derived from.
    public var publicKey: Curve25519.Signing.PublicKey { privateKey.publicKey }
    /// The node's peer id (computed once).
    public let peerID: PeerID

    /// A new identity with a random key.
    public init() {
        self.init(privateKey: Curve25519.Signing.PrivateKey())
    }

    /// The identity of `privateKey`.
    public init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
        self.peerID = PeerID(publicKey: privateKey.publicKey)
    }

    /// The identity whose private key is made from the 32-byte `seed`.
    ///
    /// - Throws: ``IdentityError/invalidKey(_:)`` when `seed` is not 32 bytes.
    public init(seed: [UInt8]) throws(IdentityError) {
        guard seed.count == Self.seedLength else {
            throw .invalidKey("an Ed25519 seed is \(Self.seedLength) bytes, not \(seed.count)")
        }
        do {
            self.init(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
        } catch {
            throw .invalidKey("\(error)")
        }
    }

    /// The 32-byte seed the private key is made from (what ``IdentityFile`` stores).
    public var seed: [UInt8] { Array(privateKey.rawRepresentation) }

    /// The signature of `message` by the private key.
    ///
    /// - Throws: ``NoiseError/cryptographicFailure(_:)`` if the signing primitive fails.
    func signature(for message: [UInt8]) throws(NoiseError) -> [UInt8] {
        do {
            return Array(try privateKey.signature(for: message))
        } catch {
            throw .cryptographicFailure("signing failed: \(error)")
        }
    }
}
