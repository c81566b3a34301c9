/// The ordered stages that process a channel's events: a head at the network end, the handlers,
/// and a tail at the application end.
///
/// Inbound events (reads, activity, errors) travel head to tail; outbound operations (writes,
/// flushes, close) travel tail to head. Handlers can be added and removed while events flow,
/// including by a handler removing itself from inside an event.
///
/// Each stage declares the message types it reads and writes, and every change to the pipeline is
/// checked against its neighbours: a mismatch throws ``ChannelPipelineError/typeMismatch(_:)`` and
/// leaves the pipeline as it was.
///
/// A pipeline is confined to its channel's event loop: call its methods from that loop (handlers
/// and channel initializers already run there). To change a pipeline from another thread, go
/// through the loop: `channel.eventLoop.submit { try channel.pipeline.addHandler(MyHandler()) }`.
///
/// The pipeline holds its channel until the channel has closed, its handlers have been removed and
/// the loop has moved on to its next turn; every context holds its pipeline. So a handler that kept
/// its context can use it at any time: after the close, operations through it fail with a
/// ``ChannelError`` (``ChannelError/ioOnClosedChannel``, or ``ChannelError/alreadyClosed`` for
/// `close`), and `flush` and `read` do nothing.
// Sendable only so that `Channel` (which is) can expose it: every method asserts that it runs
// on `eventLoop`, the one thread that touches the stages.
public final class ChannelPipeline: @unchecked Sendable {
    /// Where to insert a handler.
    public enum Position: Sendable {
        /// Next to the head (first to see inbound events, last to see outbound operations).
        case first
        /// Next to the tail.
        case last
        /// Just before (closer to the head than) the handler with this name.
        case before(String)
        /// Just after the handler with this name.
        case after(String)
    }

    /// The channel's event loop.
    public let eventLoop: any EventLoop
    /// The channel, held strongly from the start until it has closed and no event can be inside the
    /// pipeline any more (see ``channelDidClose()``); a cycle with the channel's reference to its
    /// pipeline, broken there. While the channel lives, whoever holds the pipeline (a handler that
    /// kept its context) therefore holds the channel, and the head may call the transport unretained.
    @exclusivity(unchecked) private var owningChannel: (any Channel)?
    /// The channel once the pipeline has let go of it: still there while someone else holds it.
    private weak var closedChannel: (any Channel)?
    // `@exclusivity(unchecked)`: loop-confined hot state. Only the loop's thread touches it, and no access
    // spans a call that could re-enter, so the runtime check (a thread-local lookup per access) buys nothing.
    /// The head and the tail, one stage (see ``PipelineEnds``).
    @exclusivity(unchecked) private var ends: TransportContext!
    /// The handlers' contexts, head side first.
    @exclusivity(unchecked) private var contexts: [ChannelHandlerContext] = []
    /// Removed contexts kept alive until the current event has left them (see ``removeHandler(context:)``).
    private var graveyard: [ChannelHandlerContext] = []
    private var nameCounter: UInt32 = 0
    /// Whether the channel has closed (``channelDidClose()`` ran): handlers added now are removed at once.
    private var isClosed = false
    /// Whether ``onNextTurn()`` is scheduled.
    private var nextTurnScheduled = false

    /// Creates the pipeline of `channel`, which is also its transport.
    ///
    /// The transport must be the channel itself (not merely owned by it): the pipeline holds the
    /// channel strongly, and that is what makes the head's unretained link to the transport safe.
    package init<Transport: Channel & ChannelCore>(channel: Transport, eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.owningChannel = channel
        self.ends = PipelineEnds(pipeline: self, core: channel)
        relink()
    }

    /// The channel this pipeline belongs to.
    ///
    /// Once the channel has closed and the pipeline has let go of it, this is the channel while
    /// something else still holds it, and otherwise a stand-in for it: closed, inactive, whose
    /// operations fail with ``ChannelError/ioOnClosedChannel`` (or ``ChannelError/alreadyClosed``
    /// for `close`). Call on the channel's loop.
    public var channel: any Channel {
        eventLoop.assertInEventLoop()
        if let owningChannel { return owningChannel }
        return closedChannel ?? DeadChannel(pipeline: self)
    }

    /// The handlers' names, head side first.
    public var handlerNames: [String] {
        eventLoop.assertInEventLoop()
        return contexts.map(\.name)
    }

    // MARK: Adding and removing handlers

    /// Adds `handler` at `position`.
    ///
    /// `handlerAdded` runs before this returns. Throws, and leaves the pipeline unchanged, when the
    /// name is taken, the position's reference handler is missing, or the handler's message types do
    /// not fit its neighbours.
    public func addHandler<Handler: ChannelHandler>(
        _ handler: Handler, name: String? = nil, position: Position = .last
    ) throws(ChannelPipelineError) {
        try addHandlers([handler], names: [name], position: position)
    }

    /// Adds several handlers in order at `position`, checking the message types once all are in.
    ///
    /// Use this when the handlers only fit together (a decoder and the handler reading its output).
    public func addHandlers(_ handlers: [any ChannelHandler], position: Position = .last) throws(ChannelPipelineError) {
        try addHandlers(handlers, names: handlers.map { _ in nil }, position: position)
    }

    private func addHandlers(_ handlers: [any ChannelHandler], names: [String?], position: Position) throws(ChannelPipelineError) {
        eventLoop.assertInEventLoop()
        let index = try insertionIndex(for: position)
        var added: [ChannelHandlerContext] = []
        for (handler, name) in zip(handlers, names) {
            let name = try uniqueName(name, for: handler, pending: added)
            let context = makeContext(for: handler, name: name)
            added.append(context)
        }
        let saved = contexts
        contexts.insert(contentsOf: added, at: index)
        if let mismatch = typeMismatch() {
            contexts = saved
            throw mismatch
        }
        relink()
        for context in added {
            context.anyHandler.handlerAdded(context: context)
        }
        // Too late: the channel has closed and nothing will remove these later, so remove them now
        // (each sees `handlerAdded`, then `handlerRemoved`), or they would keep the pipeline forever.
        if isClosed { removeAll() }
    }

    /// Removes the handler named `name`.
    public func removeHandler(name: String) throws(ChannelPipelineError) {
        guard let context = context(name: name) else { throw .notFound(name) }
        try removeHandler(context: context)
    }

    /// Removes `handler`.
    public func removeHandler(_ handler: any ChannelHandler) throws(ChannelPipelineError) {
        guard let context = context(handler: handler) else { throw .notFound("\(type(of: handler))") }
        try removeHandler(context: context)
    }

    /// Removes the handler of `context`.
    ///
    /// An event passing through the handler right now continues to the next stage; later events
    /// skip it. `handlerRemoved` runs before this returns. Throws when the pipeline without the
    /// handler would not type-check (its neighbours do not fit each other).
    public func removeHandler(context: ChannelHandlerContext) throws(ChannelPipelineError) {
        eventLoop.assertInEventLoop()
        guard !context.isRemoved, let index = contexts.firstIndex(where: { $0 === context }) else {
            throw .notFound(context.name)
        }
        // Held here until `retire` hands it to the graveyard: an event may be inside it right now,
        // and the links that event travels along do not retain it.
        let removed = contexts.remove(at: index)
        if let mismatch = typeMismatch() {
            contexts.insert(removed, at: index)
            throw mismatch
        }
        retire(removed)
    }

    /// Tells the pipeline that its channel has closed (after `channelInactive`): removes every
    /// handler now and, on the loop's next turn, when no event can be inside the pipeline any more,
    /// lets go of the channel.
    ///
    /// Removing the handlers breaks the cycles between the pipeline and the contexts; letting go of
    /// the channel breaks the one between the channel and the pipeline, so that a closed channel
    /// nobody else holds is freed. From then on operations that reach the head fail: the head lets
    /// go of the transport in the same step. Called once by the transport; later calls do nothing.
    package func channelDidClose() {
        eventLoop.assertInEventLoop()
        guard !isClosed else { return }
        isClosed = true
        removeAll()
        // One task for both: removing the handlers has usually scheduled the burial already.
        scheduleNextTurn()
    }

    private func removeAll() {
        let removed = contexts
        guard !removed.isEmpty else { return }
        contexts.removeAll()
        // One relink for all: the links of the live stages depend only on `contexts`, which is now
        // empty and which only `addHandlers` (relinking itself) can change while the handlers
        // below see `handlerRemoved`.
        relink()
        for context in removed.reversed() { retire(context, relinking: false) }
    }

    /// Runs ``onNextTurn()`` on the loop's next turn, unless it is already scheduled.
    private func scheduleNextTurn() {
        guard !nextTurnScheduled else { return }
        nextTurnScheduled = true
        eventLoop.execute { [self] in self.onNextTurn() }
    }

    /// Buries the contexts removed during the last turn and, once the channel has closed, lets go of it.
    private func onNextTurn() {
        nextTurnScheduled = false
        buryRemovedContexts()
        if isClosed, owningChannel != nil { releaseChannel() }
    }

    private func releaseChannel() {
        ends.detachTransport()
        closedChannel = owningChannel
        owningChannel = nil
    }

    /// Marks `context` removed (after it has left `contexts`), points the removed stages past it,
    /// and tells its handler. `relinking` false: the caller has already relinked the live stages.
    private func retire(_ context: ChannelHandlerContext, relinking: Bool = true) {
        context.isRemoved = true
        if relinking { relink() }
        // The removed context keeps its own links, so that an event now inside its handler can still
        // be passed on; it stays alive until the loop's next turn, when no event can be inside it.
        scheduleNextTurn()
        graveyard.append(context)
        skipRemovedStages()
        context.anyHandler.handlerRemoved(context: context)
    }

    /// Points the removed contexts past the stages removed after them, so that an event one of them
    /// passes on reaches the next stage still in the pipeline, never a handler that has already seen
    /// `handlerRemoved` (a handler that removed itself and then its successor, or closed the channel).
    ///
    /// On the unretained links themselves: a close removes every handler, one after the other, and
    /// each removal passes over all the stages removed before it, so going through the routes (which
    /// hold their stages strongly) would cost a retain and a release per link and step.
    private func skipRemovedStages() {
        for context in graveyard { context.skipRemovedLinks() }
    }

    private func buryRemovedContexts() {
        for context in graveyard { context.clearLinks() }
        graveyard.removeAll()
    }

    // MARK: Finding handlers

    /// The context of the handler named `name`.
    public func context(name: String) -> ChannelHandlerContext? {
        eventLoop.assertInEventLoop()
        return contexts.first { $0.name == name }
    }

    /// The context of `handler`.
    public func context(handler: any ChannelHandler) -> ChannelHandlerContext? {
        eventLoop.assertInEventLoop()
        return contexts.first { $0.anyHandler === handler }
    }

    /// The first handler of type `Handler`.
    public func handler<Handler: ChannelHandler>(type: Handler.Type) -> Handler? {
        eventLoop.assertInEventLoop()
        for context in contexts { if let handler = context.anyHandler as? Handler { return handler } }
        return nil
    }

    // MARK: Inbound events, from the transport

    /// Fires `channelRegistered` from the head.
    public func fireChannelRegistered() { headContext.fireChannelRegistered() }
    /// Fires `channelActive` from the head.
    public func fireChannelActive() { headContext.fireChannelActive() }
    /// Fires `channelInactive` from the head.
    public func fireChannelInactive() { headContext.fireChannelInactive() }
    /// Fires `channelRead` from the head.
    @inlinable public func fireChannelRead<Message>(_ data: Message) { headContext.fireChannelRead(data) }
    /// Fires `channelReadComplete` from the head.
    public func fireChannelReadComplete() { headContext.fireChannelReadComplete() }
    /// Fires `errorCaught` from the head.
    public func fireErrorCaught(_ error: any Error) { headContext.fireErrorCaught(error) }
    /// Fires `userInboundEventTriggered` from the head.
    public func fireUserInboundEventTriggered(_ event: Any) { headContext.fireUserInboundEventTriggered(event) }
    /// Fires `channelWritabilityChanged` from the head.
    public func fireChannelWritabilityChanged() { headContext.fireChannelWritabilityChanged() }

    // MARK: Outbound operations, from the application

    /// Writes `data` from the tail.
    @inlinable public func write<Message>(_ data: Message, promise: Promise<Void>? = nil) { tailContext.write(data, promise: promise) }
    /// Writes `data` from the tail and flushes.
    @inlinable public func writeAndFlush<Message>(_ data: Message, promise: Promise<Void>? = nil) {
        tailContext.writeAndFlush(data, promise: promise)
    }
    /// Flushes from the tail.
    public func flush() { tailContext.flush() }
    /// Requests input from the tail.
    public func read() { tailContext.read() }
    /// Closes from the tail.
    public func close(mode: CloseMode = .all, promise: Promise<Void>? = nil) { tailContext.close(mode: mode, promise: promise) }
    /// Binds from the tail.
    public func bind(to address: SocketAddress, promise: Promise<Void>? = nil) { tailContext.bind(to: address, promise: promise) }
    /// Connects from the tail.
    public func connect(to address: SocketAddress, promise: Promise<Void>? = nil) { tailContext.connect(to: address, promise: promise) }
    /// Sends a user event from the tail.
    public func triggerUserOutboundEvent(_ event: Any, promise: Promise<Void>? = nil) {
        tailContext.triggerUserOutboundEvent(event, promise: promise)
    }

    /// Where inbound events enter; checks that they do so on the loop.
    @usableFromInline var headContext: ChannelHandlerContext {
        eventLoop.assertInEventLoop()
        return ends
    }
    /// Where outbound operations enter; checks that they do so on the loop.
    @usableFromInline var tailContext: ChannelHandlerContext {
        eventLoop.assertInEventLoop()
        return ends
    }

    // MARK: Structure

    private func makeContext(for handler: any ChannelHandler, name: HandlerName) -> ChannelHandlerContext {
        if let duplex = handler as? any (ChannelInboundHandler & ChannelOutboundHandler) {
            return makeDuplex(duplex, name: name)
        } else if let inbound = handler as? any ChannelInboundHandler {
            return makeInbound(inbound, name: name)
        } else if let outbound = handler as? any ChannelOutboundHandler {
            return makeOutbound(outbound, name: name)
        }
        return makePassive(handler, name: name)
    }

    private func makeDuplex<H: ChannelInboundHandler & ChannelOutboundHandler>(_ handler: H, name: HandlerName) -> ChannelHandlerContext {
        DuplexHandlerContext(name: name, handler: handler, pipeline: self)
    }
    private func makeInbound<H: ChannelInboundHandler>(_ handler: H, name: HandlerName) -> ChannelHandlerContext {
        InboundHandlerContext(name: name, handler: handler, pipeline: self)
    }
    private func makeOutbound<H: ChannelOutboundHandler>(_ handler: H, name: HandlerName) -> ChannelHandlerContext {
        OutboundHandlerContext(name: name, handler: handler, pipeline: self)
    }
    private func makePassive<H: ChannelHandler>(_ handler: H, name: HandlerName) -> ChannelHandlerContext {
        PassiveHandlerContext(name: name, handler: handler, pipeline: self)
    }

    private func insertionIndex(for position: Position) throws(ChannelPipelineError) -> Int {
        switch position {
        case .first: return 0
        case .last: return contexts.count
        case .before(let name):
            guard let index = contexts.firstIndex(where: { $0.name == name }) else { throw .notFound(name) }
            return index
        case .after(let name):
            guard let index = contexts.firstIndex(where: { $0.name == name }) else { throw .notFound(name) }
            return index + 1
        }
    }

    private func uniqueName(_ requested: String?, for handler: any ChannelHandler, pending: [ChannelHandlerContext]) throws(ChannelPipelineError) -> HandlerName {
        let taken = { (name: String) in
            name == "head" || name == "tail" || self.contexts.contains { $0.name == name } || pending.contains { $0.name == name }
        }
        if let requested {
            guard !taken(requested) else { throw .duplicateName(requested) }
            return HandlerName(given: requested)
        }
        var name: HandlerName
        repeat {
            name = HandlerName(number: nameCounter)
            nameCounter &+= 1
        } while taken(name.resolved(for: handler))
        return name
    }

    /// Recomputes every live context's links to its next inbound and outbound stage: the ends' inbound
    /// links are the head's, their outbound links the tail's (see ``PipelineEnds``).
    private func relink() {
        var inbound = InboundRoute(to: ends)
        for context in contexts.reversed() {
            context.inboundRoute = inbound
            inbound = context.inboundRoute(through: inbound)
        }
        ends.inboundRoute = inbound

        var outbound = OutboundRoute(to: ends)
        for context in contexts {
            context.outboundRoute = outbound
            outbound = context.outboundRoute(through: outbound)
        }
        ends.outboundRoute = outbound
    }

    /// The first place where neighbouring stages' declared message types do not fit, if any.
    ///
    /// Inbound: each inbound stage reads what the previous inbound stage (or the transport) emits.
    /// Outbound: what each stage writes (its `OutboundOut`) is what the next outbound stage toward
    /// the head (or the transport) accepts. `Never` means "emits nothing" and fits anything; `Any`
    /// accepts anything; an unknown transport type (embedded channels) fits anything.
    private func typeMismatch() -> ChannelPipelineError? {
        var producer: (name: String, type: Any.Type?) = ("head", ends.types.inboundOut)
        var acceptor: (name: String, type: Any.Type?) = ("head", ends.types.outboundIn)
        for context in contexts {
            if let reads = context.types.inboundIn {
                if let emitted = producer.type, !Self.fits(emitted, into: reads) {
                    return .typeMismatch(
                        "'\(context.name)' reads \(reads) but '\(producer.name)' before it emits \(emitted)")
                }
                producer = (context.name, context.types.inboundOut)
            }
            if let writes = context.types.outboundOut, let accepted = acceptor.type, !Self.fits(writes, into: accepted) {
                return .typeMismatch(
                    "'\(context.name)' writes \(writes) but '\(acceptor.name)' before it accepts \(accepted)")
            }
            if let accepts = context.types.outboundIn { acceptor = (context.name, accepts) }
        }
        return nil
    }

    private static func fits(_ emitted: Any.Type, into accepted: Any.Type) -> Bool {
        emitted == accepted || emitted == Never.self || accepted == Any.self || emitted == Any.self
    }
}

/// Errors from configuring a pipeline or passing messages through it.
public enum ChannelPipelineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Neighbouring stages' declared message types do not fit; the pipeline was left unchanged.
    case typeMismatch(String)
    /// A stage passed a message of a type its neighbour does not take; the message was dropped.
    case messageTypeMismatch(String)
    /// A handler with this name is already in the pipeline.
    case duplicateName(String)
    /// No handler with this name (or identity) is in the pipeline.
    case notFound(String)

    public var description: String {
        switch self {
        case .typeMismatch(let detail): return "pipeline type mismatch: \(detail)"
        case .messageTypeMismatch(let detail): return "message type mismatch: \(detail)"
        case .duplicateName(let name): return "a handler named '\(name)' is already in the pipeline"
        case .notFound(let name): return "no handler '\(name)' in the pipeline"
        }
    }
}
