import Crypto
import Pheromones

/// How a ``NoiseHandler`` authenticates itself and its peer, and its limits.
///
/// Make one per node and share it between connections: it holds the node's Noise static key
/// (X25519, made when the configuration is) and the handshake payload that proves the identity
/// holds it, signed once rather than per connection. Forward secrecy comes from the ephemeral
/// keys, new for every handshake.
public struct NoiseConfiguration: Sendable {
    /// The prologue both sides mix into the handshake hash: ASCII `pheromones-noise/1`. A peer
    /// using another one (another protocol, or another version of this one) fails the handshake.
    public static let prologue = Array("pheromones-noise/1".utf8)

    /// The node's identity, which the handshake proves.
    public let identity: NodeIdentity
    /// How long the handshake may take before the connection is closed with
    /// ``NoiseError/handshakeTimedOut``. Default: 10 seconds; zero or less: no limit.
    public var handshakeTimeout: TimeAmount
    /// How many plaintext bytes may be written before the handshake completes; writes beyond fail
    /// with ``NoiseError/writeQueueFull(limit:)``. Default: 1 MiB.
    public var maximumQueuedBytes: Int
    /// The only peer this side accepts, when set: a different remote peer id fails the handshake
    /// with ``NoiseError/unexpectedPeer(expected:actual:)`` (meant for the initiator, which knows
    /// whom it dials). Default: nil, any peer that proves its identity.
    public var expectedPeer: PeerID?

    /// The Noise static key pair.
    package let staticKey: Curve25519.KeyAgreement.PrivateKey
    /// The handshake payload: `identity`'s proof that it holds `staticKey`.
    package let payload: [UInt8]

    /// A configuration for `identity`, with a new static key.
    ///
    /// - Throws: ``NoiseError/cryptographicFailure(_:)`` if the static key cannot be signed.
    public init(
        identity: NodeIdentity, handshakeTimeout: TimeAmount = .seconds(10), maximumQueuedBytes: Int = 1 << 20,
        expectedPeer: PeerID? = nil
    ) throws(NoiseError) {
        try self.init(identity: identity, staticKey: .init(), handshakeTimeout: handshakeTimeout, maximumQueuedBytes: maximumQueuedBytes, expectedPeer: expectedPeer)
    }

    /// A configuration with a given static key (known-answer tests).
    package init(
        identity: NodeIdentity, staticKey: Curve25519.KeyAgreement.PrivateKey, handshakeTimeout: TimeAmount = .seconds(10),
        maximumQueuedBytes: Int = 1 << 20, expectedPeer: PeerID? = nil
    ) throws(NoiseError) {
        self.identity = identity
        self.staticKey = staticKey
        self.payload = try HandshakePayload(identity: identity, staticKey: staticKey.publicKey).encoded
        self.handshakeTimeout = handshakeTimeout
        self.maximumQueuedBytes = maximumQueuedBytes
        self.expectedPeer = expectedPeer
    }
}
