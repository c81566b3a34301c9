import Pheromones
import PheromonesNoise

/// The native wire inside Noise: a ``NoiseHandler`` first in every pipeline (initiator on the
/// connections this node dials, responder on those it accepts), so that what the stages above it
/// read and write is the plaintext of an authenticated, encrypted session.
///
/// The handler reports the peer's proven id (``NoiseEvent/handshakeCompleted(_:)``) before any
/// plaintext; the router stage takes it from there (policies, pinning, the hello's check).
struct NoiseTransport: TransportSecurity {
    /// The node's Noise configuration: its identity and static key, shared by its connections.
    let configuration: NoiseConfiguration

    func stages(direction: ConnectionDirection) -> [any ChannelHandler] {
        switch direction {
        case .outbound: return [NoiseHandler(initiatorWith: configuration)]
        case .inbound: return [NoiseHandler(responderWith: configuration)]
        }
    }

    var localPeerID: PeerID? { configuration.identity.peerID }

    /// A hello is taken only inside a session whose handshake has completed, and only when it names
    /// the peer id that session proved: a peer cannot speak for another.
    func check(_ hello: ControlMessage.Hello, provenPeer: PeerID?) throws(P2PError) {
        guard let provenPeer, hello.peerID == provenPeer else {
            throw .forgedHello(claimed: hello.peerID, proven: provenPeer)
        }
    }
}
