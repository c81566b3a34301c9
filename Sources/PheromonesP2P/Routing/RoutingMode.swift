import Pheromones
import PheromonesNoise

/// How a node reaches its routes: one type per mode (``ShortRouting``, the original's `SRouter`;
/// ``PersistentRouting``, its `PRouter`), so that a new mode is one new type.
///
/// The ``NodeCore`` owns the listener, the route table and the connections, and asks its mode
/// wherever the modes differ: which stage an accepted connection gets, what adding a route does,
/// how a message the node starts reaches a route, and which routes a fan-out reaches by default.
/// A mode holds no state of its own; it runs on the node's loop.
protocol RoutingMode: Sendable {
    /// The ``ConnectionType`` this mode implements (what ``PeerContext/connectionType`` tells the protocol).
    var connectionType: ConnectionType { get }

    /// The router stage of a connection the node's server accepted.
    func acceptedStage(in core: NodeCore) -> RouterStage

    /// The application adds the route `name` at `address` (``Node/add(peer:address:)``): the route
    /// is pinned (and with `pin`, so is the peer id it must prove); the future completes when it
    /// can be used.
    func add(name: String, address: SocketAddress, pin: PeerID?, in core: NodeCore) -> Future<Void>

    /// The protocol adds the route `name` at `address`
    /// (``PeerContext/addRoute(name:address:)-(String,String)``), handling a message that came
    /// over `stage` (nil outside a connection).
    func addRoute(name: String, address: SocketAddress, over stage: RouterStage?, in core: NodeCore) throws(P2PError)

    /// Sends what the node starts (a dispatch, a conversation, a broadcast) to the route at `address`.
    func send(_ outgoing: Outgoing, to address: SocketAddress, in core: NodeCore)

    /// Whether a fan-out to the ``Recipients/connected`` routes reaches `route`.
    func reachesByDefault(_ route: RouteTable.Route, in table: RouteTable) -> Bool
}

extension ConnectionType {
    /// The mode that implements this connection type: the one place a ``ConnectionType`` is mapped
    /// to its type.
    var routing: any RoutingMode {
        switch self {
        case .short: return ShortRouting()
        case .persistent: return PersistentRouting()
        }
    }
}

/// A message the node starts, waiting for its route's connection, and what to tell its sender.
enum Outgoing {
    case dispatch(Envelope, Promise<Envelope?>)
    case conversation(Envelope, Conversation)
    /// A broadcast, and who chose its id (this node, or the peer that started it).
    case oneWay(Envelope, IDAllocator)

    func send(on stage: PersistentStage) {
        switch self {
        case .dispatch(let message, let reply): stage.dispatch(message, reply: reply)
        case .conversation(let message, let conversation): stage.start(conversation, with: message)
        case .oneWay(let message, let allocator): stage.sendOneWay(message, idChosenBy: allocator)
        }
    }

    func fail(_ error: P2PError) {
        switch self {
        case .dispatch(_, let reply): reply.fail(error)
        case .conversation(_, let conversation): conversation.fail(error)
        case .oneWay: break
        }
    }
}
