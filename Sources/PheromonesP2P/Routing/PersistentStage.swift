import DequeModule
import Pheromones

/// A persistent connection (the original's `PRouter`), dialed or accepted: every message the peer
/// sends goes to the protocol, whose answers come back through here, and the node's dispatches,
/// conversations and broadcasts go out on it.
///
/// How what this side sends is matched with its answer is the wire's (its ``PersistentSession``):
/// on the native wire by id, each message awaiting exactly one answer; on the JSON wire, which has
/// no ids, in order. What the protocol owes is kept here: the messages it has yet to answer, in
/// arrival order, as answers come back in that order.
///
/// When the connection is drained (it lost to another connection to the same peer), nothing new
/// is sent on it; the wire's goaway goes out, and the output shuts once this side awaits and owes
/// nothing and the peer starts nothing new; the socket closes when both ends have shut theirs, or
/// after the hand-over timeout.
final class PersistentStage: RouterStage {
    /// The most messages a connection may leave unanswered in either direction; a peer that goes
    /// past it is misbehaving (flooding, or never answering), and its connection is closed.
    static let maximumPendingMessages = 1 << 16

    private let session: any PersistentSession
    /// Messages owed an answer, in arrival order (answers come back in the same order). A deque:
    /// up to `maximumPendingMessages` of them, each answer taking the first.
    private var owed: Deque<OwedAnswer> = []
    private(set) var isDraining = false
    private var inputClosed = false
    private var outputShut = false

    required init(id: ConnectionID, core: NodeCore, dialedAddress: SocketAddress?, facts: ConnectionFacts) {
        self.session = core.dialect.makeSession()
        super.init(id: id, core: core, dialedAddress: dialedAddress, facts: facts)
    }

    override var isPersistent: Bool { true }

    override var awaitedAnswerCount: Int { session.awaitedAnswerCount }

    /// A draining connection was being replaced, whichever end gave up on it first.
    override var droppedError: P2PError {
        isDraining ? .connectionReplaced(peerAddress) : .connectionLost(peerAddress)
    }

    override func connectionActive(context: ChannelHandlerContext) {
        session.connectionActive(self, context: context)
    }

    // MARK: Sending (called by the node)

    /// Sends `message` and completes `reply` with its answer (or once it is written, on a wire
    /// that cannot tell answers apart).
    func dispatch(_ message: Envelope, reply: Promise<Envelope?>) {
        core.loop.assertInEventLoop()
        guard let context = openContext(failing: reply.fail) else { return }
        session.dispatch(message, reply: reply, on: self, context: context)
    }

    /// Starts `conversation` with `message`.
    func start(_ conversation: Conversation, with message: Envelope) {
        core.loop.assertInEventLoop()
        guard let context = openContext(failing: conversation.fail) else { return }
        let first = session.opening(conversation, with: message, on: self)
        conversation.sent(first, awaitingAnswerWithin: configuration.replyTimeout)
        context.writeAndFlush(first)
    }

    /// Sends a broadcast keeping its id (which `allocator` chose); nothing waits on it.
    func sendOneWay(_ message: Envelope, idChosenBy allocator: IDAllocator) {
        core.loop.assertInEventLoop()
        guard let context = openContext(failing: { _ in }), let envelope = session.oneWay(message, idChosenBy: allocator, on: self) else { return }
        if envelope.hopLimit > 0 { core.metrics.broadcastCopySent() }
        context.writeAndFlush(envelope)
    }

    /// Sends a router message of the broadcast mode's own (gossip's control), which awaits no
    /// answer. Dropped (and counted) when the peer's queue is full: gossip repairs what it loses.
    func sendControl(_ envelope: Envelope) {
        core.loop.assertInEventLoop()
        guard let context, !isClosed else { return }
        guard context.channel.bufferedOutboundBytes < configuration.maximumQueuedBytesPerPeer else {
            core.metrics.droppedForSlowPeer()
            return
        }
        context.writeAndFlush(envelope)
    }

    /// The context to send a message the node starts on, or nil after failing it with `fail`: the
    /// connection is closed, or the peer's queue is full.
    private func openContext(failing fail: (any Error) -> Void) -> ChannelHandlerContext? {
        guard let context, !isClosed else {
            fail(P2PError.connectionLost(peerAddress))
            return nil
        }
        if let refusal = refuseIfPeerTooSlow(context) {
            fail(refusal)
            return nil
        }
        return context
    }

    /// The error to refuse a message the node starts with when the peer's queue is full
    /// (``Node/Configuration/maximumQueuedBytesPerPeer``), after reporting the drop and applying
    /// the slow-peer policy; nil when the message may go.
    ///
    /// The queue is checked before the message joins it, so it holds at most the maximum plus
    /// one message.
    private func refuseIfPeerTooSlow(_ context: ChannelHandlerContext) -> P2PError? {
        guard context.channel.bufferedOutboundBytes >= configuration.maximumQueuedBytesPerPeer else { return nil }
        let policy = configuration.slowPeerPolicy
        logger.debug("the peer's queue is full; not sending", metadata: ["peer": "\(peerAddress)", "policy": "\(policy)"])
        core.report(.slowPeerDropped(core.peerKey(of: self), policy))
        core.metrics.droppedForSlowPeer()
        let refusal = P2PError.peerTooSlow(peerAddress)
        if policy == .disconnect { closeNow(refusal) }
        return refusal
    }

    /// Starts draining: nothing new goes out; the output shuts once both ends are done, and the
    /// connection is closed if that takes longer than the hand-over timeout.
    func drain() {
        core.loop.assertInEventLoop()
        guard !isDraining, !isClosed, let context else { return }
        isDraining = true
        logger.debug("draining a connection", metadata: ["peer": "\(peerAddress)", "direction": "\(facts.direction)"])
        core.report(.connectionDraining(core.peerKey(of: self), facts.direction))
        if let goAway = session.goAway(localName: configuration.name) { context.writeAndFlush(goAway) }
        startTimer(configuration.handOverTimeout) { stage in
            stage.logger.debug("a draining connection did not finish in time; closing", metadata: ["peer": "\(stage.peerAddress)"])
            stage.closeNow(.connectionReplaced(stage.peerAddress))
        }
        shutOutputIfDrained()
    }

    /// Finishes draining if nothing holds the connection any more (its successor has arrived).
    func resumeDrain() {
        core.loop.assertInEventLoop()
        shutOutputIfDrained()
    }

    // MARK: Inbound

    override func received(_ message: Envelope, context: ChannelHandlerContext) {
        guard !session.tookRouterMessage(message, on: self) else { return }
        guard validated(message) else {
            // As if it had not come: the peer, if it awaits an answer, is told that none follows.
            guard !isClosed, let answer = session.refused(message, asAnswer: true, on: self) else { return }
            context.writeAndFlush(answer)
            return
        }
        if message.hopLimit > 0, !core.noteBroadcast(message, from: self) {
            // A broadcast seen before: answer nothing, and do not show it to the protocol again.
            if let answer = session.refused(message, asAnswer: false, on: self) { context.writeAndFlush(answer) }
            return
        }
        owe(message.messageID, conversation: session.conversation(continuedBy: message, on: self), passing: message, context: context)
    }

    override func receivedMalformed(_ error: WireError, context: ChannelHandlerContext) {
        guard owed.count < Self.maximumPendingMessages else { return closeFlooded() }
        owed.append(OwedAnswer(messageID: 0, conversation: session.conversation(continuedBy: nil, on: self)))
        context.fireErrorCaught(error)
    }

    /// Records that the protocol owes `message` an answer, and hands it over.
    private func owe(_ messageID: UInt64, conversation: Conversation?, passing message: Envelope, context: ChannelHandlerContext) {
        guard owed.count < Self.maximumPendingMessages, session.awaitedAnswerCount < Self.maximumPendingMessages else {
            return closeFlooded()
        }
        owed.append(OwedAnswer(messageID: messageID, conversation: conversation))
        core.metrics.deliveredToProtocol()
        context.fireChannelRead(message)
    }

    private func closeFlooded() {
        closeNow(.mismatchedRequest("the peer leaves more than \(Self.maximumPendingMessages) messages unanswered"))
    }

    override func connectionFailed(_ error: any Error) {
        if let reason = session.failureBeforeIdentified(error) { closeReason = closeReason ?? reason }
    }

    // MARK: Outbound: the protocol's answers

    override func deliver(_ answer: Envelope?, promise: Promise<Void>?, context: ChannelHandlerContext) {
        let request = owed.isEmpty ? OwedAnswer(messageID: 0, conversation: nil) : owed.removeFirst()
        if let answer {
            let reply = session.answer(answer, to: request, on: self)
            request.conversation?.sent(reply, awaitingAnswerWithin: configuration.replyTimeout)
            context.write(reply, promise: promise)
        } else {
            request.conversation?.complete(.completedHere)
            if let marker = session.noAnswer(to: request, localName: configuration.name) {
                context.write(marker, promise: promise)
            } else {
                promise?.succeed(())
            }
        }
        shutOutputIfDrained()
    }

    // MARK: Endings

    override func peerClosedOutput(context: ChannelHandlerContext) {
        inputClosed = true
        // Nothing more can arrive, so nothing awaited will.
        session.failAwaiting(droppedError)
        if isDraining {
            shutOutputIfDrained()
        } else {
            context.close()
        }
    }

    /// Shuts the output of a draining connection once this side awaits and owes nothing, the peer
    /// has said it starts nothing new (its goaway, or its end of stream), and the route knows the
    /// connection that replaces this one.
    func shutOutputIfDrained() {
        guard isDraining, !outputShut, !isClosed, let context else { return }
        guard session.peerStartsNothing || inputClosed, session.awaitsNothing, owed.isEmpty else { return }
        guard core.mayFinishDraining(self) else { return }
        outputShut = true
        context.close(mode: .output)
    }

    override func failEverything(_ error: P2PError) {
        session.failEverything(error)
        let waiting = owed
        owed = []
        for answer in waiting { answer.conversation?.fail(error) }
    }
}
