import CoreMetrics
import Logging
import Pheromones
import PheromonesNoise

/// Everything a node owns, confined to its event loop: the listener, the route table, the
/// connections and the protocol. ``Node`` reaches it by hopping to the loop; the stages call it
/// directly (they run on the same loop).
package final class NodeCore {
    let configuration: Node.Configuration
    let loop: any EventLoop
    /// Where the node's connections come from (sockets, or a simulated network).
    let network: any NodeNetwork
    let handler: ProtocolHandler
    let logger: Logger
    /// How the node reaches its routes (the configured connection type).
    let routing: any RoutingMode
    /// What its connections' wire says (the configured wire).
    let dialect: any WireDialect
    /// What secures its connections below the wire (Noise, or nothing).
    let transport: any TransportSecurity
    /// The node, for the protocol's context; weak because the node owns this core.
    weak var node: Node?

    private var ids: MessageIDGenerator
    /// How broadcasts travel (the configured mode's strategy).
    private var broadcasting: any BroadcastStrategy
    private var listener: (any Channel)?
    private(set) var listeningAddress: SocketAddress?
    private(set) var table = RouteTable()
    private(set) var connections: [ConnectionID: RouterStage] = [:]
    private var lastConnectionID: ConnectionID = 0
    private var dialGeneration: UInt64 = 0
    /// `add` calls waiting for the connection they dialed to be identified.
    private var dialWaiters: [ConnectionID: [Promise<Void>]] = [:]
    /// Inbound connections that proved a peer id and claim the address of a route bound to none:
    /// they wait for this node's own dial of that address to show who is there.
    var awaitingVerification: [SocketAddress: [(connection: ConnectionID, name: String)]] = [:]
    /// Messages waiting for their route to become usable, by route.
    private var parked: [SocketAddress: [Outgoing]] = [:]
    private(set) var isShutDown = false
    /// When each pinned route that lost its connection is dialled again.
    private var backoff: ReconnectBackoff
    /// The scheduled redials, by route.
    private var reconnects: [SocketAddress: Scheduled<Void>] = [:]
    /// Routes whose last dial failed: no dial before the deadline (the scheduled redial's).
    private var noDialBefore: [SocketAddress: Deadline] = [:]
    /// What the node counts.
    let metrics: NodeMetrics
    /// The bytes of incomplete messages the connections hold together.
    private let partialMessageBudget: PartialMessageBudget
    /// The answer deadlines of the conversations this node started.
    private let conversationDeadlines: ConversationDeadlines
    /// Peer exchange (`Discovery/`), when configured: told where connections are identified and end.
    private(set) var peerExchange: PeerExchangeDriver?

    init(
        configuration: Node.Configuration, transport: any TransportSecurity, network: any NodeNetwork, handler: sending ProtocolHandler
    ) {
        self.transport = transport
        self.configuration = configuration
        self.loop = network.eventLoop
        self.network = network
        var seeds = MessageIDGenerator(seed: configuration.randomSeed ?? UInt64.random(in: .min ... .max))
        self.ids = MessageIDGenerator(seed: seeds.next())
        self.handler = handler
        self.logger = configuration.logger
        self.routing = configuration.connectionType.routing
        self.dialect = configuration.wire.dialect
        self.broadcasting = configuration.broadcast.strategy(for: configuration, seed: seeds.next())
        self.backoff = ReconnectBackoff(initial: configuration.reconnectDelay, maximum: configuration.maximumReconnectDelay, seed: seeds.next())
        self.partialMessageBudget = PartialMessageBudget(limit: configuration.maximumPartialMessageBytes)
        self.conversationDeadlines = ConversationDeadlines(loop: loop)
        self.metrics = NodeMetrics(nodeName: configuration.name, factory: configuration.metricsFactory ?? MetricsSystem.factory)
        self.peerExchange = PeerExchangeDriver.make(for: self)
    }

    /// A node core on `network` with an on-loop protocol (what a simulation builds its nodes
    /// from; ``Node`` makes its own on the machine's sockets).
    ///
    /// - Throws: ``P2PError/unknownProtocol(_:)`` if the identity cannot sign its Noise static key.
    package convenience init(configuration: Node.Configuration, network: any NodeNetwork, protocol peerProtocol: sending some PeerProtocol) throws {
        let transport = try configuration.transportSecurity()
        self.init(configuration: configuration, transport: transport, network: network, handler: .onLoop(peerProtocol))
    }

    var eventLoop: any EventLoop { loop }

    func nextMessageID() -> UInt64 { ids.next() }

    private var socketOptions: SocketOptions {
        var options = SocketOptions()
        options.allowRemoteHalfClosure = true
        options.connectTimeout = configuration.dialTimeout
        return options
    }

    // MARK: Listening

    /// Starts the server.
    package func listen(on address: SocketAddress) -> Future<SocketAddress> {
        loop.assertInEventLoop()
        guard !isShutDown else { return loop.makeFailedFuture(P2PError.nodeShutDown) }
        guard listener == nil else { return loop.makeFailedFuture(ChannelError.alreadyConnected) }
        let bound = LoopBound(self, eventLoop: loop)
        return network.listen(on: address, options: socketOptions) { channel in try bound.value.accept(channel) }
            .map { server in
                let core = bound.value
                guard !core.isShutDown else {
                    server.close()
                    throw P2PError.nodeShutDown
                }
                core.listener = server
                core.listeningAddress = server.localAddress
                return server.localAddress ?? address
            }
    }

    private func accept(_ channel: any Channel) throws {
        guard !isShutDown else { throw P2PError.nodeShutDown }
        // Refused by throwing: the server closes the connection before any event reaches it.
        try admit(.inboundConnections, count: openConnections(.inbound), maximum: configuration.maximumInboundConnections)
        let stage = routing.acceptedStage(in: self)
        do {
            try channel.pipeline.addHandlers(wireHandlers(for: stage) + [stage, makeProtocolStage(for: stage)])
        } catch {
            connections[stage.id] = nil
            throw error
        }
    }

    /// The listening address to tell a peer on `channel`: the configured one, or where the server
    /// listens, with the wildcard host replaced by the address the peer reached us at.
    func advertisedAddress(for channel: any Channel) -> SocketAddress? {
        if let configured = configuration.advertisedAddress { return configured }
        guard let listening = listeningAddress else { return nil }
        guard listening.isUnspecified, let local = channel.localAddress else { return listening }
        return local.withPort(listening.port)
    }

    // MARK: Reconnecting

    /// Schedules the next dial of the pinned route at `address` (if it is still there and down)
    /// after the backoff; after a failed dial, no other dial of it may come sooner.
    private func scheduleReconnect(_ address: SocketAddress, afterFailedDial: Bool) {
        guard !isShutDown, let route = table.routes[address], route.isPinned else { return }
        let delay = backoff.failed(address)
        if afterFailedDial { noDialBefore[address] = loop.now + delay }
        reconnects[address]?.cancel()
        let bound = LoopBound(self, eventLoop: loop)
        reconnects[address] = loop.scheduleTask(in: delay) { bound.value.reconnect(address) }
        metrics.reconnectScheduled()
        report(.reconnectScheduled(key(of: address), after: delay))
        logger.debug("reconnecting later", metadata: ["address": "\(address)", "delay": "\(delay)"])
    }

    private func reconnect(_ address: SocketAddress) {
        reconnects[address] = nil
        noDialBefore[address] = nil
        guard !isShutDown, let route = table.routes[address], route.isPinned, route.state == .down else { return }
        do {
            _ = try dial(name: route.name, address: address, pinning: false)
        } catch {
            scheduleReconnect(address, afterFailedDial: true)
        }
    }

    /// The route at `address` is connected: its failures are forgotten.
    private func connected(_ address: SocketAddress) {
        forgetReconnect(address)
    }

    private func forgetReconnect(_ address: SocketAddress) {
        backoff.forget(address)
        noDialBefore[address] = nil
        reconnects.removeValue(forKey: address)?.cancel()
    }

    // MARK: Limits

    /// The connections open in `direction` (short and persistent, dials under way included).
    private func openConnections(_ direction: ConnectionDirection) -> Int {
        connections.values.reduce(0) { count, stage in count + (stage.facts.direction == direction ? 1 : 0) }
    }

    /// Throws ``P2PError/limitReached(_:)`` (and reports it) when `count` has reached `maximum`.
    private func admit(_ limit: AdmissionLimit, count: Int, maximum: Int) throws(P2PError) {
        guard count >= maximum else { return }
        metrics.refusedByLimit()
        logger.debug("refused: a limit is reached", metadata: ["limit": "\(limit)", "maximum": "\(maximum)"])
        report(.limitReached(limit))
        throw .limitReached(limit)
    }

    /// Throws when `address` would be a new route and the table is full.
    private func admitRoute(to address: SocketAddress) throws(P2PError) {
        guard table.routes[address] == nil else { return }
        try admit(.routes, count: table.routes.count, maximum: configuration.maximumRoutes)
    }

    // MARK: Stages

    /// A new router stage of the role `role`, counted among the node's connections.
    func makeStage<Stage: RouterStage>(_ role: Stage.Type, dialedAddress: SocketAddress?, facts: ConnectionFacts) -> Stage {
        lastConnectionID += 1
        var facts = facts
        facts.localPeerID = transport.localPeerID
        let stage = Stage(id: lastConnectionID, core: self, dialedAddress: dialedAddress, facts: facts)
        connections[stage.id] = stage
        return stage
    }

    private func makeProtocolStage(for router: RouterStage) -> ProtocolStage {
        ProtocolStage(handler: handler, core: self, router: router)
    }

    /// The stages below the router: the transport's (Noise) next to the socket, so that everything
    /// above reads and writes plaintext; back pressure next to it (a peer that does not read
    /// its answers makes the connection stop reading, rather than grow its write queue), the
    /// partial-message timer and the node-wide partial-message budget in front of the framer they
    /// watch, the wire, the traffic counter right above it, and on persistent connections the
    /// wire's liveness stages (the native wire's keepalive; the JSON wire, having no control
    /// messages, has none; short connections live for one message), above the counter so that
    /// pings and pongs are counted too.
    private func wireHandlers(for stage: RouterStage) -> [any ChannelHandler] {
        let wire = dialect.stages(maximumMessageSize: configuration.maximumMessageSize)
        var handlers: [any ChannelHandler] = transport.stages(direction: stage.facts.direction) + [BackPressureHandler()]
        if let timeout = configuration.partialMessageTimeout.asTimeout {
            handlers.append(PartialMessageTimer(timeout: timeout, framer: wire.framer))
        }
        handlers.append(PartialMessageBudgetStage(budget: partialMessageBudget, framer: wire.framer))
        handlers += wire.handlers
        handlers.append(TrafficCounter(metrics: metrics))
        if stage.isPersistent { handlers += dialect.persistentLivenessStages(configuration) }
        return handlers
    }

    /// Dials `address` with `handlers` (created here, on the loop, and installed by the
    /// initializer, which runs on the loop too).
    private func connect(to address: SocketAddress, handlers: [any ChannelHandler]) -> Future<any Channel> {
        let bound = LoopBound((self, handlers), eventLoop: loop)
        return network.connect(to: address, options: socketOptions) { channel in
            let (core, handlers) = bound.value
            guard !core.isShutDown else { throw P2PError.nodeShutDown }
            try channel.pipeline.addHandlers(handlers)
        }
    }

    // MARK: Routes

    /// Adds a route (the node's `add(peer:address:)`): short mode records the address; persistent
    /// mode dials and completes once the peer has identified itself (a connected route is
    /// replaced by the new connection, after a hand-over).
    /// `pin`: the peer id that must be found there (a peer id names one route at most).
    package func add(name: String, address: SocketAddress, pin: PeerID?) -> Future<Void> {
        loop.assertInEventLoop()
        guard !isShutDown else { return loop.makeFailedFuture(P2PError.nodeShutDown) }
        guard !isOwnAddress(address) else {
            return loop.makeFailedFuture(P2PError.wrongAddressKind("\(address) is this node's own listening address"))
        }
        do {
            try admitRoute(to: address)
            if let pin, let other = table.route(ofPeer: pin), other != address { throw P2PError.peerRoutedElsewhere(pin, address: other) }
        } catch {
            return loop.makeFailedFuture(error)
        }
        return routing.add(name: name, address: address, pin: pin, in: self)
    }

    /// Records the route `name` at `address` without a connection (short mode).
    func addAddress(name: String, address: SocketAddress, pinned: Bool, pin: PeerID? = nil) throws(P2PError) {
        try table.addAddress(name: name, address: address, pinned: pinned, pin: pin)
        logger.debug("added a route", metadata: ["name": "\(name.escapedForTerminal)", "address": "\(address)", "pinned": "\(pinned)"])
    }

    /// Dials the route `name` at `address`, pinning it; the future completes once the peer has
    /// identified itself (persistent mode).
    func dialAndWaitForIdentity(name: String, address: SocketAddress, pin: PeerID?) -> Future<Void> {
        let connection: ConnectionID
        do {
            connection = try dial(name: name, address: address, pinning: true, pin: pin)
        } catch {
            return loop.makeFailedFuture(error)
        }
        // Connections of another peer carry the route no longer (a peer that claimed the address).
        if let pin { run(table.refuseConnections(at: address, provingOtherThan: pin), failure: .connectionLost(address)) }
        let waiter = loop.makePromise(of: Void.self)
        dialWaiters[connection, default: []].append(waiter)
        return waiter.futureResult
    }

    /// Dials the route at `address` (unless a dial is under way), pinning it when the application
    /// asked for the dial; returns the connection to wait for.
    ///
    /// - Throws: ``P2PError/limitReached(_:)`` when as many connections as allowed are open.
    func dial(name: String, address: SocketAddress, pinning: Bool, pin: PeerID? = nil) throws(P2PError) -> ConnectionID {
        if case .dialing(let pending) = table.routes[address]?.state { return pending }
        if !pinning, let deadline = noDialBefore[address], loop.now < deadline {
            throw .connectFailed(address: address, reason: "its last dial failed; the next one is scheduled")
        }
        try admit(.outboundConnections, count: openConnections(.outbound), maximum: configuration.maximumOutboundConnections)
        dialGeneration += 1
        let facts = ConnectionFacts(direction: .outbound, generation: dialGeneration, localAddress: nil, peerAddress: address)
        let stage = makeStage(PersistentStage.self, dialedAddress: address, facts: facts)
        switch table.beginDial(name: name, address: address, connection: stage.id, facts: facts, pinned: pinning, pin: pin) {
        case .join(let pending):
            connections[stage.id] = nil
            return pending
        case .dial:
            logger.debug("dialing", metadata: ["name": "\(name.escapedForTerminal)", "address": "\(address)"])
            let id = stage.id
            connect(to: address, handlers: wireHandlers(for: stage) + [stage, makeProtocolStage(for: stage)]).whenCompleteOnLoop { result in
                if case .failure(let error) = result { self.dialFailed(id, address: address, error: error) }
            }
            return stage.id
        }
    }

    private func dialFailed(_ connection: ConnectionID, address: SocketAddress, error: any Error) {
        guard let stage = connections.removeValue(forKey: connection) else { return }
        let reason = stage.closeReason ?? .connectFailed(address: address, reason: "\(error)")
        logger.debug("dial failed", metadata: ["address": "\(address)", "error": "\(escapedDescription(of: error))"])
        for waiter in dialWaiters.removeValue(forKey: connection) ?? [] { waiter.fail(reason) }
        guard !isShutDown else { return }
        run(table.closed(connection), failure: reason)
        settleVerifications(at: address, verified: false)
        peerExchange?.connectionEnded(connection, dialedAddress: address)
    }

    /// Whether `address` is where this node itself listens (a route to it would be a loop).
    private func isOwnAddress(_ address: SocketAddress) -> Bool {
        address == listeningAddress || address == configuration.advertisedAddress
    }

    /// Adds a route from the protocol (``PeerContext/addRoute(name:address:)-(String,String)``).
    func addRoute(name: String, address: SocketAddress, over stage: RouterStage?) throws(P2PError) {
        loop.assertInEventLoop()
        guard !isShutDown else { throw .nodeShutDown }
        guard !isOwnAddress(address) else { throw .wrongAddressKind("\(address) is this node's own listening address") }
        try admitRoute(to: address)
        try routing.addRoute(name: name, address: address, over: stage, in: self)
    }

    /// Binds the connection `stage` to the route `name` at `address` (persistent mode; the
    /// protocol's `addRoute`, as the original's `AddRoute(name, conn)`).
    func bind(_ stage: PersistentStage, toRoute name: String, at address: SocketAddress) throws(P2PError) {
        if let current = stage.routeAddress {
            guard current == address else {
                throw .wrongAddressKind("this connection already carries the route to \(current), not \(address)")
            }
            // The hello bound the connection already; the protocol's first `addRoute` on it confirms
            // that (as the original's first `AddRoute(name, conn)` succeeds), a second one finds it there.
            let confirmed = stage.routeConfirmedByProtocol
            stage.routeConfirmedByProtocol = true
            guard !confirmed || table.routes[address]?.name != name else { throw .routeExists(name: name, address: address) }
            table.rename(address, to: name)
            return
        }
        stage.routeConfirmedByProtocol = true
        stage.facts.peerAddress = address
        if stage.facts.localAddress == nil, let channel = stage.context?.channel {
            stage.facts.localAddress = advertisedAddress(for: channel)
        }
        identify(stage, address: address, name: name)
    }

    /// Removes the route(s) `selector` picks, closing their connections.
    func delete(_ selector: PeerSelector) throws(P2PError) {
        loop.assertInEventLoop()
        guard !isShutDown else { throw .nodeShutDown }
        let address = try resolve(selector)
        logger.debug("deleting a route", metadata: ["address": "\(address)"])
        run(table.remove(address), failure: .unknownPeer(selector.unescapedDescription))
    }

    /// What the node has counted, with the bytes queued for peers now.
    package func statistics() -> NodeStatistics {
        loop.assertInEventLoop()
        broadcasting.flushCounters(in: self)
        let queued = connections.values.reduce(0) { total, stage in total + (stage.context?.channel.bufferedOutboundBytes ?? 0) }
        return metrics.snapshot(queuedBytes: queued)
    }

    /// The open persistent connections, draining ones included.
    package var openConnectionCount: Int {
        connections.values.filter { $0.isPersistent && $0.context?.channel.isActive == true }.count
    }

    /// How many messages sent on the node's connections await their answer (for tests and
    /// diagnostics: every one of them has a deadline).
    var awaitedAnswerCount: Int {
        connections.values.reduce(0) { $0 + $1.awaitedAnswerCount }
    }

    /// Tells the observer, if any.
    func report(_ event: NodeEvent) {
        configuration.observer?(event)
    }

    /// A snapshot of the routes, by name and then address.
    package func peers() -> [PeerInfo] {
        loop.assertInEventLoop()
        return table.routes.values
            .map { PeerInfo(name: $0.name, address: $0.address, isConnected: table.isConnected($0.address), peerID: $0.peerID) }
            .sorted { $0.name != $1.name ? $0.name < $1.name : $0.address.precedes($1.address) }
    }

    /// The route `selector` picks (TODO 1: a name shared by several routes is ambiguous).
    func resolve(_ selector: PeerSelector) throws(P2PError) -> SocketAddress {
        switch selector {
        case .address(let address):
            guard table.routes[address] != nil else { throw .unknownPeer(selector.unescapedDescription) }
            return address
        case .peer(let peerID):
            guard let address = table.route(ofPeer: peerID) else { throw .unknownPeer(selector.unescapedDescription) }
            return address
        case .name(let name):
            if let address = table.onlyRoute(named: name) { return address }
            let matches = table.routes(named: name)
            guard let first = matches.first else { throw .unknownPeer(name) }
            guard matches.count == 1 else { throw .ambiguousPeer(name: name, addresses: matches.map(\.address)) }
            return first.address
        }
    }

    /// The route a connection carries, named as it was when the connection was identified (the
    /// route may be gone since).
    func peerKey(of stage: RouterStage) -> PeerKey? {
        guard let address = stage.routeAddress else { return nil }
        return PeerKey(name: table.routes[address]?.name ?? stage.routeName, address: address)
    }

    func key(of address: SocketAddress) -> PeerKey {
        PeerKey(name: table.routes[address]?.name ?? "", address: address)
    }

    // MARK: Connections (called by the stages)

    func helloReceived(_ hello: ControlMessage.Hello, on stage: PersistentStage) {
        loop.assertInEventLoop()
        guard !isShutDown else { return }
        switch stage.facts.direction {
        case .outbound:
            guard let dialed = stage.dialedAddress else { return }
            if let advertised = hello.listeningAddress, advertised != dialed {
                logger.debug("the peer advertises another address than the one dialed; keeping the dialed one",
                             metadata: ["dialed": "\(dialed)", "advertised": "\(advertised)"])
            }
            // A route peer exchange dialled has no name until its peer says one.
            if let route = table.routes[dialed], !route.isPinned, route.name.isEmpty { table.rename(dialed, to: hello.name) }
            identify(stage, address: dialed, name: table.routes[dialed]?.name ?? hello.name)
        case .inbound:
            guard let address = hello.listeningAddress else {
                logger.debug("an anonymous peer connected (it does not listen)", metadata: ["name": "\(hello.name.escapedForTerminal)"])
                return
            }
            identify(stage, address: address, name: hello.name)
        }
    }

    /// A JSON-wire connection this node dialed is identified by the address dialed.
    func connectionIdentifiedByDial(_ stage: PersistentStage) {
        loop.assertInEventLoop()
        guard !isShutDown, let dialed = stage.dialedAddress, let channel = stage.context?.channel else { return }
        stage.facts.localAddress = advertisedAddress(for: channel)
        identify(stage, address: dialed, name: table.routes[dialed]?.name ?? "")
    }

    func identify(_ stage: RouterStage, address claimed: SocketAddress, name: String) {
        var address = claimed
        if let peer = stage.facts.remotePeerID {
            switch securedRoute(for: stage, peer: peer, at: claimed) {
            case .route(let route): address = route
            case .refuse(let error): return refuse(stage, error)
            case .verify: return awaitVerification(of: stage, peer: peer, at: claimed, name: name)
            }
        } else if transport.authenticatesPeers {
            // Inside Noise every hello comes after a handshake (the hello's check refuses any
            // other); a connection that proved nothing carries no route.
            return refuse(stage, .forgedHello(claimed: nil, proven: nil))
        }
        do {
            try admitRoute(to: address)
        } catch {
            stage.closeNow(error)
            return
        }
        stage.routeAddress = address
        stage.routeName = table.routes[address]?.name ?? name
        metrics.peerUp()
        logger.debug("connection identified", metadata: ["name": "\(name.escapedForTerminal)", "address": "\(address)", "direction": "\(stage.facts.direction)"])
        report(.connectionIdentified(PeerKey(name: table.routes[address]?.name ?? name, address: address), stage.facts.direction))
        run(table.identified(stage.id, address: address, name: name, facts: stage.facts), failure: .connectionLost(address))
        peerExchange?.connectionIdentified(stage, address: address)
        for waiter in dialWaiters.removeValue(forKey: stage.id) ?? [] { waiter.succeed(()) }
        // Connections waiting on the address learn who is there once the binding is firm (pinned,
        // or proven by our dial); a claim settles nothing.
        if let route = table.routes[address], route.peerID != nil, !route.bindingRestsOnClaim {
            settleVerifications(at: address, verified: true)
        }
    }

    /// Whether a draining connection may shut its output (see ``RouteTable/awaitsSuccessor(_:)``).
    func mayFinishDraining(_ stage: PersistentStage) -> Bool {
        loop.assertInEventLoop()
        return isShutDown || !table.awaitsSuccessor(stage.id)
    }

    func peerAskedToDrain(_ stage: PersistentStage) {
        loop.assertInEventLoop()
        guard !isShutDown else { return }
        guard stage.routeAddress != nil else {
            stage.drain()
            return
        }
        run(table.drainRequested(stage.id), failure: .connectionLost(stage.peerAddress))
    }

    func connectionClosed(_ stage: RouterStage) {
        loop.assertInEventLoop()
        guard connections.removeValue(forKey: stage.id) != nil else { return }
        broadcasting.peerDown(stage.id, in: self)
        if stage.routeAddress != nil { metrics.peerDown() }
        if stage.isPersistent {
            logger.debug("connection closed", metadata: ["peer": "\(stage.peerAddress)", "direction": "\(stage.facts.direction)"])
            report(.connectionClosed(peerKey(of: stage), stage.facts.direction))
        }
        let reason = stage.closeReason ?? .connectFailed(address: stage.peerAddress, reason: "the connection closed before the peer identified itself")
        for waiter in dialWaiters.removeValue(forKey: stage.id) ?? [] { waiter.fail(reason) }
        guard !isShutDown else { return }
        run(table.closed(stage.id), failure: reason)
        // A dial of ours that ended before identifying anything verified nothing (a dial replacing
        // a route's connection fails no parked message, so the route's actions do not say so).
        if stage.facts.direction == .outbound, stage.routeAddress == nil, let dialed = stage.dialedAddress {
            settleVerifications(at: dialed, verified: false)
        }
        peerExchange?.connectionEnded(stage.id, dialedAddress: stage.dialedAddress)
    }

    /// Carries out what the route table decided. `failure` is what parked messages fail with if
    /// their route cannot be reached.
    private func run(_ actions: [RouteTable.Action], failure: P2PError) {
        for action in actions {
            switch action {
            case .drain(let connection):
                broadcasting.peerDown(connection, in: self)
                persistentStage(connection)?.drain()
            case .close(let connection, let error):
                connections[connection]?.closeNow(error)
            case .routeUp(let address, let connection):
                connected(address)
                if let stage = persistentStage(connection) { broadcasting.peerUp(stage, in: self) }
                sendParked(for: address, on: connection)
            case .routeDown(let address):
                if parked[address]?.isEmpty == false, let name = table.routes[address]?.name {
                    do {
                        _ = try dial(name: name, address: address, pinning: false)
                    } catch {
                        failParked(for: address, with: error)
                    }
                } else {
                    scheduleReconnect(address, afterFailedDial: false)
                }
            case .dialFailed(let address):
                settleVerifications(at: address, verified: false)
                failParked(for: address, with: failure)
                scheduleReconnect(address, afterFailedDial: true)
            case .routeRemoved(let address):
                settleVerifications(at: address, verified: false)
                forgetReconnect(address)
                failParked(for: address, with: failure)
            case .resumeDrain(let connection):
                persistentStage(connection)?.resumeDrain()
            case .refuse(let connection, let error):
                if let stage = connections[connection] { refuse(stage, error) }
            }
        }
    }

    /// The persistent connection `connection` (the route table's connections are all persistent).
    func persistentStage(_ connection: ConnectionID) -> PersistentStage? {
        connections[connection] as? PersistentStage
    }

    // MARK: Sending

    /// Sends `message` to the route at `address` and returns its reply.
    func dispatch(to address: SocketAddress, _ message: Envelope) -> Future<Envelope?> {
        loop.assertInEventLoop()
        guard !isShutDown else { return loop.makeFailedFuture(P2PError.nodeShutDown) }
        let reply = loop.makePromise(of: Envelope?.self)
        routing.send(.dispatch(Self.pointToPoint(message), reply), to: address, in: self)
        return reply.futureResult
    }

    /// Runs a conversation with the route at `address`, starting with `message`.
    func converse(with address: SocketAddress, starting message: Envelope) -> Future<ConversationSummary> {
        loop.assertInEventLoop()
        guard !isShutDown else { return loop.makeFailedFuture(P2PError.nodeShutDown) }
        let promise = loop.makePromise(of: ConversationSummary.self)
        let conversation = Conversation(peer: key(of: address), promise: promise, deadlines: conversationDeadlines)
        routing.send(.conversation(Self.pointToPoint(message), conversation), to: address, in: self)
        return promise.futureResult
    }

    /// Sends `message` to the routes `recipients` picks, at once; one result per route.
    func dispatchAll(_ message: Envelope, to recipients: Recipients) -> Future<[PeerKey: Result<Envelope?, any Error>]> {
        loop.assertInEventLoop()
        let keys = fanOutTargets(recipients).map { PeerKey(name: $0.name, address: $0.address) }
        let replies = keys.map { dispatch(to: $0.address, message) }
        return Future.whenAllComplete(replies, on: loop).map { results in
            Dictionary(uniqueKeysWithValues: zip(keys, results))
        }
    }

    /// `message` as a message for one peer: a hop limit would make the peer take it for a broadcast.
    static func pointToPoint(_ message: Envelope) -> Envelope {
        var single = message
        single.hopLimit = 0
        return single
    }

    /// Floods `message` through the mesh, starting with the routes `recipients` picks; returns how
    /// many peers it was sent to.
    package func broadcast(_ message: Envelope, hopLimit: UInt8, to recipients: Recipients) throws(P2PError) -> Int {
        loop.assertInEventLoop()
        guard !isShutDown else { throw .nodeShutDown }
        var flood = message
        flood.messageID = nextMessageID()
        flood.correlationID = 0
        flood.hopLimit = max(1, hopLimit)
        return broadcasting.publish(flood, to: recipients, in: self)
    }

    /// Records a broadcast that arrived on `stage`; returns false for a repeat. A new one is
    /// passed on as the broadcast mode does, while its hop limit allows.
    ///
    /// A broadcast without an id (0, "none") is delivered but neither recorded nor forwarded: its
    /// repeats could not be told apart, and no answer could name it.
    func noteBroadcast(_ message: Envelope, from stage: RouterStage) -> Bool {
        loop.assertInEventLoop()
        metrics.broadcastCopyReceived()
        guard message.messageID != 0 else { return true }
        return broadcasting.received(message, from: stage, in: self)
    }

    /// A control message of the broadcast mode's own arrived on `stage`; false when it is not one.
    func broadcastControlReceived(_ message: Envelope, on stage: PersistentStage) throws(P2PError) -> Bool {
        loop.assertInEventLoop()
        guard !isShutDown else { return false }
        return try broadcasting.controlReceived(message, on: stage, in: self)
    }

    /// The routes a fan-out reaches (see ``Recipients``).
    private func fanOutTargets(_ recipients: Recipients) -> [RouteTable.Route] {
        // In address order, not the table's hash order (seeded per process): one run of a
        // simulation sends in the same order as the next.
        table.routes.values.filter { route in recipients == .allRoutes || routing.reachesByDefault(route, in: table) }
            .sorted { $0.address.precedes($1.address) }
    }

    /// Sends `message` one way to the routes `recipients` picks but `origin`; returns how many.
    func forward(
        _ message: Envelope, idChosenBy allocator: IDAllocator, to recipients: Recipients, except origin: SocketAddress?
    ) -> Int {
        let targets = fanOutTargets(recipients).map(\.address).filter { $0 != origin }
        for address in targets { routing.send(.oneWay(message, allocator), to: address, in: self) }
        return targets.count
    }

    /// Sends `outgoing` on the route's connection, or parks it until there is one (persistent mode).
    func submit(_ outgoing: Outgoing, to address: SocketAddress) {
        switch table.sendTarget(for: address) {
        case nil:
            outgoing.fail(.unknownPeer("\(address)"))
        case .connection(let connection):
            guard let stage = persistentStage(connection) else {
                outgoing.fail(.connectionLost(address))
                return
            }
            outgoing.send(on: stage)
        case .park:
            parked[address, default: []].append(outgoing)
        case .dial:
            parked[address, default: []].append(outgoing)
            guard let name = table.routes[address]?.name else { return }
            do {
                _ = try dial(name: name, address: address, pinning: false)
            } catch {
                failParked(for: address, with: error)
            }
        }
    }

    private func sendParked(for address: SocketAddress, on connection: ConnectionID) {
        guard let waiting = parked.removeValue(forKey: address) else { return }
        guard let stage = persistentStage(connection) else {
            for outgoing in waiting { outgoing.fail(.connectionLost(address)) }
            return
        }
        for outgoing in waiting { outgoing.send(on: stage) }
    }

    private func failParked(for address: SocketAddress, with error: P2PError) {
        for outgoing in parked.removeValue(forKey: address) ?? [] { outgoing.fail(error) }
    }

    /// Short mode: dials, writes `message`, and returns the one reply.
    func dialOnce(_ address: SocketAddress, _ message: Envelope) -> Future<Envelope?> {
        do {
            try admit(.outboundConnections, count: openConnections(.outbound), maximum: configuration.maximumOutboundConnections)
        } catch {
            return loop.makeFailedFuture(error)
        }
        let reply = loop.makePromise(of: Envelope?.self)
        let stage = makeStage(ShortDialStage.self, dialedAddress: address, facts: ConnectionFacts(direction: .outbound, generation: 0))
        let id = stage.id
        connect(to: address, handlers: wireHandlers(for: stage) + [stage]).whenCompleteOnLoop { result in
            switch result {
            case .success:
                stage.sendRequest(message, reply: reply)
            case .failure(let error):
                self.connections[id] = nil
                reply.fail(self.isShutDown ? P2PError.nodeShutDown : P2PError.connectFailed(address: address, reason: "\(error)"))
            }
        }
        return reply.futureResult
    }

    // MARK: Local protocol calls

    /// Hands `message`, a reply from the route at `address`, to this node's protocol outside a
    /// connection (a short-mode conversation), and calls `answered` on the loop with its answer:
    /// at once for an on-loop protocol, after a task for an async one.
    func handleLocally(_ message: Envelope, from address: SocketAddress, answered: @escaping (Result<Envelope?, any Error>) -> Void) {
        let context = PeerContext(
            localName: configuration.name, sender: message.name, remoteAddress: address, peerAddress: address,
            connectionType: routing.connectionType, node: node,
            routes: .node(LoopBound(self, eventLoop: loop), connection: nil))
        switch handler {
        case .onLoop(let peerProtocol):
            answered(Result { try peerProtocol.handle(message, context: context) })
        case .async(let peerProtocol):
            let bound = LoopBound(answered, eventLoop: loop)
            Task {
                let answer: Result<Envelope?, any Error>
                do {
                    answer = .success(try await peerProtocol.handle(message, context: context))
                } catch {
                    answer = .failure(error)
                }
                bound.eventLoop.execute { bound.value(answer) }
            }
        }
    }

    // MARK: Shutting down

    /// Closes the listener and every connection, failing what waits with ``P2PError/nodeShutDown``.
    package func shutdown() {
        loop.assertInEventLoop()
        guard !isShutDown else { return }
        isShutDown = true
        broadcasting.shutdown()
        peerExchange?.stop()
        listener?.close()
        listener = nil
        let waiting = parked
        parked = [:]
        for outgoing in waiting.values.joined() { outgoing.fail(.nodeShutDown) }
        for timer in reconnects.values { timer.cancel() }
        reconnects = [:]
        let waiters = dialWaiters
        dialWaiters = [:]
        for waiter in waiters.values.joined() { waiter.fail(P2PError.nodeShutDown) }
        for stage in connections.values.sorted(by: { $0.id < $1.id }) { stage.closeNow(.nodeShutDown) }
    }
}
