/// Why a Noise connection failed. Each closes only its own connection.
public enum NoiseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The handshake did not complete within ``NoiseConfiguration/handshakeTimeout``.
    case handshakeTimedOut
    /// The peer closed the connection (or ended its input) before the handshake completed.
    case closedDuringHandshake
    /// A handshake message announced more bytes than a message of its step may carry.
    case handshakeMessageTooLarge(length: Int, limit: Int)
    /// A handshake message is shorter or longer than its step requires, or otherwise not the
    /// message expected; the text says which.
    case malformedHandshakeMessage(String)
    /// A message (handshake or transport) failed authentication: tampered with, truncated, out of
    /// order, or encrypted with another key. Never skipped: the connection closes.
    case decryptionFailed
    /// The peer's handshake payload has a version this implementation does not speak.
    case unsupportedPayloadVersion(UInt8)
    /// The peer's handshake payload is not laid out as its version requires; the text says how.
    case malformedPayload(String)
    /// The peer's identity key did not sign its Noise static key: it does not hold the identity it
    /// presents.
    case invalidSignature
    /// The remote peer proved an identity other than the one expected
    /// (``NoiseConfiguration/expectedPeer``).
    case unexpectedPeer(expected: PeerID, actual: PeerID)
    /// A key the peer sent cannot be used (a low-order Curve25519 point, say).
    case invalidKey(String)
    /// A cipher's nonce reached 2^64−1: the connection closes rather than reuse or wrap a nonce.
    case nonceExhausted
    /// The peer ended the stream in the middle of a transport message.
    case truncatedMessage
    /// Writes made before the handshake completed exceed ``NoiseConfiguration/maximumQueuedBytes``.
    case writeQueueFull(limit: Int)
    /// A local cryptographic operation failed (signing, encryption); the text is the reason.
    case cryptographicFailure(String)
    /// The handshake was driven out of its order (a message written or read at the wrong step).
    case invalidHandshakeState(String)

    /// One line, for logs.
    public var description: String {
        switch self {
        case .handshakeTimedOut: return "Noise handshake timed out"
        case .closedDuringHandshake: return "the peer closed the connection during the Noise handshake"
        case .handshakeMessageTooLarge(let length, let limit):
            return "Noise handshake message of \(length) bytes exceeds the limit of \(limit)"
        case .malformedHandshakeMessage(let reason): return "malformed Noise handshake message: \(reason)"
        case .decryptionFailed: return "a Noise message failed to decrypt (tampered, truncated or out of order)"
        case .unsupportedPayloadVersion(let version): return "unsupported Noise handshake payload version \(version)"
        case .malformedPayload(let reason): return "malformed Noise handshake payload: \(reason)"
        case .invalidSignature: return "the peer's identity key did not sign its Noise static key"
        case .unexpectedPeer(let expected, let actual): return "expected peer \(expected), but the remote peer is \(actual)"
        case .invalidKey(let reason): return "unusable Noise key: \(reason)"
        case .nonceExhausted: return "Noise nonce exhausted: the connection must close"
        case .truncatedMessage: return "the peer ended the stream in the middle of a Noise message"
        case .writeQueueFull(let limit): return "more than \(limit) bytes written before the Noise handshake completed"
        case .cryptographicFailure(let reason): return "Noise cryptographic failure: \(reason)"
        case .invalidHandshakeState(let reason): return "Noise handshake driven out of order: \(reason)"
        }
    }
}
