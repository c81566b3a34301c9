import CoreMetrics
import Logging
import Pheromones
import PheromonesNoise
import Synchronization

/// A peer-to-peer node: a server, a route table, connections and a protocol, all on one event loop.
///
/// ```swift
/// let node = try Node(configuration: .init(name: "luda"), protocol: ExampleProtocol())
/// let address = try await node.listen(on: .loopbackV4(port: 0))
/// try await node.add(peer: "yoghurt", address: yoghurtAddress)
/// let summary = try await node.converse(with: "yoghurt", starting: ExampleProtocol.connectRequest(from: "luda", listeningAddress: address))
/// await node.shutdown()
/// ```
///
/// This is the Go original's `Server`, `Router` and the example's `Protocal` glue in one object.
/// Every method may be called from any thread or task: it hops to the node's loop, where the
/// route table lives (TODO 2: no locks). On the native wire inside Noise (the default) a route is
/// its peer's proven ``PeerID``: a peer id names one route, and only a connection that proves it
/// may carry the route; the name and listening address are attributes the peer proves nothing
/// about. On plaintext wires routes are known by the peer's listening address. Two peers may share
/// a name (TODO 1); a name that matches several routes is refused as ambiguous where one peer is
/// meant, and an address or a peer id picks exactly one.
///
/// Call ``shutdown()`` when done: it closes the server and every connection, and the node's own
/// loop if it made one.
public final class Node: Sendable {
    /// How a node behaves.
    public struct Configuration: Sendable {
        /// The node's name: what its messages carry, and what peers call it.
        public var name: String
        /// Short or persistent connections (the original's `SRouter` or `PRouter`).
        public var connectionType: ConnectionType
        /// The encoding on the connections: native (default) or the Go original's JSON.
        public var wire: WireFormat
        /// Whether the native wire runs inside Noise (default) or in the clear; the JSON wire is
        /// always plaintext and unauthenticated (Docs/Security.md).
        public var security: WireSecurity
        /// The node's long-term identity, which its Noise handshakes prove and its peer id is
        /// derived from. Default: a new ephemeral one (a new peer id at every start); load a
        /// lasting one with `IdentityFile`.
        public var identity: NodeIdentity
        /// Which proven peers the node talks to: allowlist, denylist, a callback, open or closed
        /// (native wire inside Noise only). Default: open.
        public var peerPolicy: PeerPolicy
        /// How long connecting may take (the TCP connection; the hello that follows on the native
        /// wire is the ``handshakeTimeout``'s).
        public var dialTimeout: TimeAmount
        /// How long anything sent waits for its answer: a dispatch for its reply, each step of a
        /// conversation, and on a persistent native-wire connection every message for the answer
        /// or "no reply" marker the router expects (a forwarded broadcast, a reply), whose entry is
        /// dropped then. On the JSON wire's persistent connections, which have no answers to wait
        /// for, it bounds how long a dispatch waits for its message to be written
        /// (``P2PError/writeTimeout(_:)``); on a short-mode server connection, how long the answer
        /// may take to be written once the request is in (the dialer has given up by then).
        public var replyTimeout: TimeAmount
        /// How long a connection being replaced may take to finish what is under way on it.
        public var handOverTimeout: TimeAmount
        /// How long a new connection may take to complete its handshake before it is closed
        /// (``NodeEvent/connectionTimedOut(_:_:)`` with ``ConnectionTimeout/handshake``): on a
        /// persistent native-wire connection, from its start to the peer's hello, whichever side
        /// dialed (a dial that times out fails with ``P2PError/connectFailed(address:reason:)``);
        /// on a short-mode server connection, to the one request. Default 5 s: a hello or a
        /// request is one small message, which any live peer sends at once; the bound is what
        /// stops a peer that connects and says nothing from holding a descriptor for ever. The
        /// JSON wire's persistent connections have no handshake. Zero or less: no limit.
        public var handshakeTimeout: TimeAmount
        /// How long a message may take to arrive once its first byte has (a native frame, a JSON
        /// object): a peer that sends half a message and stalls, or trickles one in a byte at a
        /// time (slowloris), has its connection closed (``ConnectionTimeout/partialMessage``).
        /// The clock starts with the read that brought the message's first byte and is not moved
        /// by the bytes that follow. Default 10 s: a message of the largest size (1 MiB) crosses
        /// even a slow link in far less, and a stalled sender is found within seconds. Time
        /// during which this node itself holds reading back (its protocol is behind) does not
        /// count. Zero or less: no limit.
        public var partialMessageTimeout: TimeAmount
        /// After how long without hearing anything from the peer a persistent native-wire
        /// connection sends a `ping` (and again every interval while the silence lasts); the peer
        /// answers `pong`. Any byte received counts as hearing from the peer. Default 15 s, a
        /// third of ``keepaliveTimeout``, so a live but idle peer is asked twice before it is
        /// given up. Zero or less: no pings (the node still answers the peer's). The JSON wire
        /// has no control messages, so no keepalive.
        public var keepaliveInterval: TimeAmount
        /// After how long without hearing anything from the peer a persistent native-wire
        /// connection is closed (``ConnectionTimeout/keepalive``): a peer that vanished without
        /// closing (a power cut, a dropped network path) is found and its route marked down,
        /// instead of dispatches waiting on a dead connection. Default 45 s. Nodes that predate
        /// the keepalive do not answer pings: set zero (or less: no limit) in a mesh that has some,
        /// or their idle connections are closed after this timeout (and re-dialled when next
        /// needed).
        public var keepaliveTimeout: TimeAmount
        /// The largest message accepted or sent, in bytes (a native frame's payload, a JSON object).
        public var maximumMessageSize: Int
        /// Whether broadcasts from peers are passed on to this node's other peers.
        public var forwardsBroadcasts: Bool
        /// How many recent broadcast ids the node remembers to drop repeats.
        public var broadcastMemory: Int
        /// How broadcasts travel: flooding (the default) or gossip (an eager mesh with lazy
        /// IHAVE/IWANT gossip); see ``BroadcastMode``. Gossip needs persistent connections on the
        /// native wire and ``forwardsBroadcasts``: elsewhere the node floods.
        public var broadcast: BroadcastMode = .flood
        /// Seeds everything the node draws at random (message ids, reconnect jitter, gossip's
        /// choice of peers), for a reproducible run such as a simulation; nil (the default) seeds
        /// from the system's generator. Message ids are never secret either way.
        public var randomSeed: UInt64?
        /// Peer exchange: ask peers for their peers and dial them, up to a target count, so a
        /// network can be bootstrapped from one seed node; see ``PeerExchange``. nil (the default):
        /// off, and learned addresses are never dialled. Persistent mode on the native wire only:
        /// a node in short mode or on the JSON wire ignores it.
        public var peerExchange: PeerExchange? = nil
        /// The most messages one connection may have delivered to the protocol and not yet had
        /// answered (an async protocol works through them one at a time) before the connection
        /// stops reading; it reads again once the protocol has caught up below the bound. A peer
        /// that sends faster than the protocol answers is held back by TCP instead of growing a
        /// queue in the node. The bound is checked between read batches, so it may be passed by
        /// at most one batch.
        public var maximumUnansweredMessages: Int
        /// The same bound, in payload bytes (the messages' data, names and operations).
        public var maximumUnansweredBytes: Int
        /// The most bytes a connection may hold queued for its peer (written, not yet taken by the
        /// kernel) before a message the node starts (a dispatch, a conversation, a forwarded
        /// broadcast, `dispatchAll`'s copy) is refused with ``P2PError/peerTooSlow(_:)``, and the
        /// ``slowPeerPolicy`` applies. Answers are not refused: a peer that does not read them is
        /// held back instead (the connection stops reading).
        public var maximumQueuedBytesPerPeer: Int
        /// What happens to a peer whose queue is full, besides refusing the message.
        public var slowPeerPolicy: SlowPeerPolicy
        /// The most connections peers may have open to this node at once; one more is closed as
        /// soon as it is accepted (``NodeEvent/limitReached(_:)``).
        public var maximumInboundConnections: Int
        /// The most connections this node may have open to peers at once (dials under way
        /// included); a dial past it fails with ``P2PError/limitReached(_:)``.
        public var maximumOutboundConnections: Int
        /// The most routes the table holds. Past it, adding a route fails with
        /// ``P2PError/limitReached(_:)``, and a connection whose peer would be a new route is closed.
        public var maximumRoutes: Int
        /// The most bytes of incomplete messages the node holds over all its connections (each
        /// framer holds at most one message, of at most ``maximumMessageSize``). A read that takes
        /// the node past it closes that connection (``NodeEvent/limitReached(_:)`` with
        /// ``AdmissionLimit/partialMessageBytes``).
        public var maximumPartialMessageBytes: Int
        /// How long after a pinned peer's connection drops, or a dial of it fails, the node dials it
        /// again by itself; the delay doubles with each failure in a row, up to
        /// ``maximumReconnectDelay``, with jitter (a random time between half and all of it). Until
        /// then, a message for the peer after a failed dial fails at once: dials to one address are
        /// never closer together than the backoff. Only routes the application added are redialled.
        public var reconnectDelay: TimeAmount
        /// The longest delay between two dials of a pinned peer.
        public var maximumReconnectDelay: TimeAmount
        /// Runs on the node's loop for every message from a peer, before it is delivered to the
        /// protocol or forwarded, and decides its fate (``MessageVerdict``); nil accepts all. Keep it
        /// quick: it holds up the loop.
        public var validator: (@Sendable (Envelope, MessageOrigin) -> MessageVerdict)?
        /// How many messages of one connection the validator may reject before the connection is
        /// closed (1: at the first).
        public var maximumRejectsPerPeer: Int
        /// Where the node's counters go (``NodeStatistics``), as swift-metrics instruments; nil
        /// for the process's `MetricsSystem.factory` (whatever backend the application
        /// bootstrapped, or none).
        public var metricsFactory: (any MetricsFactory)?
        /// The listening address to tell peers, when where the server listens is not it (behind a
        /// NAT, say). By default the server's address, its wildcard host replaced by the address a
        /// peer reached us at.
        public var advertisedAddress: SocketAddress?
        /// Where the node logs.
        public var logger: Logger
        /// Sees what happens to the persistent connections (called on the node's loop; hand the
        /// events off rather than block).
        public var observer: (@Sendable (NodeEvent) -> Void)?

        /// A configuration with sensible defaults: persistent connections on the native wire inside
        /// Noise, with a new ephemeral identity, open to every peer that proves one, 3 s
        /// to connect, 5 s for a reply, a hand-over and a handshake, 10 s for a message to arrive
        /// once started, a ping after 15 s of silence and a close after 45 s, messages up to
        /// 1 MiB, up to 1,024 messages or 4 MiB awaiting the protocol's answers per connection, up
        /// to 4 MiB queued for a peer, past which the node's new messages to it are dropped, and at
        /// most 1,024 inbound and 1,024 outbound connections and 4,096 routes.
        public init(
            name: String,
            connectionType: ConnectionType = .persistent,
            wire: WireFormat = .native,
            security: WireSecurity = .noise,
            identity: NodeIdentity = NodeIdentity(),
            peerPolicy: PeerPolicy = .open,
            dialTimeout: TimeAmount = .seconds(3),
            replyTimeout: TimeAmount = .seconds(5),
            handOverTimeout: TimeAmount = .seconds(5),
            handshakeTimeout: TimeAmount = .seconds(5),
            partialMessageTimeout: TimeAmount = .seconds(10),
            keepaliveInterval: TimeAmount = .seconds(15),
            keepaliveTimeout: TimeAmount = .seconds(45),
            maximumMessageSize: Int = 1 << 20,
            forwardsBroadcasts: Bool = true,
            broadcastMemory: Int = 4096,
            maximumUnansweredMessages: Int = 1024,
            maximumUnansweredBytes: Int = 4 << 20,
            maximumQueuedBytesPerPeer: Int = 4 << 20,
            slowPeerPolicy: SlowPeerPolicy = .dropMessage,
            maximumInboundConnections: Int = 1024,
            maximumOutboundConnections: Int = 1024,
            maximumRoutes: Int = 4096,
            maximumPartialMessageBytes: Int = 32 << 20,
            reconnectDelay: TimeAmount = .seconds(1),
            maximumReconnectDelay: TimeAmount = .seconds(60),
            validator: (@Sendable (Envelope, MessageOrigin) -> MessageVerdict)? = nil,
            maximumRejectsPerPeer: Int = 8,
            metricsFactory: (any MetricsFactory)? = nil,
            advertisedAddress: SocketAddress? = nil,
            logger: Logger = Logger(label: "pheromones.p2p"),
            observer: (@Sendable (NodeEvent) -> Void)? = nil
        ) {
            self.name = name
            self.connectionType = connectionType
            self.wire = wire
            self.security = security
            self.identity = identity
            self.peerPolicy = peerPolicy
            self.dialTimeout = dialTimeout
            self.replyTimeout = replyTimeout
            self.handOverTimeout = handOverTimeout
            self.handshakeTimeout = handshakeTimeout
            self.partialMessageTimeout = partialMessageTimeout
            self.keepaliveInterval = keepaliveInterval
            self.keepaliveTimeout = keepaliveTimeout
            self.maximumMessageSize = maximumMessageSize
            self.forwardsBroadcasts = forwardsBroadcasts
            self.broadcastMemory = broadcastMemory
            self.maximumUnansweredMessages = maximumUnansweredMessages
            self.maximumUnansweredBytes = maximumUnansweredBytes
            self.maximumQueuedBytesPerPeer = maximumQueuedBytesPerPeer
            self.slowPeerPolicy = slowPeerPolicy
            self.maximumInboundConnections = maximumInboundConnections
            self.maximumOutboundConnections = maximumOutboundConnections
            self.maximumRoutes = maximumRoutes
            self.maximumPartialMessageBytes = maximumPartialMessageBytes
            self.reconnectDelay = reconnectDelay
            self.maximumReconnectDelay = maximumReconnectDelay
            self.validator = validator
            self.maximumRejectsPerPeer = maximumRejectsPerPeer
            self.metricsFactory = metricsFactory
            self.advertisedAddress = advertisedAddress
            self.logger = logger
            self.observer = observer
        }
    }

    /// The node's configuration.
    public let configuration: Configuration
    /// The loop the node's routes, connections and protocol live on.
    public let eventLoop: EpollEventLoop
    private let group: MultiThreadedEventLoopGroup
    private let ownsGroup: Bool
    private let core: LoopConfined<NodeCore>
    private let isShutDown = Atomic<Bool>(false)

    /// Creates a node running the on-loop `protocol` (taken over by the node), on a loop of
    /// `group`, or on a loop of its own when `group` is nil.
    ///
    /// - Throws: an `IOError` when the node's own loop cannot start, a ``P2PError`` when the
    ///   identity cannot sign its Noise key.
    public convenience init(
        configuration: Configuration, protocol peerProtocol: sending some PeerProtocol, group: MultiThreadedEventLoopGroup? = nil
    ) throws {
        try self.init(configuration: configuration, handler: .onLoop(peerProtocol), group: group)
    }

    /// Creates a node running the async `protocol`, on a loop of `group`, or on a loop of its own
    /// when `group` is nil.
    ///
    /// - Throws: an `IOError` when the node's own loop cannot start, a ``P2PError`` when the
    ///   identity cannot sign its Noise key.
    public convenience init(
        configuration: Configuration, protocol peerProtocol: some AsyncPeerProtocol, group: MultiThreadedEventLoopGroup? = nil
    ) throws {
        try self.init(configuration: configuration, handler: .async(peerProtocol), group: group)
    }

    private init(
        configuration: Configuration, handler: sending ProtocolHandler, group: MultiThreadedEventLoopGroup?
    ) throws {
        let transport = try configuration.transportSecurity()
        self.ownsGroup = group == nil
        let group = try group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.configuration = configuration
        self.group = group
        self.eventLoop = group.nextLoop()
        self.core = LoopConfined(
            NodeCore(
                configuration: configuration, transport: transport, network: SocketNetwork(group: group, loop: eventLoop), handler: handler),
            loop: eventLoop)
        let core = core
        eventLoop.execute { [weak self] in core.value.node = self }
    }

    deinit {
        // A node dropped without `shutdown()`: close what it left open and stop its own loop.
        guard !isShutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let core = core
        eventLoop.execute { core.value.shutdown() }
        if ownsGroup {
            let group = group
            Task { try? await group.shutdownGracefully() }
        }
    }

    /// The node's name.
    public var name: String { configuration.name }
    /// The node's peer id (its identity's), which its Noise handshakes prove.
    public var peerID: PeerID { configuration.identity.peerID }
    /// Short or persistent connections (the original's `GetConnType`).
    public var connectionType: ConnectionType { configuration.connectionType }

    // MARK: Serving

    /// Starts the server on `address` (port 0: any free port) and returns where it listens.
    ///
    /// - Throws: the bind error, or ``P2PError/nodeShutDown``.
    @discardableResult
    public func listen(on address: SocketAddress) async throws -> SocketAddress {
        try await onLoop { core in core.listen(on: address) }
    }

    /// Where the server listens, once ``listen(on:)`` has returned.
    public var listeningAddress: SocketAddress? {
        get async { try? await onLoop { core in core.loop.makeSucceededFuture(core.listeningAddress) } }
    }

    // MARK: Routes

    /// Adds a route to the peer `name` whose server listens on `address`.
    ///
    /// Short mode records the address (the original's `AddRoute`); the same name at the same
    /// address is ``P2PError/routeExists(name:address:)``. Persistent mode dials, and returns once
    /// the peer has identified itself; adding a connected route again dials a new connection that
    /// takes over once the old one is idle (TODO 3).
    ///
    /// - Throws: ``P2PError/connectFailed(address:reason:)``, ``P2PError/routeExists(name:address:)``,
    ///   ``P2PError/nodeShutDown``.
    public func add(peer name: String, address: SocketAddress) async throws {
        try await onLoop { core in core.add(name: name, address: address, pin: nil) }
    }

    /// Adds a route to the peer `name` at `address` that must prove the identity `peerID` (native
    /// wire inside Noise): a different key at that address is refused with
    /// ``P2PError/unexpectedPeer(expected:actual:)``, which names both ids. Otherwise as
    /// ``add(peer:address:)-(String,SocketAddress)``.
    public func add(peer name: String, address: SocketAddress, expecting peerID: PeerID) async throws {
        try await onLoop { core in core.add(name: name, address: address, pin: peerID) }
    }

    /// Adds a route to `name` at `address` given as `ip:port`.
    ///
    /// - Throws: ``P2PError/emptyAddress``, ``P2PError/wrongAddressKind(_:)``, and the errors of
    ///   ``add(peer:address:)-(String,SocketAddress)``.
    public func add(peer name: String, address: String) async throws {
        try await add(peer: name, address: PeerContext.parse(address))
    }

    /// Deletes the route named `name`, closing its connection.
    ///
    /// - Throws: ``P2PError/unknownPeer(_:)``, ``P2PError/ambiguousPeer(name:addresses:)``.
    public func delete(peer name: String) async throws {
        try await delete(.name(name))
    }

    /// Deletes the route of the peer `peerID`, closing its connection.
    ///
    /// - Throws: ``P2PError/unknownPeer(_:)``.
    public func delete(peer peerID: PeerID) async throws {
        try await delete(.peer(peerID))
    }

    /// Deletes the route at `address`, closing its connection.
    ///
    /// - Throws: ``P2PError/unknownPeer(_:)``.
    public func delete(peer address: SocketAddress) async throws {
        try await delete(.address(address))
    }

    private func delete(_ selector: PeerSelector) async throws {
        try await onLoop { core in
            try core.delete(selector)
            return core.loop.makeSucceededFuture(())
        }
    }

    /// A snapshot of the routes: name, listening address, and whether a connection carries it.
    public var peers: [PeerInfo] {
        get async { (try? await onLoop { core in core.loop.makeSucceededFuture(core.peers()) }) ?? [] }
    }

    /// What the node has counted since it started (the same figures go to swift-metrics, see
    /// ``Configuration/metricsFactory``), with the bytes queued for peers now.
    public var statistics: NodeStatistics {
        get async { (try? await onLoop { core in core.loop.makeSucceededFuture(core.statistics()) }) ?? NodeStatistics() }
    }

    /// How many persistent connections are open, draining ones included (none in short mode,
    /// whose connections last one message).
    public var openConnectionCount: Int {
        get async { (try? await onLoop { core in core.loop.makeSucceededFuture(core.openConnectionCount) }) ?? 0 }
    }

    /// How many messages sent on the node's connections await their answer (for tests).
    var awaitedAnswerCount: Int {
        get async { (try? await onLoop { core in core.loop.makeSucceededFuture(core.awaitedAnswerCount) }) ?? 0 }
    }

    /// The routes named `name` (names may repeat; each route has its own listening address).
    public func peers(named name: String) async -> [PeerInfo] {
        await peers.filter { $0.name == name }
    }

    // MARK: Sending

    /// Sends `message` to the peer named `name` and returns its reply.
    ///
    /// Short mode dials, writes, reads one reply, closes (nil when the peer answers nothing).
    /// Persistent mode writes on the route's connection (dialing it if it is down) and, on the
    /// native wire, returns the correlated reply (nil when the peer's protocol answered nothing);
    /// on the JSON wire it returns nil once written, and the reply goes to the protocol, as in the
    /// original. Either way the reply also reaches this node's protocol in persistent mode.
    ///
    /// - Throws: ``P2PError/unknownPeer(_:)``, ``P2PError/ambiguousPeer(name:addresses:)``,
    ///   ``P2PError/connectFailed(address:reason:)``, ``P2PError/readTimeout(peer:)``,
    ///   ``P2PError/connectionLost(_:)``, ``P2PError/connectionReplaced(_:)``, ``P2PError/nodeShutDown``.
    public func dispatch(to name: String, _ message: Envelope) async throws -> Envelope? {
        try await onLoop { core in try core.dispatch(to: core.resolve(.name(name)), message) }
    }

    /// Sends `message` to the peer listening at `address` and returns its reply (see
    /// ``dispatch(to:_:)-(String,_)``).
    public func dispatch(to address: SocketAddress, _ message: Envelope) async throws -> Envelope? {
        try await onLoop { core in try core.dispatch(to: core.resolve(.address(address)), message) }
    }

    /// Sends `message` to the peer `selector` picks and returns its reply (see
    /// ``dispatch(to:_:)-(String,_)``).
    public func dispatch(to selector: PeerSelector, _ message: Envelope) async throws -> Envelope? {
        try await onLoop { core in try core.dispatch(to: core.resolve(selector), message) }
    }

    /// Runs a whole conversation with the peer named `name`, starting with `message`.
    ///
    /// Short mode loops as the original's example does: dispatch, hand the reply to this node's
    /// protocol, dispatch its answer, until one side answers nothing. Persistent mode sends the
    /// first message and completes when this node's protocol answers a message of the
    /// conversation with nothing (or the peer does). Each step waits at most the reply timeout.
    ///
    /// - Throws: the errors of ``dispatch(to:_:)-(String,_)``.
    public func converse(with name: String, starting message: Envelope) async throws -> ConversationSummary {
        try await onLoop { core in try core.converse(with: core.resolve(.name(name)), starting: message) }
    }

    /// Runs a whole conversation with the peer listening at `address` (see
    /// ``converse(with:starting:)-(String,_)``).
    public func converse(with address: SocketAddress, starting message: Envelope) async throws -> ConversationSummary {
        try await onLoop { core in try core.converse(with: core.resolve(.address(address)), starting: message) }
    }

    /// Runs a whole conversation with the peer `selector` picks (see
    /// ``converse(with:starting:)-(String,_)``).
    public func converse(with selector: PeerSelector, starting message: Envelope) async throws -> ConversationSummary {
        try await onLoop { core in try core.converse(with: core.resolve(selector), starting: message) }
    }

    /// Sends `message` to every peer `recipients` picks (by default the connected ones, see
    /// ``Recipients``) at once and returns each one's reply or error.
    ///
    /// All dials and writes start together on the loop, so a dead or slow peer costs only its own
    /// timeout. (The original skips the peers that fail; here they are reported.)
    public func dispatchAll(_ message: Envelope, to recipients: Recipients = .connected) async -> [PeerKey: Result<Envelope?, any Error>] {
        (try? await onLoop { core in core.dispatchAll(message, to: recipients) }) ?? [:]
    }

    /// Floods `message` through the mesh: sends it to every peer `recipients` picks (by default
    /// the connected ones, see ``Recipients``) with a fresh id and `hopLimit`; each node passes a
    /// broadcast it has not seen on to its other connected peers with the limit decreased, and
    /// drops repeats. Returns how many peers this node sent it to.
    ///
    /// Forwarding needs the native wire (the JSON wire carries no id or hop limit): there a
    /// broadcast reaches the direct peers only.
    ///
    /// - Throws: ``P2PError/nodeShutDown``.
    @discardableResult
    public func broadcast(_ message: Envelope, hopLimit: UInt8 = 8, to recipients: Recipients = .connected) async throws -> Int {
        try await onLoop { core in try core.loop.makeSucceededFuture(core.broadcast(message, hopLimit: hopLimit, to: recipients)) }
    }

    // MARK: Shutting down

    /// Closes the server and every connection (what waits on them fails with
    /// ``P2PError/nodeShutDown``), then stops the node's own loop if it made one.
    public func shutdown() async {
        guard !isShutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let core = core
        try? await eventLoop.submit { core.value.shutdown() }.get()
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    // MARK: Reaching the loop

    /// Runs `body` on the loop and awaits the future it returns; a loop that has stopped means the
    /// node has shut down.
    ///
    /// Always inlined, and the reply awaited here rather than with `Future.get()`: each async
    /// function entered can cost the task a trip through its executor's queue (a task preferring
    /// the node's loop is re-enqueued on the loop at each one), so the public calls go straight here.
    @inline(__always)
    private func onLoop<Value: Sendable>(_ body: @escaping @Sendable (NodeCore) throws -> Future<Value>) async throws -> Value {
        guard !isShutDown.load(ordering: .acquiring) else { throw P2PError.nodeShutDown }
        let core = core
        if eventLoop.inEventLoop {
            // A task on the node's loop (one that prefers the loop as its executor, say): call the
            // core right here, rather than through the loop's queue and back.
            let reply = try body(core.value)
            if let result = reply.resultIfAvailable { return try result.get() }
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                reply.whenComplete { continuation.resume(with: $0) }
            }
        }
        // One suspension, not two (awaiting the submission, then the reply): the loop calls the
        // core and the reply's callback resumes the task, so a task off the loop is woken once
        // per call. `whenComplete` runs the callback where the reply completes (on the loop), or
        // right there if the loop has exited, so it needs nothing from a loop that has stopped.
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            let accepted = eventLoop.tryExecute {
                do {
                    try body(core.value).whenComplete { continuation.resume(with: $0) }
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            if !accepted { continuation.resume(throwing: P2PError.nodeShutDown) }
        }
    }
}
