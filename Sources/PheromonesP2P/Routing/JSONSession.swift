import Pheromones

/// The JSON wire's half of a persistent connection (the Go original's wire).
///
/// The wire has no ids and no router messages. A connection this node dialed is identified by the
/// address dialed; one it accepted, by the protocol's `addRoute`. Nothing answers a message as
/// such, so a dispatch completes once written, and a conversation takes the messages that arrive
/// in order, the oldest conversation first.
final class JSONSession: PersistentSession {
    /// Conversations started here, oldest first.
    private var conversations: [Conversation] = []

    /// The wire cannot say goaway: the peer is taken to start nothing new once draining begins.
    var peerStartsNothing: Bool { true }
    var awaitsNothing: Bool { currentConversation == nil }
    var awaitedAnswerCount: Int { 0 }

    /// The oldest conversation under way. Ended ones are dropped from the front only (the list is
    /// read for every message); one that ended behind a conversation still under way is dropped
    /// when it reaches the front.
    private var currentConversation: Conversation? {
        while let first = conversations.first, first.isFinished { conversations.removeFirst() }
        return conversations.first
    }

    func connectionActive(_ stage: PersistentStage, context: ChannelHandlerContext) {
        if stage.facts.direction == .outbound { stage.core.connectionIdentifiedByDial(stage) }
    }

    func failureBeforeIdentified(_ error: any Error) -> P2PError? { nil }

    /// None: an operation that starts with U+0000 is the protocol's here, like any other.
    func tookRouterMessage(_ message: Envelope, on stage: PersistentStage) -> Bool { false }

    func conversation(continuedBy message: Envelope?, on stage: PersistentStage) -> Conversation? {
        let conversation = currentConversation
        if let message { conversation?.received(message) }
        return conversation
    }

    /// Nothing: the wire cannot say "no reply follows".
    func refused(_ message: Envelope, asAnswer: Bool, on stage: PersistentStage) -> Envelope? { nil }

    /// Nothing answers a message on this wire, so the dispatch waits only for its write, which a
    /// peer that does not read never lets complete: the reply timeout bounds that.
    func dispatch(_ message: Envelope, reply: Promise<Envelope?>, on stage: PersistentStage, context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        let address = stage.peerAddress
        let giveUp = stage.scheduleOnLoop(at: stage.core.loop.now + stage.configuration.replyTimeout) { stage in
            if reply.tryFail(P2PError.writeTimeout(address)) {
                stage.logger.debug("a dispatch was not written in time", metadata: ["peer": "\(address)"])
            }
        }
        context.writeAndFlush(message, promise: written)
        written.futureResult.whenCompleteOnLoop { result in
            giveUp.cancel()
            _ = reply.tryComplete(result.map { nil }.mapError { _ in P2PError.connectionLost(address) })
        }
    }

    func opening(_ conversation: Conversation, with message: Envelope, on stage: PersistentStage) -> Envelope {
        conversations.append(conversation)
        return message
    }

    func oneWay(_ message: Envelope, idChosenBy allocator: IDAllocator, on stage: PersistentStage) -> Envelope? { message }

    func answer(_ answer: Envelope, to owed: OwedAnswer, on stage: PersistentStage) -> Envelope { answer }

    func noAnswer(to owed: OwedAnswer, localName: String) -> Envelope? { nil }

    func goAway(localName: String) -> Envelope? { nil }

    /// Nothing awaits by id; the conversations end with the connection.
    func failAwaiting(_ error: P2PError) {}

    func failEverything(_ error: P2PError) {
        let waiting = conversations
        conversations = []
        for conversation in waiting { conversation.fail(error) }
    }
}
