/// A handler's place in a ``ChannelPipeline``: how it passes events to its neighbours.
///
/// Inbound events go from the head (the network) toward the tail (the application); outbound
/// operations go from the tail toward the head. Each context keeps direct links to the next handler
/// that takes part in each direction, so an event skips the stages that do not handle it.
///
/// Messages travel as their own type. The pipeline checked, when it was configured, that each
/// stage's output type is its neighbour's input type; at each hop one pointer comparison of type
/// identities confirms it (a handler that passes a message of another type gets a
/// ``ChannelPipelineError/messageTypeMismatch(_:)`` error instead of a crash). No `Any` box, no cast.
///
/// A context is confined to its channel's event loop.
///
/// A handler may keep its context for as long as it likes, past the channel's close: the context
/// keeps its pipeline alive, and the pipeline its channel until the channel has closed. After the
/// close, every operation through the context fails its promise with a ``ChannelError``
/// (``ChannelError/ioOnClosedChannel``, or ``ChannelError/alreadyClosed`` for `close`), and `flush`
/// and `read` do nothing. (A handler that keeps its context forms a reference cycle with it, as in
/// SwiftNIO: release the context in `handlerRemoved` to free both as soon as the channel closes.)
public class ChannelHandlerContext {
    /// The handler's name, unique within its pipeline.
    public var name: String { storedName.resolved(for: anyHandler) }
    /// The name, made into a string only when asked. (Declared next to the flags below: the small
    /// fields share one word, and a context stays within its allocation size class.)
    private let storedName: HandlerName
    /// Whether `pipelineLink` is retained (see there).
    private let retainsPipeline: Bool
    // `@exclusivity(unchecked)`: loop-confined hot state. Only the loop's thread touches it, and no access
    // spans a call that could re-enter, so the runtime check (a thread-local lookup per access) buys nothing.
    /// Whether the handler has been removed from the pipeline.
    @exclusivity(unchecked) public internal(set) var isRemoved = false
    /// The pipeline this context belongs to.
    public var pipeline: ChannelPipeline { pipelineLink.takeUnretainedValue() }
    /// The pipeline: retained by a handler's context (released in `deinit`), so that a context a
    /// handler keeps keeps its pipeline; unretained by the head and the tail, which the pipeline owns
    /// (a strong reference back would be a cycle that nothing breaks). The head and the tail are
    /// never handed out, and every path into them comes from the pipeline or from a handler's
    /// context, both of which hold the pipeline, so they never outlive it.
    private let pipelineLink: Unmanaged<ChannelPipeline>

    // The links to the next stages are unretained, and events are passed along them as guaranteed
    // references: a strong (or unsafe unowned) load would retain and release the next context on
    // every hop. Safe because the pipeline always owns every context, live or removed: it hands a
    // removed one to its graveyard before letting go of it, and keeps it there until the loop's next
    // turn, when no event can be inside it.
    //
    // The per-message events have links of their own, which skip the stages that declare they pass
    // that event through (``ChannelHandler/passThroughEvents``); the other events take the general
    // link to the next inbound or outbound stage.
    /// The next handler toward the tail that handles inbound events.
    @exclusivity(unchecked) @usableFromInline var nextInboundLink: Unmanaged<ChannelHandlerContext>?
    /// The next handler toward the tail that handles `channelRead`.
    @exclusivity(unchecked) @usableFromInline var nextChannelReadLink: Unmanaged<ChannelHandlerContext>?
    /// The next handler toward the tail that handles `channelReadComplete`.
    @exclusivity(unchecked) @usableFromInline var nextReadCompleteLink: Unmanaged<ChannelHandlerContext>?
    /// The next handler toward the head that handles outbound operations.
    @exclusivity(unchecked) @usableFromInline var nextOutboundLink: Unmanaged<ChannelHandlerContext>?
    /// The next handler toward the head that handles `write`.
    @exclusivity(unchecked) @usableFromInline var nextWriteLink: Unmanaged<ChannelHandlerContext>?
    /// The next handler toward the head that handles `flush`.
    @exclusivity(unchecked) @usableFromInline var nextFlushLink: Unmanaged<ChannelHandlerContext>?
    /// The next handler toward the head that handles `read`.
    @exclusivity(unchecked) @usableFromInline var nextReadRequestLink: Unmanaged<ChannelHandlerContext>?

    /// The next handlers toward the tail, per inbound event.
    final var inboundRoute: InboundRoute {
        get {
            InboundRoute(any: nextInboundLink?.takeUnretainedValue(),
                         channelRead: nextChannelReadLink?.takeUnretainedValue(),
                         channelReadComplete: nextReadCompleteLink?.takeUnretainedValue())
        }
        set {
            nextInboundLink = newValue.any.map { Unmanaged.passUnretained($0) }
            nextChannelReadLink = newValue.channelRead.map { Unmanaged.passUnretained($0) }
            nextReadCompleteLink = newValue.channelReadComplete.map { Unmanaged.passUnretained($0) }
        }
    }
    /// The next handlers toward the head, per outbound operation.
    final var outboundRoute: OutboundRoute {
        get {
            OutboundRoute(any: nextOutboundLink?.takeUnretainedValue(), write: nextWriteLink?.takeUnretainedValue(),
                          flush: nextFlushLink?.takeUnretainedValue(), read: nextReadRequestLink?.takeUnretainedValue())
        }
        set {
            nextOutboundLink = newValue.any.map { Unmanaged.passUnretained($0) }
            nextWriteLink = newValue.write.map { Unmanaged.passUnretained($0) }
            nextFlushLink = newValue.flush.map { Unmanaged.passUnretained($0) }
            nextReadRequestLink = newValue.read.map { Unmanaged.passUnretained($0) }
        }
    }
    /// The next handler toward the head that handles outbound operations.
    final var nextOutbound: ChannelHandlerContext? { nextOutboundLink?.takeUnretainedValue() }

    /// Points every link past the removed stages it leads to, following the removed stages' own
    /// links of the same kind, so that an event this stage passes on reaches the next stage still
    /// in the pipeline. Works on the unretained links: no reference counting.
    final func skipRemovedLinks() {
        nextInboundLink = Self.firstLive(nextInboundLink) { $0.nextInboundLink }
        nextChannelReadLink = Self.firstLive(nextChannelReadLink) { $0.nextChannelReadLink }
        nextReadCompleteLink = Self.firstLive(nextReadCompleteLink) { $0.nextReadCompleteLink }
        nextOutboundLink = Self.firstLive(nextOutboundLink) { $0.nextOutboundLink }
        nextWriteLink = Self.firstLive(nextWriteLink) { $0.nextWriteLink }
        nextFlushLink = Self.firstLive(nextFlushLink) { $0.nextFlushLink }
        nextReadRequestLink = Self.firstLive(nextReadRequestLink) { $0.nextReadRequestLink }
    }

    /// Clears every link (a buried stage leads nowhere).
    final func clearLinks() {
        nextInboundLink = nil
        nextChannelReadLink = nil
        nextReadCompleteLink = nil
        nextOutboundLink = nil
        nextWriteLink = nil
        nextFlushLink = nil
        nextReadRequestLink = nil
    }

    /// `link`, or the first link after it (following `next`) to a stage that has not been removed.
    @inline(__always)
    private static func firstLive(
        _ link: Unmanaged<ChannelHandlerContext>?, next: (ChannelHandlerContext) -> Unmanaged<ChannelHandlerContext>?
    ) -> Unmanaged<ChannelHandlerContext>? {
        var link = link
        while let current = link, current._withUnsafeGuaranteedRef({ $0.isRemoved }) {
            link = current._withUnsafeGuaranteedRef(next)
        }
        return link
    }

    /// The route that the stage before this one (toward the head) takes for inbound events, given
    /// this stage's own route `next`: this stage, for the events it handles; `next` for the others.
    final func inboundRoute(through next: InboundRoute) -> InboundRoute {
        guard takesInbound else { return next }
        let skipped = passedThroughEvents
        return InboundRoute(any: self,
                            channelRead: skipped.contains(.channelRead) ? next.channelRead : self,
                            channelReadComplete: skipped.contains(.channelReadComplete) ? next.channelReadComplete : self)
    }

    /// The route that the stage after this one (toward the tail) takes for outbound operations,
    /// given this stage's own route `next` (see ``inboundRoute(through:)``).
    final func outboundRoute(through next: OutboundRoute) -> OutboundRoute {
        guard takesOutbound else { return next }
        let skipped = passedThroughEvents
        return OutboundRoute(any: self,
                             write: skipped.contains(.write) ? next.write : self,
                             flush: skipped.contains(.flush) ? next.flush : self,
                             read: skipped.contains(.read) ? next.read : self)
    }

    /// The events the handler declares it passes through, less `channelRead` and `write` where
    /// the handler changes the message type (it could not be skipped without breaking the types).
    private var passedThroughEvents: PassThroughEvents {
        var events = type(of: anyHandler).passThroughEvents
        let types = self.types
        if !Self.same(types.inboundIn, types.inboundOut) { events.remove(.channelRead) }
        if !Self.same(types.outboundIn, types.outboundOut) { events.remove(.write) }
        return events
    }

    private static func same(_ first: Any.Type?, _ second: Any.Type?) -> Bool {
        guard let first, let second else { return false }
        return ObjectIdentifier(first) == ObjectIdentifier(second)
    }

    /// The identity of the message type this stage reads, or nil when it takes any type unchanged.
    @usableFromInline let inboundInID: ObjectIdentifier?
    /// The identity of the message type this stage accepts for writing, or nil for any type.
    @usableFromInline let outboundInID: ObjectIdentifier?

    /// The declared types, for the configuration-time check and for error messages. Computed from
    /// the handler's type rather than stored: contexts are per connection, and memory per idle
    /// connection matters.
    var types: MessageTypes { MessageTypes() }

    /// A handler's context (`retainsPipeline`), or the pipeline's own head or tail (not retaining it).
    init(name: HandlerName, pipeline: ChannelPipeline, retainsPipeline: Bool = true, inboundIn: Any.Type?, outboundIn: Any.Type?) {
        self.storedName = name
        self.pipelineLink = retainsPipeline ? .passRetained(pipeline) : .passUnretained(pipeline)
        self.retainsPipeline = retainsPipeline
        self.inboundInID = inboundIn.map(ObjectIdentifier.init)
        self.outboundInID = outboundIn.map(ObjectIdentifier.init)
    }

    deinit {
        if retainsPipeline { pipelineLink.release() }
    }

    /// The channel this context's pipeline belongs to.
    public var channel: any Channel { pipeline.channel }
    /// The channel's event loop.
    public var eventLoop: any EventLoop { pipeline.eventLoop }
    /// The handler in this context, type-erased.
    public var anyHandler: any ChannelHandler { preconditionFailure("abstract") }

    var takesInbound: Bool { types.inboundIn != nil }
    var takesOutbound: Bool { types.outboundIn != nil }

    // MARK: Inbound events, fired toward the tail

    /// Tells the next inbound handler that the channel was registered.
    @inlinable public func fireChannelRegistered() { nextInboundLink?._withUnsafeGuaranteedRef { $0.invokeChannelRegistered() } }
    /// Tells the next inbound handler that the channel is active.
    @inlinable public func fireChannelActive() { nextInboundLink?._withUnsafeGuaranteedRef { $0.invokeChannelActive() } }
    /// Tells the next inbound handler that the channel is inactive.
    @inlinable public func fireChannelInactive() { nextInboundLink?._withUnsafeGuaranteedRef { $0.invokeChannelInactive() } }
    /// Tells the next inbound handler that a read batch completed.
    @inlinable public func fireChannelReadComplete() { nextReadCompleteLink?._withUnsafeGuaranteedRef { $0.invokeChannelReadComplete() } }
    /// Passes an error to the next inbound handler.
    @inlinable public func fireErrorCaught(_ error: any Error) { nextInboundLink?._withUnsafeGuaranteedRef { $0.invokeErrorCaught(error) } }
    /// Passes a user event to the next inbound handler.
    @inlinable public func fireUserInboundEventTriggered(_ event: Any) {
        nextInboundLink?._withUnsafeGuaranteedRef { $0.invokeUserInboundEventTriggered(event) }
    }
    /// Tells the next inbound handler that writability changed.
    @inlinable public func fireChannelWritabilityChanged() { nextInboundLink?._withUnsafeGuaranteedRef { $0.invokeChannelWritabilityChanged() } }

    /// Passes a message to the next inbound handler.
    ///
    /// `Message` must be the next stage's `InboundIn` (the pipeline checked the declared types when
    /// it was configured). A mismatch is reported to the next stage as an error and the message dropped.
    @inlinable
    public func fireChannelRead<Message>(_ data: Message) {
        nextChannelReadLink?._withUnsafeGuaranteedRef { next in
            if next.inboundInID == ObjectIdentifier(Message.self) {
                // The commonest message takes a concrete path (the branch folds away where the
                // caller's type is known).
                if Message.self == ByteBuffer.self {
                    next.invokeChannelReadByteBuffer(unsafeBitCast(data, to: ByteBuffer.self))
                } else {
                    next.invokeChannelRead(data)
                }
            } else {
                next.invokeChannelReadChecked(data, from: self)
            }
        }
    }

    // MARK: Outbound operations, toward the head

    /// Passes a message to the next outbound handler without flushing.
    ///
    /// `Message` must be the next outbound stage's `OutboundIn`; a mismatch fails `promise` with
    /// ``ChannelPipelineError/messageTypeMismatch(_:)``.
    @inlinable
    public func write<Message>(_ data: Message, promise: Promise<Void>? = nil) {
        guard let link = nextWriteLink else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        link._withUnsafeGuaranteedRef { next in
            if next.outboundInID == ObjectIdentifier(Message.self) {
                if Message.self == ByteBuffer.self {
                    next.invokeWriteByteBuffer(unsafeBitCast(data, to: ByteBuffer.self), promise: promise)
                } else {
                    next.invokeWrite(data, promise: promise)
                }
            } else {
                next.invokeWriteChecked(data, promise: promise, from: self)
            }
        }
    }

    /// Writes and then flushes.
    @inlinable
    public func writeAndFlush<Message>(_ data: Message, promise: Promise<Void>? = nil) {
        write(data, promise: promise)
        flush()
    }

    /// Asks the next outbound handler to send what is queued.
    @inlinable public func flush() { nextFlushLink?._withUnsafeGuaranteedRef { $0.invokeFlush() } }
    /// Asks for more input (when auto-read is off).
    @inlinable public func read() { nextReadRequestLink?._withUnsafeGuaranteedRef { $0.invokeRead() } }

    /// Closes the channel, or one direction of it.
    public func close(mode: CloseMode = .all, promise: Promise<Void>? = nil) {
        guard let next = nextOutbound else { promise?.fail(ChannelError.alreadyClosed); return }
        next.invokeClose(mode: mode, promise: promise)
    }

    /// Binds the channel.
    public func bind(to address: SocketAddress, promise: Promise<Void>? = nil) {
        guard let next = nextOutbound else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        next.invokeBind(to: address, promise: promise)
    }

    /// Connects the channel.
    public func connect(to address: SocketAddress, promise: Promise<Void>? = nil) {
        guard let next = nextOutbound else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        next.invokeConnect(to: address, promise: promise)
    }

    /// Passes a user event toward the head.
    public func triggerUserOutboundEvent(_ event: Any, promise: Promise<Void>? = nil) {
        guard let next = nextOutbound else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        next.invokeTriggerUserOutboundEvent(event, promise: promise)
    }

    // MARK: Invocation, overridden per kind of stage

    @usableFromInline func invokeChannelRegistered() { preconditionFailure("not an inbound stage") }
    @usableFromInline func invokeChannelActive() { preconditionFailure("not an inbound stage") }
    @usableFromInline func invokeChannelInactive() { preconditionFailure("not an inbound stage") }
    /// Delivers `data`, whose type the caller has checked is this stage's `InboundIn`.
    @usableFromInline func invokeChannelRead<Message>(_ data: Message) { preconditionFailure("not an inbound stage") }
    @usableFromInline func invokeChannelReadComplete() { preconditionFailure("not an inbound stage") }
    @usableFromInline func invokeErrorCaught(_ error: any Error) { preconditionFailure("not an inbound stage") }
    @usableFromInline func invokeUserInboundEventTriggered(_ event: Any) { preconditionFailure("not an inbound stage") }
    @usableFromInline func invokeChannelWritabilityChanged() { preconditionFailure("not an inbound stage") }

    /// Delivers a `ByteBuffer` the caller has checked is this stage's `InboundIn`.
    @usableFromInline func invokeChannelReadByteBuffer(_ data: ByteBuffer) { invokeChannelRead(data) }
    /// Delivers a `ByteBuffer` write the caller has checked is this stage's `OutboundIn`.
    @usableFromInline func invokeWriteByteBuffer(_ data: ByteBuffer, promise: Promise<Void>?) { invokeWrite(data, promise: promise) }

    /// Delivers `data`, whose type the caller has checked is this stage's `OutboundIn`.
    @usableFromInline func invokeWrite<Message>(_ data: Message, promise: Promise<Void>?) {
        preconditionFailure("not an outbound stage")
    }
    @usableFromInline func invokeFlush() { preconditionFailure("not an outbound stage") }
    @usableFromInline func invokeRead() { preconditionFailure("not an outbound stage") }
    func invokeClose(mode: CloseMode, promise: Promise<Void>?) { preconditionFailure("not an outbound stage") }
    func invokeBind(to address: SocketAddress, promise: Promise<Void>?) { preconditionFailure("not an outbound stage") }
    func invokeConnect(to address: SocketAddress, promise: Promise<Void>?) { preconditionFailure("not an outbound stage") }
    func invokeTriggerUserOutboundEvent(_ event: Any, promise: Promise<Void>?) { preconditionFailure("not an outbound stage") }

    // MARK: The slow paths: stages that take any type, and mismatches

    /// Delivers a boxed value if it holds this stage's `InboundIn`; returns whether it did.
    func unboxAndInvokeChannelRead(_ value: Any) -> Bool { false }
    /// Delivers a boxed value if it holds this stage's `OutboundIn`; returns whether it did.
    func unboxAndInvokeWrite(_ value: Any, promise: Promise<Void>?) -> Bool { false }

    @usableFromInline
    final func invokeChannelReadChecked<Message>(_ data: Message, from sender: ChannelHandlerContext) {
        if inboundInID == nil {
            invokeChannelRead(data)
        } else if inboundInID == MessageTypes.anyID {
            invokeChannelRead(data as Any)
        } else if Message.self == Any.self, unboxAndInvokeChannelRead(data as Any) {
            // A value passed on by an `Any`-typed stage, of the type this stage reads.
        } else {
            let error = ChannelPipelineError.messageTypeMismatch(
                "'\(sender.name)' fired a \(Message.self) but '\(name)' reads \(types.inboundIn.map { "\($0)" } ?? "?")"
            )
            invokeErrorCaught(error)
        }
    }

    @usableFromInline
    final func invokeWriteChecked<Message>(_ data: Message, promise: Promise<Void>?, from sender: ChannelHandlerContext) {
        if outboundInID == nil {
            invokeWrite(data, promise: promise)
        } else if outboundInID == MessageTypes.anyID {
            invokeWrite(data as Any, promise: promise)
        } else if Message.self == Any.self, unboxAndInvokeWrite(data as Any, promise: promise) {
            // A value passed on by an `Any`-typed stage, of the type this stage accepts.
        } else {
            let error = ChannelPipelineError.messageTypeMismatch(
                // The pipeline's ends send outbound operations as its tail.
                "'\(sender is TransportContext ? "tail" : sender.name)' wrote a \(Message.self) but '\(name)' accepts \(types.outboundIn.map { "\($0)" } ?? "?")"
            )
            promise?.fail(error)
            pipeline.fireErrorCaught(error)
        }
    }
}

/// The next stages toward the tail from some point of the pipeline: for any inbound event, and for
/// each per-message one (which may skip stages that pass it through).
struct InboundRoute {
    var any: ChannelHandlerContext?
    var channelRead: ChannelHandlerContext?
    var channelReadComplete: ChannelHandlerContext?

    /// Every event to `stage` (nil: nowhere).
    init(to stage: ChannelHandlerContext?) { (any, channelRead, channelReadComplete) = (stage, stage, stage) }

    init(any: ChannelHandlerContext?, channelRead: ChannelHandlerContext?, channelReadComplete: ChannelHandlerContext?) {
        (self.any, self.channelRead, self.channelReadComplete) = (any, channelRead, channelReadComplete)
    }
}

/// The next stages toward the head from some point of the pipeline: for any outbound operation,
/// and for each per-message one (which may skip stages that pass it through).
struct OutboundRoute {
    var any: ChannelHandlerContext?
    var write: ChannelHandlerContext?
    var flush: ChannelHandlerContext?
    var read: ChannelHandlerContext?

    /// Every operation to `stage` (nil: nowhere).
    init(to stage: ChannelHandlerContext?) { (any, write, flush, read) = (stage, stage, stage, stage) }

    init(any: ChannelHandlerContext?, write: ChannelHandlerContext?, flush: ChannelHandlerContext?, read: ChannelHandlerContext?) {
        (self.any, self.write, self.flush, self.read) = (any, write, flush, read)
    }
}

/// The message types a stage declares; `nil` where the stage does not take part in a direction.
struct MessageTypes {
    var inboundIn: Any.Type?
    var inboundOut: Any.Type?
    var outboundIn: Any.Type?
    var outboundOut: Any.Type?

    static let anyID = ObjectIdentifier(Any.self)
}

// MARK: - Concrete stages

/// A stage holding an inbound-only handler.
final class InboundHandlerContext<Handler: ChannelInboundHandler>: ChannelHandlerContext {
    let handler: Handler

    init(name: HandlerName, handler: Handler, pipeline: ChannelPipeline) {
        self.handler = handler
        super.init(name: name, pipeline: pipeline, inboundIn: Handler.InboundIn.self, outboundIn: nil)
    }

    override var types: MessageTypes {
        MessageTypes(inboundIn: Handler.InboundIn.self, inboundOut: Handler.InboundOut.self,
                     outboundIn: nil, outboundOut: Handler.OutboundOut.self)
    }
    override var anyHandler: any ChannelHandler { handler }
    override func invokeChannelRegistered() { handler.channelRegistered(context: self) }
    override func invokeChannelActive() { handler.channelActive(context: self) }
    override func invokeChannelInactive() { handler.channelInactive(context: self) }
    override func invokeChannelRead<Message>(_ data: Message) {
        handler.channelRead(context: self, data: unsafeBitCast(data, to: Handler.InboundIn.self))
    }
    override func invokeChannelReadByteBuffer(_ data: ByteBuffer) { handler._channelReadByteBuffer(context: self, data: data) }
    override func unboxAndInvokeChannelRead(_ value: Any) -> Bool {
        guard let data = value as? Handler.InboundIn else { return false }
        handler.channelRead(context: self, data: data)
        return true
    }
    override func invokeChannelReadComplete() { handler.channelReadComplete(context: self) }
    override func invokeErrorCaught(_ error: any Error) { handler.errorCaught(context: self, error: error) }
    override func invokeUserInboundEventTriggered(_ event: Any) { handler.userInboundEventTriggered(context: self, event: event) }
    override func invokeChannelWritabilityChanged() { handler.channelWritabilityChanged(context: self) }
}

/// A stage holding an outbound-only handler.
final class OutboundHandlerContext<Handler: ChannelOutboundHandler>: ChannelHandlerContext {
    let handler: Handler

    init(name: HandlerName, handler: Handler, pipeline: ChannelPipeline) {
        self.handler = handler
        super.init(name: name, pipeline: pipeline, inboundIn: nil, outboundIn: Handler.OutboundIn.self)
    }

    override var types: MessageTypes {
        MessageTypes(inboundIn: nil, inboundOut: nil, outboundIn: Handler.OutboundIn.self, outboundOut: Handler.OutboundOut.self)
    }
    override var anyHandler: any ChannelHandler { handler }
    override func invokeWrite<Message>(_ data: Message, promise: Promise<Void>?) {
        handler.write(context: self, data: unsafeBitCast(data, to: Handler.OutboundIn.self), promise: promise)
    }
    override func invokeWriteByteBuffer(_ data: ByteBuffer, promise: Promise<Void>?) {
        handler._writeByteBuffer(context: self, data: data, promise: promise)
    }
    override func unboxAndInvokeWrite(_ value: Any, promise: Promise<Void>?) -> Bool {
        guard let data = value as? Handler.OutboundIn else { return false }
        handler.write(context: self, data: data, promise: promise)
        return true
    }
    override func invokeFlush() { handler.flush(context: self) }
    override func invokeRead() { handler.read(context: self) }
    override func invokeClose(mode: CloseMode, promise: Promise<Void>?) { handler.close(context: self, mode: mode, promise: promise) }
    override func invokeBind(to address: SocketAddress, promise: Promise<Void>?) { handler.bind(context: self, to: address, promise: promise) }
    override func invokeConnect(to address: SocketAddress, promise: Promise<Void>?) {
        handler.connect(context: self, to: address, promise: promise)
    }
    override func invokeTriggerUserOutboundEvent(_ event: Any, promise: Promise<Void>?) {
        handler.triggerUserOutboundEvent(context: self, event: event, promise: promise)
    }
}

/// A stage holding a handler that takes part in both directions.
final class DuplexHandlerContext<Handler: ChannelInboundHandler & ChannelOutboundHandler>: ChannelHandlerContext {
    let handler: Handler

    init(name: HandlerName, handler: Handler, pipeline: ChannelPipeline) {
        self.handler = handler
        super.init(name: name, pipeline: pipeline, inboundIn: Handler.InboundIn.self, outboundIn: Handler.OutboundIn.self)
    }

    override var types: MessageTypes {
        MessageTypes(inboundIn: Handler.InboundIn.self, inboundOut: Handler.InboundOut.self,
                     outboundIn: Handler.OutboundIn.self, outboundOut: Handler.OutboundOut.self)
    }
    override var anyHandler: any ChannelHandler { handler }
    override func invokeChannelRegistered() { handler.channelRegistered(context: self) }
    override func invokeChannelActive() { handler.channelActive(context: self) }
    override func invokeChannelInactive() { handler.channelInactive(context: self) }
    override func invokeChannelRead<Message>(_ data: Message) {
        handler.channelRead(context: self, data: unsafeBitCast(data, to: Handler.InboundIn.self))
    }
    override func invokeChannelReadByteBuffer(_ data: ByteBuffer) { handler._channelReadByteBuffer(context: self, data: data) }
    override func unboxAndInvokeChannelRead(_ value: Any) -> Bool {
        guard let data = value as? Handler.InboundIn else { return false }
        handler.channelRead(context: self, data: data)
        return true
    }
    override func invokeChannelReadComplete() { handler.channelReadComplete(context: self) }
    override func invokeErrorCaught(_ error: any Error) { handler.errorCaught(context: self, error: error) }
    override func invokeUserInboundEventTriggered(_ event: Any) { handler.userInboundEventTriggered(context: self, event: event) }
    override func invokeChannelWritabilityChanged() { handler.channelWritabilityChanged(context: self) }
    override func invokeWrite<Message>(_ data: Message, promise: Promise<Void>?) {
        handler.write(context: self, data: unsafeBitCast(data, to: Handler.OutboundIn.self), promise: promise)
    }
    override func invokeWriteByteBuffer(_ data: ByteBuffer, promise: Promise<Void>?) {
        handler._writeByteBuffer(context: self, data: data, promise: promise)
    }
    override func unboxAndInvokeWrite(_ value: Any, promise: Promise<Void>?) -> Bool {
        guard let data = value as? Handler.OutboundIn else { return false }
        handler.write(context: self, data: data, promise: promise)
        return true
    }
    override func invokeFlush() { handler.flush(context: self) }
    override func invokeRead() { handler.read(context: self) }
    override func invokeClose(mode: CloseMode, promise: Promise<Void>?) { handler.close(context: self, mode: mode, promise: promise) }
    override func invokeBind(to address: SocketAddress, promise: Promise<Void>?) { handler.bind(context: self, to: address, promise: promise) }
    override func invokeConnect(to address: SocketAddress, promise: Promise<Void>?) {
        handler.connect(context: self, to: address, promise: promise)
    }
    override func invokeTriggerUserOutboundEvent(_ event: Any, promise: Promise<Void>?) {
        handler.triggerUserOutboundEvent(context: self, event: event, promise: promise)
    }
}

/// A stage holding a handler that takes part in neither direction (it only sees added/removed).
final class PassiveHandlerContext<Handler: ChannelHandler>: ChannelHandlerContext {
    let handler: Handler

    init(name: HandlerName, handler: Handler, pipeline: ChannelPipeline) {
        self.handler = handler
        super.init(name: name, pipeline: pipeline, inboundIn: nil, outboundIn: nil)
    }

    override var anyHandler: any ChannelHandler { handler }
}
