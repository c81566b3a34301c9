/// The event ``IdleStateHandler`` fires through `userInboundEventTriggered` when a connection has
/// been quiet for its timeout.
public enum IdleStateEvent: Sendable, Hashable {
    /// Nothing was read for the read timeout.
    case read
    /// Nothing was written (flushed) for the write timeout.
    case write
    /// Nothing was read or written for the combined timeout.
    case all
}

/// A pass-through stage that fires an ``IdleStateEvent`` when the connection has been idle: no read
/// for `readTimeout`, no write for `writeTimeout`, neither for `allTimeout`.
///
/// Put it where it sees the traffic to watch; a later stage reacts to the events (typically by
/// closing the connection, or by sending a keep-alive):
///
/// ```swift
/// try pipeline.addHandlers([
///     ByteIdleStateHandler(readTimeout: .seconds(30)),   // next to the transport: sees ByteBuffers
///     CloseOnIdle(),
/// ])
/// ```
///
/// The handler is generic over the messages it passes through because the pipeline checks each
/// stage's message types and delivers messages unboxed: a stage declared to take `Any` would
/// receive, and pass on, `Any`. ``ByteIdleStateHandler`` names the usual instance, next to the
/// transport.
///
/// ### Cost
/// Traffic does not touch the timers: a read sets a flag, and the end of the read batch
/// (`channelReadComplete`) records the time; a write sets a flag and the next `flush` records the
/// time. When a timer fires it compares the recorded time with its timeout and either fires the
/// event or re-arms itself for the time remaining (Netty's approach). So there is at most one timer
/// per configured timeout, re-armed at most once per timeout period, and the per-message path
/// allocates nothing.
///
/// A read counts when its batch completes and a write when it is flushed; an event repeats every
/// timeout while the connection stays idle. Timers start when the channel becomes active (or when
/// the handler is added to an active channel) and stop when it becomes inactive or the handler is
/// removed.
public final class IdleStateHandler<InboundMessage, OutboundMessage>: ChannelDuplexHandler {
    /// Reads pass through unchanged.
    public typealias InboundIn = InboundMessage
    /// Reads pass through unchanged.
    public typealias InboundOut = InboundMessage
    /// Writes pass through unchanged.
    public typealias OutboundIn = OutboundMessage
    /// Writes pass through unchanged.
    public typealias OutboundOut = OutboundMessage

    /// How long without a read before ``IdleStateEvent/read`` fires; nil: never.
    public let readTimeout: TimeAmount?
    /// How long without a write before ``IdleStateEvent/write`` fires; nil: never.
    public let writeTimeout: TimeAmount?
    /// How long without a read or a write before ``IdleStateEvent/all`` fires; nil: never.
    public let allTimeout: TimeAmount?

    private enum State { case notStarted, running, stopped }
    private var state = State.notStarted
    private var lastReadTime = Deadline.distantPast
    private var lastWriteTime = Deadline.distantPast
    /// A read arrived whose time is not recorded yet (recorded at `channelReadComplete`).
    private var readPending = false
    /// A write arrived whose time is not recorded yet (recorded at `flush`).
    private var writePending = false
    private var readTimer: Scheduled<Void>?
    private var writeTimer: Scheduled<Void>?
    private var allTimer: Scheduled<Void>?

    /// Creates a handler firing the events whose timeout is given; a nil or non-positive timeout
    /// disables its event.
    public init(readTimeout: TimeAmount? = nil, writeTimeout: TimeAmount? = nil, allTimeout: TimeAmount? = nil) {
        self.readTimeout = readTimeout.flatMap { $0 > .zero ? $0 : nil }
        self.writeTimeout = writeTimeout.flatMap { $0 > .zero ? $0 : nil }
        self.allTimeout = allTimeout.flatMap { $0 > .zero ? $0 : nil }
    }

    // MARK: Lifecycle

    /// Starts the timers if the channel is already active.
    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    /// Stops the timers.
    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    /// Starts the timers, then passes the event on.
    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    /// Stops the timers, then passes the event on.
    public func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    // MARK: Traffic

    /// Notes the read and passes it on.
    public func channelRead(context: ChannelHandlerContext, data: InboundMessage) {
        readPending = true
        context.fireChannelRead(data)
    }

    /// Records the time of the batch's reads and passes the event on.
    public func channelReadComplete(context: ChannelHandlerContext) {
        if readPending {
            readPending = false
            lastReadTime = context.eventLoop.now
        }
        context.fireChannelReadComplete()
    }

    /// Notes the write and passes it on.
    public func write(context: ChannelHandlerContext, data: OutboundMessage, promise: Promise<Void>?) {
        writePending = true
        context.write(data, promise: promise)
    }

    /// Records the time of the flushed writes and passes the flush on.
    public func flush(context: ChannelHandlerContext) {
        if writePending {
            writePending = false
            lastWriteTime = context.eventLoop.now
        }
        context.flush()
    }

    // MARK: Timers

    private func start(context: ChannelHandlerContext) {
        guard state == .notStarted else { return }
        state = .running
        let now = context.eventLoop.now
        lastReadTime = now
        lastWriteTime = now
        if let readTimeout { schedule(.read, in: readTimeout, context: context) }
        if let writeTimeout { schedule(.write, in: writeTimeout, context: context) }
        if let allTimeout { schedule(.all, in: allTimeout, context: context) }
    }

    private func stop() {
        state = .stopped
        readTimer?.cancel()
        writeTimer?.cancel()
        allTimer?.cancel()
        readTimer = nil
        writeTimer = nil
        allTimer = nil
    }

    private func schedule(_ kind: IdleStateEvent, in delay: TimeAmount, context: ChannelHandlerContext) {
        // The handler and its context are loop-confined; `LoopBound` carries them through the
        // `@Sendable` timer closure and checks that the closure runs on their loop.
        let bound = LoopBound((self, context), eventLoop: context.eventLoop)
        let timer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            handler.timerFired(kind, context: context)
        }
        switch kind {
        case .read: readTimer = timer
        case .write: writeTimer = timer
        case .all: allTimer = timer
        }
    }

    private func timerFired(_ kind: IdleStateEvent, context: ChannelHandlerContext) {
        guard state == .running else { return }
        let now = context.eventLoop.now
        // Traffic whose time is not recorded yet (a read batch still open, writes not yet flushed)
        // is happening now.
        if readPending { lastReadTime = now }
        if writePending { lastWriteTime = now }

        let timeout: TimeAmount?
        let lastActivity: Deadline
        switch kind {
        case .read: (timeout, lastActivity) = (readTimeout, lastReadTime)
        case .write: (timeout, lastActivity) = (writeTimeout, lastWriteTime)
        case .all: (timeout, lastActivity) = (allTimeout, max(lastReadTime, lastWriteTime))
        }
        guard let timeout else { return }

        let idleFor = now - lastActivity
        if idleFor >= timeout {
            // Re-arm before firing: the event may make a later stage close the channel, which
            // must then cancel the new timer.
            schedule(kind, in: timeout, context: context)
            context.fireUserInboundEventTriggered(kind)
        } else {
            schedule(kind, in: timeout - idleFor, context: context)
        }
    }
}

/// An ``IdleStateHandler`` for a byte stream: the usual instance, placed next to the transport.
public typealias ByteIdleStateHandler = IdleStateHandler<ByteBuffer, ByteBuffer>
