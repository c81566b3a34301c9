import Pheromones
import PheromonesNoise

/// Whether the native wire runs inside Noise (``Node/Configuration/security``).
///
/// The JSON wire, the Go original's, is always plaintext and unauthenticated, whatever this says:
/// Go nodes speak it in the clear (see Docs/Security.md).
public enum WireSecurity: String, Sendable, Hashable, CaseIterable {
    /// The native wire inside `Noise_XX_25519_ChaChaPoly_SHA256` (Docs/Noise.md): every connection
    /// proves both ends' identities and is encrypted, and routes are bound to peer ids (default).
    case noise
    /// The native wire in the clear, as before Noise: a peer is whoever its hello says it is.
    /// For trusted networks and for peers that predate Noise.
    case insecure
}

extension Node.Configuration {
    /// What secures this configuration's connections: the one place the wire and the security
    /// choice are mapped to a type (the JSON wire is always plaintext).
    ///
    /// - Throws: ``P2PError/unknownProtocol(_:)`` if the identity cannot sign its Noise static key.
    func transportSecurity() throws(P2PError) -> any TransportSecurity {
        guard wire == .native, security == .noise else { return PlaintextTransport() }
        do {
            // No timer of Noise's own: the router's handshake timer (``handshakeTimeout``) already
            // bounds the whole opening, Noise handshake and hello, and reports it as a
            // ``ConnectionTimeout/handshake`` like any other.
            return NoiseTransport(configuration: try NoiseConfiguration(identity: identity, handshakeTimeout: .zero))
        } catch {
            throw .unknownProtocol("the node's identity cannot sign its Noise key: \(error)")
        }
    }
}
