import Crypto

/// What a ``NoiseHandler`` tells the stages after it, as a user inbound event.
public enum NoiseEvent: Sendable {
    /// The handshake completed: the peer proved the identity in the result. Fired once, before
    /// any plaintext is delivered.
    case handshakeCompleted(NoiseHandshakeResult)
}

/// Who the peer of a completed handshake is.
public struct NoiseHandshakeResult: Sendable {
    /// The peer's id, derived from the identity key it proved it holds.
    public let remotePeerID: PeerID
    /// The peer's Ed25519 identity public key.
    public let remoteIdentityKey: Curve25519.Signing.PublicKey
    /// The Noise handshake hash: the same on both sides, unique to this session (for channel
    /// binding).
    public let handshakeHash: [UInt8]
}
