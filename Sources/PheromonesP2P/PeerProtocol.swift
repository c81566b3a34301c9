import Pheromones

/// How a node talks to its peers: the original's two routers.
public enum ConnectionType: String, Sendable, Hashable, CaseIterable {
    /// A connection per message: dial, send, read one reply, close (the original's `SRouter`).
    /// A conversation is a loop of dispatches driven by the caller.
    case short
    /// One kept connection per peer (the original's `PRouter`): every message that arrives goes to
    /// the protocol and its answer is written back, so a conversation runs by itself.
    case persistent
}

/// A protocol run on the node's event loop: the fast path.
///
/// The node calls ``handle(_:context:)`` on its loop for every message a peer sends, in order per
/// connection, and writes back the envelope it returns; returning nil answers nothing (in
/// persistent mode the conversation is then over). The object is confined to the loop: the node
/// takes it over (`sending`) and never shares it, so it needs no locks. Never block in it; a
/// protocol that must wait for something conforms to ``AsyncPeerProtocol`` instead.
///
/// This is the Go original's `Protocal.Handle(conn, msg) ([]byte, error)`; a thrown error is
/// logged and answered with nothing. (`SendableMetatype`: a conformance may not be isolated to an
/// actor, because the node calls it on its loop.)
public protocol PeerProtocol: AnyObject, SendableMetatype {
    /// Answers `message`, or returns nil to answer nothing.
    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope?

    /// Answers a message that arrived whole but is not an envelope (only the JSON wire can deliver
    /// one: a well-framed object with wrong fields); the default answers nothing.
    func handleMalformedMessage(_ error: WireError, context: PeerContext) throws -> Envelope?
}

extension PeerProtocol {
    /// Answers nothing.
    public func handleMalformedMessage(_ error: WireError, context: PeerContext) throws -> Envelope? { nil }
}

/// A protocol that awaits (a database, another peer) before it answers.
///
/// The node awaits ``handle(_:context:)`` off the loop and writes the answer on the loop when it
/// comes. Messages of one connection are still handled one at a time, in order; connections do not
/// wait for each other.
public protocol AsyncPeerProtocol: Sendable {
    /// Answers `message`, or returns nil to answer nothing.
    func handle(_ message: Envelope, context: PeerContext) async throws -> Envelope?

    /// Answers a message that arrived whole but is not an envelope (see
    /// ``PeerProtocol/handleMalformedMessage(_:context:)``); the default answers nothing.
    func handleMalformedMessage(_ error: WireError, context: PeerContext) async throws -> Envelope?
}

extension AsyncPeerProtocol {
    /// Answers nothing.
    public func handleMalformedMessage(_ error: WireError, context: PeerContext) async throws -> Envelope? { nil }
}

/// The user's protocol in the form the stages call it.
enum ProtocolHandler {
    case onLoop(any PeerProtocol)
    case async(any AsyncPeerProtocol)
}

/// Who sent a message, over what, and what the protocol may do about it.
///
/// Handed to the protocol with each message. Its ``addRoute(name:address:)-(String,String)``
/// (like the original's `Router.AddRoute`) must be called on the node's loop, which is where
/// ``PeerProtocol`` runs; ``AsyncPeerProtocol`` code uses the `async` form, which hops there.
public struct PeerContext: Sendable {
    /// The name of the node the protocol runs in (the original's `HostName`).
    public let localName: String
    /// The name the message carries: who says they sent it. Empty for a malformed message.
    public let sender: String
    /// The address of the other end of the connection (for an inbound connection, an ephemeral
    /// port, not where the peer listens).
    public let remoteAddress: SocketAddress?
    /// The listening address of the route the message came over, once the connection is bound to
    /// one (nil for an anonymous connection, such as a short-mode request).
    public let peerAddress: SocketAddress?
    /// The router the message came over.
    public let connectionType: ConnectionType
    /// The node, to send to other peers (nil when the protocol runs in a stand-alone
    /// ``ProtocolStage``).
    public let node: Node?
    let routes: RouteRegistrar

    init(
        localName: String, sender: String, remoteAddress: SocketAddress?, peerAddress: SocketAddress?,
        connectionType: ConnectionType, node: Node?, routes: RouteRegistrar
    ) {
        self.localName = localName
        self.sender = sender
        self.remoteAddress = remoteAddress
        self.peerAddress = peerAddress
        self.connectionType = connectionType
        self.node = node
        self.routes = routes
    }

    /// Adds a route to `name`, whose server listens on `address` (`ip:port`). Call on the node's loop.
    ///
    /// Short mode: adds the address to the route table. Persistent mode: binds the connection this
    /// message came over to the route keyed by `address`, as the original's `AddRoute(name, conn)`.
    ///
    /// - Throws: ``P2PError/emptyAddress``, ``P2PError/wrongAddressKind(_:)`` (not a numeric
    ///   `ip:port`, or no connection to bind), ``P2PError/routeExists(name:address:)``.
    public func addRoute(name: String, address: String) throws(P2PError) {
        try routes.addRoute(name: name, address: Self.parse(address))
    }

    /// Adds a route from async code, hopping to the node's loop (see
    /// ``addRoute(name:address:)-(String,String)``).
    public func addRoute(name: String, address: String) async throws {
        try await routes.addRouteFromAnywhere(name: name, address: Self.parse(address))
    }

    static func parse(_ address: String) throws(P2PError) -> SocketAddress {
        guard !address.isEmpty else { throw .emptyAddress }
        do {
            return try SocketAddress(parsing: address)
        } catch {
            throw .wrongAddressKind("'\(address)' is not a numeric ip:port (\(error))")
        }
    }
}

/// Where a ``PeerContext``'s routes go: a node's route table (bound to the message's connection),
/// or a stand-alone stage's hook.
enum RouteRegistrar: Sendable {
    /// A node's table; `connection` is the stage of the connection the message came over.
    case node(LoopBound<NodeCore>, connection: LoopBound<RouterStage>?)
    /// A stand-alone stage: calls the hook (if any).
    case hook((@Sendable (String, SocketAddress) throws(P2PError) -> Void)?)

    func addRoute(name: String, address: SocketAddress) throws(P2PError) {
        switch self {
        case .node(let core, let connection):
            try core.value.addRoute(name: name, address: address, over: connection?.value)
        case .hook(let hook):
            try hook?(name, address)
        }
    }

    func addRouteFromAnywhere(name: String, address: SocketAddress) async throws {
        switch self {
        case .node(let core, let connection):
            try await core.eventLoop.submit {
                try core.value.addRoute(name: name, address: address, over: connection?.value)
            }.get()
        case .hook(let hook):
            try hook?(name, address)
        }
    }
}
