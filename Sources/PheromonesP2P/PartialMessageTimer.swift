import Pheromones

/// Closes a connection on which a message has started arriving and is not complete within a
/// timeout (``Node/Configuration/partialMessageTimeout``): a native frame half-sent, or a JSON
/// object trickling in a byte at a time (slowloris), must not hold the connection for ever.
///
/// It sits right before the framer it watches (a ``PartialMessageProbe``) and passes every read
/// on to it. After each read it asks the framer whether it now holds part of a message:
/// - none: no deadline;
/// - part of a message, and the framer made at least one message of this read (the bytes it
///   holds are the start of a new one): the deadline is now plus the timeout;
/// - part of a message, and no message was completed: the same message is still arriving, and
///   its deadline stays where it was. Trickling bytes do not move it: the deadline runs from the
///   read that brought the message's first byte, not from the last one.
///
/// When the deadline passes with the message still incomplete, the stage fires
/// ``ConnectionTimeout/partialMessage`` as a user inbound event (the node's router then fails what
/// waits on the connection and tells the observer) and closes the connection.
///
/// ### While this side holds reading back
/// Bytes the peer has sent may wait in the kernel while a later stage holds the channel's read
/// requests (a protocol behind on its answers, see ``ProtocolStage``): then the message is
/// incomplete through no fault of the peer's. So a deadline that passes while no read request has
/// come through this stage since the last read does not close the connection; the message gets
/// the whole timeout again from the moment the next read request passes. (Back pressure from a
/// peer that does not read its answers is applied nearer the socket, by ``BackPressureHandler``,
/// so it does not stop this clock: that peer is the one stalling.)
///
/// ### Cost
/// Per read: two questions to the framer and a clock reading. One timer at most, armed when a
/// message starts while none is armed; when it fires early (the deadline moved on since, because
/// messages completed) it re-arms for the current deadline, so a stream whose reads end mid-message
/// costs about one timer per timeout period, not one per read.
final class PartialMessageTimer: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Read completions, writes and flushes go past this stage.
    static var passThroughEvents: PassThroughEvents { [.channelReadComplete, .write, .flush] }

    /// How long a message may take to arrive, from the read that brought its first byte.
    let timeout: TimeAmount
    private let framer: any PartialMessageProbe
    /// When the message partly here must be complete; nil while none is.
    private var deadline: Deadline?
    /// The timer, and when it fires.
    private var timer: (task: Scheduled<Void>, firesAt: Deadline)?
    /// Whether a read request has passed since the last read (the channel reads only then).
    private var readRequested = true
    /// Whether the deadline passed while reading was held back (see the type's documentation).
    private var expiredWhileHeld = false
    private var isStopped = false

    /// A stage that closes the connection when `framer` holds part of a message for `timeout`.
    init(timeout: TimeAmount, framer: any PartialMessageProbe) {
        self.timeout = timeout
        self.framer = framer
    }

    // MARK: Events

    /// Passes the bytes to the framer, then looks at what it holds.
    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        readRequested = false
        let before = framer.bufferedByteCount
        let arrived = data.readableBytes
        context.fireChannelRead(data)
        guard !isStopped, !context.isRemoved, context.channel.isActive else { return }
        guard framer.holdsPartialMessage else {
            deadline = nil
            return
        }
        let after = framer.bufferedByteCount
        // The framer consumes bytes only with the messages it makes: holding fewer bytes than it
        // held plus what arrived means it made one, and what it holds now began in this read.
        // (Written so that nothing can overflow, whatever the counts.)
        let completedAMessage = after < before || after - before < arrived
        if deadline == nil || completedAMessage {
            deadline = context.eventLoop.now + timeout
            armTimer(context: context)
        }
    }

    /// Notes that the channel may read again; gives a deadline that passed while reading was held
    /// a whole timeout again.
    func read(context: ChannelHandlerContext) {
        readRequested = true
        if expiredWhileHeld {
            expiredWhileHeld = false
            if deadline != nil, framer.holdsPartialMessage {
                deadline = context.eventLoop.now + timeout
                armTimer(context: context)
            }
        }
        context.read()
    }

    /// Stops the timer.
    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    /// Stops the timer.
    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    // MARK: The timer

    /// Arms the timer for the deadline unless it is armed already for that time or earlier (it
    /// re-arms itself when it fires early).
    private func armTimer(context: ChannelHandlerContext) {
        guard let deadline, deadline != .distantFuture else { return }
        if let timer {
            guard timer.firesAt > deadline else { return }
            timer.task.cancel()
        }
        let bound = LoopBound((self, context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: deadline) {
            let (stage, context) = bound.value
            stage.timerFired(context: context)
        }
        timer = (task, deadline)
    }

    private func timerFired(context: ChannelHandlerContext) {
        timer = nil
        guard !isStopped, let due = deadline, framer.holdsPartialMessage else {
            deadline = nil
            return
        }
        guard context.eventLoop.now >= due else {
            armTimer(context: context)
            return
        }
        guard readRequested else {
            expiredWhileHeld = true
            return
        }
        stop()
        context.fireUserInboundEventTriggered(ConnectionTimeout.partialMessage)
        context.close()
    }

    private func stop() {
        isStopped = true
        deadline = nil
        timer?.task.cancel()
        timer = nil
    }
}
