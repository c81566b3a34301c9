import DequeModule
import PheromonesCore

/// A channel with no socket, for unit-testing handlers and pipelines.
///
/// Feed it input with ``writeInbound(_:)``; collect what reached the end of the pipeline with
/// ``readInbound(as:)``. Write from the application end with ``writeOutbound(_:)`` and collect what
/// the pipeline sent toward the network with ``readOutbound(as:)``. Errors that no handler handled
/// are thrown by ``throwIfErrorCaught()`` (and by `writeInbound`/`writeOutbound`). Time moves only
/// through ``loop``'s ``EmbeddedEventLoop/advanceTime(by:)``.
///
/// Unlike socket channels, the embedded channel carries messages of any type at both ends.
///
/// Its lifetime is a socket channel's: once closed, every operation fails (a write with
/// ``ChannelError/ioOnClosedChannel``, a close with ``ChannelError/alreadyClosed``), and on the loop's
/// next turn (``finish()`` or ``EmbeddedEventLoop/run()``) the pipeline lets go of the channel, which
/// is then freed unless something else holds it. A channel that is never closed is never freed: its
/// pipeline holds it, as a live socket channel's does.
// Unchecked: an embedded channel is confined to the test's thread, like its embedded loop.
public final class EmbeddedChannel: Channel, ChannelCore, @unchecked Sendable {
    /// The channel's loop.
    public let loop: EmbeddedEventLoop
    private var pipelineStorage: ChannelPipeline!
    private let closePromise: Promise<Void>
    private var inbound: Deque<Any> = []
    private var outbound: Deque<Any> = []
    private var unflushed: [(Any, Promise<Void>?)] = []
    private var caughtErrors: [any Error] = []
    private var active = false
    private var closed = false
    private var writable = true

    /// User events that reached the end of the pipeline unhandled, oldest first.
    public private(set) var unhandledUserEvents: [Any] = []
    /// Outbound user events that reached the transport, oldest first.
    public private(set) var outboundUserEvents: [Any] = []
    /// How many times the pipeline asked the transport for more input (`read()`).
    public private(set) var readRequests = 0
    /// The local address the channel reports.
    public var localAddress: SocketAddress?
    /// The remote address the channel reports (set by ``connect(to:)``).
    public var remoteAddress: SocketAddress?
    /// Embedded channels have no parent.
    public var parent: (any Channel)? { nil }

    /// Creates a channel with `handlers` installed in order, and fires `channelRegistered`.
    ///
    /// - Throws: ``ChannelPipelineError`` if the handlers' message types do not fit together.
    public init(handlers: [any ChannelHandler] = [], loop: EmbeddedEventLoop = EmbeddedEventLoop()) throws {
        self.loop = loop
        closePromise = loop.makePromise(of: Void.self)
        pipelineStorage = ChannelPipeline(channel: self, eventLoop: loop)
        try pipeline.addHandlers(handlers)
        pipeline.fireChannelRegistered()
    }

    /// Creates a channel with one handler installed.
    public convenience init(handler: any ChannelHandler, loop: EmbeddedEventLoop = EmbeddedEventLoop()) throws {
        try self.init(handlers: [handler], loop: loop)
    }

    /// The channel's pipeline.
    public var pipeline: ChannelPipeline { pipelineStorage }
    public var eventLoop: any EventLoop { loop }
    public var closeFuture: Future<Void> { closePromise.futureResult }
    public var isActive: Bool { active }
    public var isWritable: Bool { writable }
    /// The bytes of the `ByteBuffer`s written and not yet flushed (flushing hands them to the test,
    /// as a socket hands them to the kernel).
    public var bufferedOutboundBytes: Int {
        loop.assertInEventLoop()
        return unflushed.reduce(0) { total, entry in total + ((entry.0 as? ByteBuffer)?.readableBytes ?? 0) }
    }

    // MARK: Driving the channel

    /// Marks the channel connected to `address` and fires `channelActive`.
    public func connect(to address: SocketAddress = .loopbackV4(port: 0)) {
        pipeline.connect(to: address)
    }

    /// Fires `channelRead` with `data` and then `channelReadComplete`, and runs queued tasks.
    ///
    /// - Throws: ``ChannelError/ioOnClosedChannel`` once the channel has closed; otherwise the first
    ///   error that reached the end of the pipeline unhandled.
    public func writeInbound<Message>(_ data: Message) throws {
        guard !closed else { throw ChannelError.ioOnClosedChannel }
        pipeline.fireChannelRead(data)
        pipeline.fireChannelReadComplete()
        loop.run()
        try throwIfErrorCaught()
    }

    /// Writes `data` from the application end and flushes, then runs queued tasks.
    ///
    /// - Throws: the first error that reached the end of the pipeline unhandled.
    public func writeOutbound<Message>(_ data: Message) throws {
        pipeline.writeAndFlush(data)
        loop.run()
        try throwIfErrorCaught()
    }

    /// The oldest message that reached the end of the pipeline, or nil if none is waiting.
    ///
    /// - Throws: ``EmbeddedChannelError/wrongType(expected:actual:)`` if it is not a `Message`
    ///   (the message is consumed).
    public func readInbound<Message>(as type: Message.Type = Message.self) throws -> Message? {
        try Self.take(from: &inbound, as: type)
    }

    /// The oldest message that the pipeline flushed toward the network, or nil if none is waiting.
    ///
    /// - Throws: ``EmbeddedChannelError/wrongType(expected:actual:)`` if it is not a `Message`.
    public func readOutbound<Message>(as type: Message.Type = Message.self) throws -> Message? {
        try Self.take(from: &outbound, as: type)
    }

    /// Throws (and forgets) the first error that reached the end of the pipeline unhandled.
    public func throwIfErrorCaught() throws {
        guard !caughtErrors.isEmpty else { return }
        throw caughtErrors.removeFirst()
    }

    /// Changes writability and fires `channelWritabilityChanged` if it changed.
    public func setWritable(_ isWritable: Bool) {
        guard isWritable != writable else { return }
        writable = isWritable
        pipeline.fireChannelWritabilityChanged()
    }

    /// What was left when the channel finished.
    public struct LeftOvers {
        /// Messages that reached the end of the pipeline and were never read.
        public var inbound: [Any]
        /// Messages flushed toward the network and never read.
        public var outbound: [Any]
        /// Messages written but never flushed.
        public var pendingOutbound: [Any]
        /// Whether nothing was left.
        public var isClean: Bool { inbound.isEmpty && outbound.isEmpty && pendingOutbound.isEmpty }
    }

    /// Closes the channel (if still open), runs queued tasks, and returns what was never read.
    ///
    /// - Throws: the first error that reached the end of the pipeline unhandled.
    @discardableResult
    public func finish() throws -> LeftOvers {
        let pending = unflushed.map(\.0)
        if !closed { pipeline.close() }
        loop.run()
        try throwIfErrorCaught()
        let leftOvers = LeftOvers(inbound: Array(inbound), outbound: Array(outbound), pendingOutbound: pending)
        inbound.removeAll()
        outbound.removeAll()
        return leftOvers
    }

    private static func take<Message>(from queue: inout Deque<Any>, as type: Message.Type) throws -> Message? {
        guard let next = queue.popFirst() else { return nil }
        guard let message = next as? Message else {
            throw EmbeddedChannelError.wrongType(expected: "\(Message.self)", actual: "\(Swift.type(of: next))")
        }
        return message
    }

    // MARK: ChannelCore

    public var acceptedOutboundType: Any.Type? { nil }
    public var producedInboundType: Any.Type? { nil }

    public func write0<Message>(_ data: Message, promise: Promise<Void>?) {
        guard !closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        unflushed.append((data, promise))
    }

    public func flush0() {
        let flushed = unflushed
        unflushed.removeAll(keepingCapacity: true)
        for (message, promise) in flushed {
            outbound.append(message)
            promise?.succeed(())
        }
    }

    public func read0() {
        guard !closed else { return }
        readRequests += 1
    }

    public func close0(mode: CloseMode, promise: Promise<Void>?) {
        guard !closed else {
            promise?.fail(ChannelError.alreadyClosed)
            return
        }
        guard mode == .all else {
            pipeline.fireUserInboundEventTriggered(mode == .output ? ChannelEvent.outputClosed : ChannelEvent.inputClosed)
            promise?.succeed(())
            return
        }
        // Closed and inactive before anything runs: what the callbacks below and `channelInactive` do
        // through the channel fails at once.
        closed = true
        let wasActive = active
        active = false
        let dropped = unflushed
        unflushed.removeAll()
        for (_, pending) in dropped { pending?.fail(ChannelError.closedBeforeWriteCompleted) }
        promise?.succeed(())
        if wasActive { pipeline.fireChannelInactive() }
        pipeline.channelDidClose()
        closePromise.succeed(())
    }

    public func bind0(to address: SocketAddress, promise: Promise<Void>?) {
        guard !closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        localAddress = address
        promise?.succeed(())
    }

    public func connect0(to address: SocketAddress, promise: Promise<Void>?) {
        guard !closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        remoteAddress = address
        active = true
        promise?.succeed(())
        pipeline.fireChannelActive()
    }

    public func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?) {
        guard !closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        outboundUserEvents.append(event)
        promise?.succeed(())
    }

    public func channelReadReachedTail<Message>(_ data: Message) { inbound.append(data) }
    public func errorCaughtReachedTail(_ error: any Error) { caughtErrors.append(error) }
    public func userInboundEventReachedTail(_ event: Any) { unhandledUserEvents.append(event) }
}

/// Errors from reading an embedded channel's queues.
public enum EmbeddedChannelError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The next message was not of the requested type.
    case wrongType(expected: String, actual: String)

    public var description: String {
        switch self {
        case .wrongType(let expected, let actual): return "expected a \(expected) but the next message is a \(actual)"
        }
    }
}
