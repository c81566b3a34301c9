import Pheromones
import PheromonesNoise

/// What secures a node's connections, below the wire: one type per choice (``NoiseTransport``,
/// ``PlaintextTransport``), made in one place (``Node/Configuration/transportSecurity()``), so
/// that no stage asks "is this connection secure?".
///
/// The stages above it see the same envelopes either way; what differs is what goes first in the
/// pipeline, what a hello must say, and whether a connection proves a peer id that routes are
/// bound to.
protocol TransportSecurity: Sendable {
    /// The stages that go first, next to the socket, on a connection this node dialed
    /// (`direction` ``ConnectionDirection/outbound``) or accepted.
    func stages(direction: ConnectionDirection) -> [any ChannelHandler]

    /// This node's peer id, which its hellos carry; nil when connections prove nothing.
    var localPeerID: PeerID? { get }

    /// Checks `hello` against the peer id the connection proved (nil: none proved yet).
    ///
    /// - Throws: ``P2PError/forgedHello(claimed:proven:)`` when they disagree, or when the hello
    ///   comes before the handshake has proved anything.
    func check(_ hello: ControlMessage.Hello, provenPeer: PeerID?) throws(P2PError)
}

extension TransportSecurity {
    /// Whether connections prove who their peer is (routes are then bound to peer ids).
    var authenticatesPeers: Bool { localPeerID != nil }
}
