import Pheromones
import PheromonesNoise

/// Connections in the clear: the JSON wire (always), and the native wire with
/// ``WireSecurity/insecure``. Nothing is proven: a peer is whoever its hello (or greeting) says.
struct PlaintextTransport: TransportSecurity {
    func stages(direction: ConnectionDirection) -> [any ChannelHandler] { [] }

    var localPeerID: PeerID? { nil }

    /// A plaintext hello carries no peer id; one that claims an id (or arrives on a connection
    /// that proved one, which cannot happen here) claims what nothing can check.
    func check(_ hello: ControlMessage.Hello, provenPeer: PeerID?) throws(P2PError) {
        guard hello.peerID == nil, provenPeer == nil else {
            throw .forgedHello(claimed: hello.peerID, proven: provenPeer)
        }
    }
}
