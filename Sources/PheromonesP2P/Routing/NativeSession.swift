import DequeModule
import Pheromones
import PheromonesNoise

/// The native wire's half of a persistent connection.
///
/// The first frame each side sends is a hello (``ControlMessage``) that tells the other who it is
/// and where it listens; the route table learns the connection from it. After that, every message
/// awaits exactly one answer (a reply, or the "no reply follows" marker), matched by its
/// correlation id: a dispatch gets the reply that names its message id, a conversation the chain
/// of messages that answer each other. Every entry awaiting an answer has a deadline.
final class NativeSession: PersistentSession {
    /// What a message awaiting its answer is keyed by: the connection is the session's, and within
    /// it the id and who chose it.
    ///
    /// Matching answers by id alone let a peer choose an id that another message awaits an answer
    /// under (a broadcast it started carrying it, or one it guessed this node would allocate next:
    /// the ids are predictable) and overwrite that message's entry: its dispatch was then never
    /// completed, or completed with the answer to the broadcast. So an entry is never overwritten:
    /// a connection awaits at most one answer per id, whoever chose it. This node draws its ids
    /// around those its connection awaits answers under (``allocateID(_:)``), and does not forward a
    /// broadcast on a connection that awaits an answer under the broadcast's id. An answer's
    /// correlation id, which does not say who chose the id, then names exactly one entry. Only the
    /// entries of ids this node chose hold a dispatch or a conversation.
    private struct PendingID: Hashable {
        var allocator: IDAllocator
        var id: UInt64
    }

    /// A message sent on this connection that awaits its answer.
    private struct Expectation {
        var dispatch: Promise<Envelope?>?
        var conversation: Conversation?
        /// When the entry is given up (the reply timeout after it was made).
        var deadline: Deadline
    }

    private var helloReceived = false
    private var goAwayReceived = false
    /// Messages sent on this connection that await their answer (see ``PendingID``).
    private var awaiting: [PendingID: Expectation] = [:]
    /// The entries of `awaiting` in the order they were made, which is the order of their
    /// deadlines (each gets the same timeout), for one timer to give them up in turn; an entry
    /// answered meanwhile stays here until it reaches the front (see ``expect(_:dispatch:conversation:on:)``).
    private var deadlines: Deque<(key: PendingID, deadline: Deadline)> = []
    /// The timer for the first of `deadlines`.
    private var deadlineTimer: Scheduled<Void>?

    var peerStartsNothing: Bool { goAwayReceived }
    var awaitsNothing: Bool { awaiting.isEmpty }
    var awaitedAnswerCount: Int { awaiting.count }

    // MARK: The hello

    func connectionActive(_ stage: PersistentStage, context: ChannelHandlerContext) {
        stage.facts.localAddress = stage.core.advertisedAddress(for: context.channel)
        let generation: UInt64 = stage.facts.direction == .outbound ? stage.facts.generation : 0
        let hello = ControlMessage.Hello(
            name: stage.configuration.name, generation: generation, listeningAddress: stage.facts.localAddress,
            peerID: stage.core.transport.localPeerID)
        context.writeAndFlush(ControlMessage.hello(hello))
        stage.startHandshakeTimer { stage in
            .connectFailed(address: stage.peerAddress, reason: "the peer did not say hello in time")
        }
    }

    private func receiveHello(_ message: Envelope, on stage: PersistentStage) {
        let hello: ControlMessage.Hello
        let transport = stage.core.transport
        do {
            hello = try ControlMessage.parseHello(message, carriesPeerID: transport.authenticatesPeers)
        } catch {
            stage.closeNow(error)
            return
        }
        do {
            // Inside Noise the hello must name the peer id its session proved.
            try transport.check(hello, provenPeer: stage.facts.remotePeerID)
        } catch {
            stage.core.refuse(stage, error)
            return
        }
        helloReceived = true
        stage.cancelTimer()
        if stage.facts.direction == .inbound {
            stage.facts.generation = hello.generation
            stage.facts.peerAddress = hello.listeningAddress
        } else {
            stage.facts.peerAddress = hello.listeningAddress ?? stage.dialedAddress
        }
        stage.roundTrip = stage.core.loop.now - stage.openedAt
        stage.core.helloReceived(hello, on: stage)
    }

    func failureBeforeIdentified(_ error: any Error) -> P2PError? {
        helloReceived ? nil : .unknownProtocol("\(error)")
    }

    // MARK: Inbound

    func tookRouterMessage(_ message: Envelope, on stage: PersistentStage) -> Bool {
        guard helloReceived else {
            if message.operation == ControlMessage.helloOperation {
                receiveHello(message, on: stage)
            } else {
                stage.closeNow(.unknownProtocol("the peer sent '\(message.operation)' before its hello"))
            }
            return true
        }
        if message.isNoReplyMarker {
            _ = answerArrived(message.correlationID, answer: nil)
            stage.shutOutputIfDrained()
            return true
        }
        guard message.isControl else { return false }
        switch message.operation {
        case ControlMessage.goAwayOperation:
            goAwayReceived = true
            if !stage.isDraining { stage.core.peerAskedToDrain(stage) }
            stage.shutOutputIfDrained()
        case ControlMessage.helloOperation:
            stage.logger.debug("ignoring a second hello", metadata: ["peer": "\(stage.peerAddress)"])
        case PeerExchangeWire.requestOperation, PeerExchangeWire.answerOperation:
            // Peer exchange (Discovery/); a node without it ignores them.
            stage.core.peerExchange?.received(message, on: stage)
        default:
            do {
                // The broadcast mode's own (gossip's IHAVE, IWANT, ...).
                if try stage.core.broadcastControlReceived(message, on: stage) { return true }
            } catch {
                stage.closeNow(error)
                return true
            }
            stage.logger.debug("ignoring an unknown control message",
                               metadata: ["peer": "\(stage.peerAddress)", "operation": "\(String(message.operation.dropFirst()).escapedForTerminal)"])
        }
        return true
    }

    func conversation(continuedBy message: Envelope?, on stage: PersistentStage) -> Conversation? {
        guard let message, message.correlationID != 0 else { return nil }
        return answerArrived(message.correlationID, answer: message)
    }

    func refused(_ message: Envelope, asAnswer: Bool, on stage: PersistentStage) -> Envelope? {
        // A reply refused is taken as none.
        if asAnswer, message.correlationID != 0 { _ = answerArrived(message.correlationID, answer: nil) }
        return Envelope.noReplyMarker(from: stage.configuration.name, answering: message.messageID)
    }

    /// Matches an answer to the message it answers; returns the conversation it continues, if any.
    /// (The connection awaits at most one answer per id, so the id names one entry at most.)
    private func answerArrived(_ messageID: UInt64, answer: Envelope?) -> Conversation? {
        guard let expectation = awaiting.removeValue(forKey: PendingID(allocator: .thisNode, id: messageID))
            ?? awaiting.removeValue(forKey: PendingID(allocator: .broadcaster, id: messageID))
        else { return nil }
        pruneDeadlines()
        expectation.dispatch?.succeed(answer)
        guard let conversation = expectation.conversation, !conversation.isFinished else { return nil }
        guard let answer else {
            conversation.complete(.completedByPeer)
            return nil
        }
        conversation.received(answer)
        return conversation
    }

    // MARK: Outbound

    func dispatch(_ message: Envelope, reply: Promise<Envelope?>, on stage: PersistentStage, context: ChannelHandlerContext) {
        var request = message
        request.messageID = allocateID(stage)
        request.correlationID = 0
        expect(PendingID(allocator: .thisNode, id: request.messageID), dispatch: reply, conversation: nil, on: stage)
        context.writeAndFlush(request)
    }

    func opening(_ conversation: Conversation, with message: Envelope, on stage: PersistentStage) -> Envelope {
        var first = message
        first.messageID = allocateID(stage)
        first.correlationID = 0
        expect(PendingID(allocator: .thisNode, id: first.messageID), dispatch: nil, conversation: conversation, on: stage)
        return first
    }

    /// Not sent when the connection already awaits an answer under the broadcast's id: the two
    /// answers could not be told apart (see ``PendingID``). Only a peer that chose the id to
    /// collide causes that. Otherwise it awaits its answer too, so the connection knows when it is idle.
    func oneWay(_ message: Envelope, idChosenBy allocator: IDAllocator, on stage: PersistentStage) -> Envelope? {
        guard !isAwaitingAnswer(under: message.messageID) else {
            stage.logger.debug("not forwarding a broadcast whose id a message on this connection awaits an answer under",
                               metadata: ["peer": "\(stage.peerAddress)", "id": "\(message.messageID)"])
            return nil
        }
        expect(PendingID(allocator: allocator, id: message.messageID), dispatch: nil, conversation: nil, on: stage)
        return message
    }

    func answer(_ answer: Envelope, to owed: OwedAnswer, on stage: PersistentStage) -> Envelope {
        var reply = answer
        reply.messageID = allocateID(stage)
        reply.correlationID = owed.messageID
        reply.hopLimit = 0
        expect(PendingID(allocator: .thisNode, id: reply.messageID), dispatch: nil, conversation: owed.conversation, on: stage)
        return reply
    }

    func noAnswer(to owed: OwedAnswer, localName: String) -> Envelope? {
        guard owed.messageID != 0 else { return nil }
        return Envelope.noReplyMarker(from: localName, answering: owed.messageID)
    }

    func goAway(localName: String) -> Envelope? {
        ControlMessage.goAway(from: localName)
    }

    // MARK: Ids

    /// Whether a message sent on this connection awaits an answer under `id`, whoever chose it.
    private func isAwaitingAnswer(under id: UInt64) -> Bool {
        awaiting[PendingID(allocator: .thisNode, id: id)] != nil || awaiting[PendingID(allocator: .broadcaster, id: id)] != nil
    }

    /// A fresh id for a message this node sends on this connection and awaits an answer to: never
    /// one the connection already awaits an answer under (a peer can plant those; see
    /// ``PendingID``). The generator repeats no id within 2^64 draws, so each id awaited can cost
    /// one more draw at most: this draws at most once more than the connection awaits answers, and
    /// in practice once.
    private func allocateID(_ stage: PersistentStage) -> UInt64 {
        var id = stage.core.nextMessageID()
        while isAwaitingAnswer(under: id) { id = stage.core.nextMessageID() }
        return id
    }

    // MARK: Deadlines

    /// Records that the message sent under `key` awaits its answer, until the reply timeout: then
    /// the entry is dropped, its dispatch fails and its conversation times out
    /// (``expireEntries(on:)``). Every entry gets one, a broadcast's and a reply's too: a peer that
    /// never answers them would otherwise keep them for the connection's life, and a draining
    /// connection (which waits until it awaits nothing) until the hand-over timeout.
    ///
    /// The entries share one timer: they are made with the same timeout, so their deadlines come
    /// in the order they were made, and the timer waits for the first. An entry answered early
    /// leaves its place in the queue, skipped when it reaches the front (`pruneDeadlines`, on each
    /// answer), so the queue holds at most the messages sent within one reply timeout, and in the
    /// usual case (answers in order) only the ones not yet answered.
    private func expect(_ key: PendingID, dispatch: Promise<Envelope?>?, conversation: Conversation?, on stage: PersistentStage) {
        let deadline = stage.core.loop.now + stage.configuration.replyTimeout
        awaiting[key] = Expectation(dispatch: dispatch, conversation: conversation, deadline: deadline)
        deadlines.append((key, deadline))
        if deadlineTimer == nil { armDeadlineTimer(stage) }
    }

    /// Whether the front of `deadlines` no longer stands for an entry: answered, or replaced by a
    /// later entry under the same key.
    private func isStale(_ item: (key: PendingID, deadline: Deadline)) -> Bool {
        awaiting[item.key]?.deadline != item.deadline
    }

    /// Drops the answered entries from the front of `deadlines`.
    private func pruneDeadlines() {
        while let first = deadlines.first, isStale(first) { deadlines.removeFirst() }
    }

    /// Arms the timer for the first entry still waiting (replacing one armed already: a callback
    /// of an entry given up may have made a new entry, and armed the timer, meanwhile).
    private func armDeadlineTimer(_ stage: PersistentStage) {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        pruneDeadlines()
        guard let first = deadlines.first, first.deadline != .distantFuture else { return }
        deadlineTimer = stage.scheduleOnLoop(at: first.deadline) { [self] stage in
            guard let stage = stage as? PersistentStage else { return }
            expireEntries(on: stage)
        }
    }

    /// Gives up the entries whose deadline has passed.
    private func expireEntries(on stage: PersistentStage) {
        deadlineTimer = nil
        let now = stage.core.loop.now
        var expired = false
        while let first = deadlines.first {
            guard !isStale(first) else {
                deadlines.removeFirst()
                continue
            }
            guard first.deadline <= now, let expectation = awaiting.removeValue(forKey: first.key) else { break }
            deadlines.removeFirst()
            expired = true
            expectation.dispatch?.fail(P2PError.readTimeout(peer: "\(stage.peerAddress)"))
            expectation.conversation?.timeOut()
        }
        armDeadlineTimer(stage)
        if expired { stage.shutOutputIfDrained() }
    }

    // MARK: Failing

    func failAwaiting(_ error: P2PError) {
        let waiting = awaiting
        awaiting = [:]
        deadlines = []
        deadlineTimer?.cancel()
        deadlineTimer = nil
        for expectation in waiting.values {
            expectation.dispatch?.fail(error)
            expectation.conversation?.fail(error)
        }
    }

    func failEverything(_ error: P2PError) {
        failAwaiting(error)
    }
}
