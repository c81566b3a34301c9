import Pheromones

/// Keeps an idle persistent connection on the native wire honest: after ``interval`` without
/// hearing from the peer it sends a `ping` (``ControlMessage``), again every interval while the
/// silence lasts, and closes the connection once the peer has been silent for ``timeout``. It
/// answers the peer's pings with a `pong`.
///
/// It sits between the envelope decoder and the ``RouterStage``, and takes pings and pongs out of
/// the stream: the router never sees them, so they are neither work awaited nor work owed, and a
/// draining connection neither waits for them nor stays open because of them. (A draining
/// connection's end is bounded by the hand-over timeout; this stage only shortens it.)
///
/// **Any byte counts as life**, not only whole messages: the stage notes the time at the end of
/// every read batch (`channelReadComplete`, which the framer passes on whether or not the batch
/// completed a message), so a peer in the middle of a large message is not pinged or closed
/// (a message that takes too long is ``PartialMessageTimer``'s business). What this side sends
/// does not count: only the peer can prove it is there.
///
/// When the timeout passes the stage fires ``ConnectionTimeout/keepalive`` as a user inbound event
/// (the router fails what waits on the connection and tells the observer) and closes the
/// connection.
///
/// ### While this side holds reading back
/// A silence that this side causes by not reading (a later stage holding the channel's read
/// requests because the protocol is behind) is not the peer's: if the timeout passes while no
/// read request has come through this stage since the last read, the connection stays, and the
/// silence counts afresh from the next read request.
///
/// ### Endings
/// No pings once this side has shut its output (a drained connection) or the peer has ended its
/// stream: nothing could carry them, or nothing could answer. Pings already answered or not, the
/// stage never delays a close.
///
/// ### Cost
/// Per read batch a clock reading; per message one comparison of the operation. One timer, which
/// does not move with traffic: when it fires it compares the time last heard with the interval
/// and the timeout, and re-arms for whichever comes next.
final class KeepaliveStage: ChannelDuplexHandler {
    typealias InboundIn = Envelope
    typealias InboundOut = Envelope
    typealias OutboundIn = Envelope
    typealias OutboundOut = Envelope

    /// Writes and flushes go past this stage.
    static var passThroughEvents: PassThroughEvents { [.write, .flush] }

    /// The silence after which a ping is sent (and the time between pings); nil: no pings.
    let interval: TimeAmount?
    /// The silence after which the connection is closed; nil: never.
    let timeout: TimeAmount?
    /// The name pings and pongs carry.
    let localName: String

    private enum State { case notStarted, running, stopped }
    private var state = State.notStarted
    /// When a read batch last brought bytes from the peer (or the watch began).
    private var lastHeard = Deadline.distantPast
    /// When the last ping of the current silence went out; nil: none yet.
    private var lastPing: Deadline?
    private var timer: Scheduled<Void>?
    /// Whether pings may be sent (not once the output is shut or the peer's stream ended).
    private var mayPing = true
    private var outputShut = false
    /// Whether a read request has passed since the last read (the channel reads only then).
    private var readRequested = true
    /// Whether the timeout passed while reading was held back (see the type's documentation).
    private var expiredWhileHeld = false

    /// A stage that pings after `interval` of silence and closes after `timeout` of it; a zero or
    /// negative value switches that part off (the stage still answers pings).
    init(localName: String, interval: TimeAmount, timeout: TimeAmount) {
        self.localName = localName
        self.interval = interval.asTimeout
        self.timeout = timeout.asTimeout
    }

    // MARK: Lifecycle

    /// Starts watching if the channel is already active.
    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    /// Stops watching.
    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    /// Starts watching, then passes the event on.
    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    /// Stops watching, then passes the event on.
    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    // MARK: Traffic

    /// Answers a ping, drops a pong, passes anything else on.
    func channelRead(context: ChannelHandlerContext, data: Envelope) {
        switch data.operation {
        case ControlMessage.pingOperation:
            if !outputShut { context.writeAndFlush(ControlMessage.pong(from: localName)) }
        case ControlMessage.pongOperation:
            break
        default:
            context.fireChannelRead(data)
        }
    }

    /// Records that the peer was heard from (any bytes, whole messages or not).
    func channelReadComplete(context: ChannelHandlerContext) {
        readRequested = false
        if state == .running {
            lastHeard = context.eventLoop.now
            lastPing = nil
        }
        context.fireChannelReadComplete()
    }

    /// Stops everything once the peer's stream has ended: nothing more can arrive.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed { stop() }
        context.fireUserInboundEventTriggered(event)
    }

    /// Stops pinging once this side shuts its output.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        if mode == .output {
            outputShut = true
            mayPing = false
        }
        context.close(mode: mode, promise: promise)
    }

    /// Notes that the channel may read again; after a timeout that passed while reading was held,
    /// the silence counts afresh from now.
    func read(context: ChannelHandlerContext) {
        readRequested = true
        if expiredWhileHeld, state == .running {
            expiredWhileHeld = false
            lastHeard = context.eventLoop.now
            lastPing = nil
            arm(context: context)
        }
        context.read()
    }

    // MARK: The timer

    private func start(context: ChannelHandlerContext) {
        guard state == .notStarted else { return }
        state = .running
        lastHeard = context.eventLoop.now
        arm(context: context)
    }

    private func stop() {
        state = .stopped
        timer?.cancel()
        timer = nil
    }

    /// When the timer should next look: the next ping or the timeout, whichever is first.
    private var nextCheck: Deadline? {
        var next = timeout.map { lastHeard + $0 }
        if mayPing, let interval {
            let pingAt = (lastPing ?? lastHeard) + interval
            next = min(next ?? pingAt, pingAt)
        }
        return next
    }

    private func arm(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        guard let next = nextCheck, next != .distantFuture else { return }
        let bound = LoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: next) {
            let (stage, context) = bound.value
            stage.timerFired(context: context)
        }
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard state == .running else { return }
        let now = context.eventLoop.now
        if let timeout, now - lastHeard >= timeout {
            guard readRequested else {
                expiredWhileHeld = true
                return
            }
            stop()
            context.fireUserInboundEventTriggered(ConnectionTimeout.keepalive)
            context.close()
            return
        }
        if mayPing, let interval, now - (lastPing ?? lastHeard) >= interval {
            lastPing = now
            context.writeAndFlush(ControlMessage.ping(from: localName))
        }
        arm(context: context)
    }
}
