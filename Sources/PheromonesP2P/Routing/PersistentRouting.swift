import Pheromones
import PheromonesNoise

/// Persistent mode (the original's `PRouter`): one kept connection per route, dialed when the
/// application adds the route (or when a message is sent to a route that is down) and identified
/// by the peer's hello; every message that arrives goes to the protocol, so a conversation runs by
/// itself.
struct PersistentRouting: RoutingMode {
    var connectionType: ConnectionType { .persistent }

    func acceptedStage(in core: NodeCore) -> RouterStage {
        core.makeStage(PersistentStage.self, dialedAddress: nil, facts: ConnectionFacts(direction: .inbound, generation: 0))
    }

    /// Dials, and completes once the peer has identified itself (a connected route is replaced by
    /// the new connection, after a hand-over).
    func add(name: String, address: SocketAddress, pin: PeerID?, in core: NodeCore) -> Future<Void> {
        core.dialAndWaitForIdentity(name: name, address: address, pin: pin)
    }

    /// Binds the connection `stage` to the route, as the original's `AddRoute(name, conn)`.
    func addRoute(name: String, address: SocketAddress, over stage: RouterStage?, in core: NodeCore) throws(P2PError) {
        guard let stage = stage as? PersistentStage, !stage.isClosed else {
            throw .wrongAddressKind("there is no connection to bind to \(address): the message did not come over a persistent connection")
        }
        try core.bind(stage, toRoute: name, at: address)
    }

    func send(_ outgoing: Outgoing, to address: SocketAddress, in core: NodeCore) {
        core.submit(outgoing, to: address)
    }

    /// The routes a connection carries.
    func reachesByDefault(_ route: RouteTable.Route, in table: RouteTable) -> Bool {
        table.isConnected(route.address)
    }
}
