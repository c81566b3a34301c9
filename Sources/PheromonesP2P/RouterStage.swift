import DequeModule
import Logging
import Pheromones

/// The stage between the wire and the protocol: one connection's place among the node's routes.
///
/// It owns what waits on the connection and matches answers to it:
/// - **Short, dial side** (no protocol stage after it): writes the one request, hands the one reply
///   to the waiting dispatch (nil for the "no reply follows" marker, or on the JSON wire for a
///   server that closes without a reply), closes.
/// - **Short, server side**: lets one request through to the protocol, writes its answer (on the
///   native wire the marker when there is none), closes once that is flushed; on the JSON wire a
///   request answered with nothing is closed at once, as there is no marker.
/// - **Persistent**: every message goes to the protocol, whose answers come back through here.
///   On the native wire each message this side sends awaits exactly one answer (a reply, or the
///   "no reply follows" marker), so the stage always knows what it awaits and what it owes; a
///   dispatch gets the reply whose correlation id is its message id, a conversation the chain of
///   messages that answer each other. On the JSON wire there are no ids: a dispatch completes when
///   written, and a conversation takes the messages in order.
///
/// On the native wire, the first frame each side sends is a hello (``ControlMessage``) that tells
/// the other who it is and where it listens; the route table learns the connection from it.
///
/// Everything that waits on the connection has a deadline: the handshake (the peer's hello, or a
/// short server's one request) the handshake timeout, every message sent the reply timeout for its
/// answer (see ``expect(_:dispatch:conversation:)``). The liveness stages below the router
/// (``PartialMessageTimer``, ``KeepaliveStage``) report their timeouts to it as a
/// ``ConnectionTimeout`` event, and it closes the connection as for its own.
///
/// When the connection drops, whatever waits on it fails at once with
/// ``P2PError/connectionLost(_:)``. When it is drained (it lost to another connection to the same
/// peer), nothing new is sent on it; it sends `goaway`, and shuts its output once it awaits and owes
/// nothing and the peer has said `goaway` too; the socket closes when both ends have shut theirs.
final class RouterStage: ChannelDuplexHandler {
    typealias InboundIn = Envelope
    typealias InboundOut = Envelope
    typealias OutboundIn = Envelope
    typealias OutboundOut = Envelope

    /// The connection's job.
    enum Role: Sendable, Hashable {
        case shortServer
        case shortDial
        case persistent(ConnectionDirection)
    }

    /// Who chose the id a message was sent under, which its answer names as its correlation id.
    enum IDAllocator: Sendable, Hashable {
        /// This node: its dispatches, the conversations it starts, its replies, its own broadcasts.
        case thisNode
        /// The peer that started a broadcast this node forwards (a broadcast keeps its id across
        /// the mesh, so that repeats can be dropped).
        case broadcaster
    }

    /// What a message awaiting its answer on this connection is keyed by: the connection is this
    /// stage's, and within it the id and who chose it.
    ///
    /// Matching answers by id alone let a peer choose an id that another message awaits an answer
    /// under (a broadcast it started carrying it, or one it guessed this node would allocate next:
    /// the ids are predictable) and overwrite that message's entry: its dispatch was then never
    /// completed, or completed with the answer to the broadcast. So an entry is never overwritten:
    /// a connection awaits at most one answer per id, whoever chose it. This node draws its ids
    /// around those its connection awaits answers under (``allocateID()``), and does not forward a
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

    /// A message received that the protocol has yet to answer.
    private struct OwedAnswer {
        var messageID: UInt64
        var conversation: Conversation?
    }

    /// The most messages a connection may leave unanswered in either direction; a peer that goes
    /// past it is misbehaving (flooding, or never answering), and its connection is closed.
    static let maximumPendingMessages = 1 << 16

    let id: ConnectionID
    let role: Role
    let core: NodeCore
    /// The address this side dialed (nil for accepted connections).
    let dialedAddress: SocketAddress?
    /// What the route table weighs when it picks between two connections to one peer.
    var facts: ConnectionFacts
    /// The route the connection carries, once it is known.
    var routeAddress: SocketAddress?
    /// The route's name when the connection was identified.
    var routeName = ""
    /// Whether the protocol has added this connection's route (``PeerContext/addRoute(name:address:)-(String,String)``).
    var routeConfirmedByProtocol = false
    /// Why the stage closed the connection, if it did (a dial waiting on it fails with this).
    private(set) var closeReason: P2PError?
    private(set) var isClosed = false
    private(set) var context: ChannelHandlerContext?

    private var helloReceived = false
    /// Messages sent on this connection that await their answer (see ``PendingID``).
    private var awaiting: [PendingID: Expectation] = [:]
    /// The entries of `awaiting` in the order they were made, which is the order of their
    /// deadlines (each gets the same timeout), for one timer to give them up in turn; an entry
    /// answered meanwhile stays here until it reaches the front (see ``expect(_:dispatch:conversation:)``).
    private var deadlines: Deque<(key: PendingID, deadline: Deadline)> = []
    /// The timer for the first of `deadlines`.
    private var deadlineTimer: Scheduled<Void>?
    /// Messages owed an answer, in arrival order (answers come back in the same order). A deque:
    /// up to `maximumPendingMessages` of them, each answer taking the first.
    private var owed: Deque<OwedAnswer> = []
    /// JSON-wire conversations started here, oldest first.
    private var jsonConversations: [Conversation] = []
    private var isDraining = false
    private var goAwayReceived = false
    private var inputClosed = false
    private var outputShut = false
    /// The connection's one stage timer: the handshake, a short dial's reply, a short server's
    /// answer, a drain.
    private var timer: Scheduled<Void>?
    private var shortReply: Promise<Envelope?>?
    private var requestSeen = false
    /// Messages of this connection the validator rejected.
    private var rejects = 0

    init(id: ConnectionID, role: Role, core: NodeCore, dialedAddress: SocketAddress?, facts: ConnectionFacts) {
        self.id = id
        self.role = role
        self.core = core
        self.dialedAddress = dialedAddress
        self.facts = facts
    }

    private var configuration: Node.Configuration { core.configuration }
    private var isNative: Bool { configuration.wire == .native }
    private var logger: Logger { core.logger }

    /// The best address to name the peer by in errors.
    var peerAddress: SocketAddress {
        routeAddress ?? dialedAddress ?? context?.channel.remoteAddress ?? .anyV4(port: 0)
    }

    /// What waits on the connection fails with when it drops: a draining connection was being
    /// replaced, whichever end gave up on it first.
    private var droppedError: P2PError {
        isDraining ? .connectionReplaced(peerAddress) : .connectionLost(peerAddress)
    }

    /// How many messages sent on this connection await their answer (for tests and diagnostics).
    var awaitedAnswerCount: Int { awaiting.count }

    /// Whether this is a persistent connection (not a short one).
    var isPersistent: Bool {
        if case .persistent = role { return true }
        return false
    }

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        switch role {
        case .shortServer:
            startHandshakeTimer()
        case .shortDial:
            break
        case .persistent(let direction):
            if isNative {
                sendHello(context: context)
            } else if direction == .outbound {
                helloReceived = true
                core.connectionIdentifiedByDial(self)
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        timer?.cancel()
        timer = nil
        deadlineTimer?.cancel()
        deadlineTimer = nil
        failEverything(droppedError)
        core.connectionClosed(self)
        context.fireChannelInactive()
    }

    // MARK: Sending (called by the node)

    /// Short dial side: writes the request and waits (at most the reply timeout) for one reply.
    func sendRequest(_ message: Envelope, reply: Promise<Envelope?>) {
        core.loop.assertInEventLoop()
        guard let context, !isClosed else {
            reply.fail(P2PError.connectionLost(peerAddress))
            return
        }
        shortReply = reply
        var request = message
        if isNative, request.messageID == 0 { request.messageID = core.nextMessageID() }
        startTimer(configuration.replyTimeout) { stage in
            stage.closeNow(.readTimeout(peer: "\(stage.peerAddress)"))
        }
        context.writeAndFlush(request)
    }

    /// Persistent: sends `message` and completes `reply` with its answer (native), or once it is
    /// written (JSON, which cannot tell answers apart).
    func dispatch(_ message: Envelope, reply: Promise<Envelope?>) {
        core.loop.assertInEventLoop()
        guard let context, !isClosed else {
            reply.fail(P2PError.connectionLost(peerAddress))
            return
        }
        if let refusal = refuseIfPeerTooSlow(context) {
            reply.fail(refusal)
            return
        }
        guard isNative else {
            // Nothing answers a message on this wire, so the dispatch waits only for its write,
            // which a peer that does not read never lets complete: the reply timeout bounds that.
            let written = context.eventLoop.makePromise(of: Void.self)
            let address = peerAddress
            let giveUp = scheduleOnLoop(configuration.replyTimeout) { stage in
                if reply.tryFail(P2PError.writeTimeout(address)) {
                    stage.logger.debug("a dispatch was not written in time", metadata: ["peer": "\(address)"])
                }
            }
            context.writeAndFlush(message, promise: written)
            written.futureResult.whenCompleteOnLoop { result in
                giveUp.cancel()
                _ = reply.tryComplete(result.map { nil }.mapError { _ in P2PError.connectionLost(address) })
            }
            return
        }
        var request = message
        request.messageID = allocateID()
        request.correlationID = 0
        expect(PendingID(allocator: .thisNode, id: request.messageID), dispatch: reply, conversation: nil)
        context.writeAndFlush(request)
    }

    /// Persistent: starts `conversation` with `message`.
    func start(_ conversation: Conversation, with message: Envelope) {
        core.loop.assertInEventLoop()
        guard let context, !isClosed else {
            conversation.fail(P2PError.connectionLost(peerAddress))
            return
        }
        if let refusal = refuseIfPeerTooSlow(context) {
            conversation.fail(refusal)
            return
        }
        var first = message
        if isNative {
            first.messageID = allocateID()
            first.correlationID = 0
            expect(PendingID(allocator: .thisNode, id: first.messageID), dispatch: nil, conversation: conversation)
        } else {
            jsonConversations.append(conversation)
        }
        conversation.sent(first, awaitingAnswerWithin: configuration.replyTimeout)
        context.writeAndFlush(first)
    }

    /// Persistent: sends `message` keeping its id (a broadcast, whose id `allocator` chose),
    /// awaiting an answer only so the connection knows when it is idle.
    ///
    /// Not sent when the connection already awaits an answer under that id: the two answers could
    /// not be told apart (see ``PendingID``). Only a peer that chose the id to collide causes that.
    func sendOneWay(_ message: Envelope, idChosenBy allocator: IDAllocator) {
        core.loop.assertInEventLoop()
        guard let context, !isClosed, refuseIfPeerTooSlow(context) == nil else { return }
        if isNative {
            guard !isAwaitingAnswer(under: message.messageID) else {
                logger.debug("not forwarding a broadcast whose id a message on this connection awaits an answer under",
                             metadata: ["peer": "\(peerAddress)", "id": "\(message.messageID)"])
                return
            }
            expect(PendingID(allocator: allocator, id: message.messageID), dispatch: nil, conversation: nil)
        }
        context.writeAndFlush(message)
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

    /// Whether a message sent on this connection awaits an answer under `id`, whoever chose it.
    private func isAwaitingAnswer(under id: UInt64) -> Bool {
        awaiting[PendingID(allocator: .thisNode, id: id)] != nil || awaiting[PendingID(allocator: .broadcaster, id: id)] != nil
    }

    /// A fresh id for a message this node sends on this connection and awaits an answer to: never
    /// one the connection already awaits an answer under (a peer can plant those; see
    /// ``PendingID``). The generator repeats no id within 2^64 draws, so each id awaited can cost
    /// one more draw at most: this draws at most once more than the connection awaits answers, and
    /// in practice once.
    private func allocateID() -> UInt64 {
        var id = core.nextMessageID()
        while isAwaitingAnswer(under: id) { id = core.nextMessageID() }
        return id
    }

    /// Starts draining: nothing new goes out; the output shuts once both ends are done, and the
    /// connection is closed if that takes longer than the hand-over timeout.
    func drain() {
        core.loop.assertInEventLoop()
        guard !isDraining, !isClosed, let context else { return }
        isDraining = true
        logger.debug("draining a connection", metadata: ["peer": "\(peerAddress)", "direction": "\(facts.direction)"])
        core.report(.connectionDraining(core.peerKey(of: self), facts.direction))
        if isNative, isPersistent {
            context.writeAndFlush(ControlMessage.goAway(from: configuration.name))
        }
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

    /// Fails what waits on the connection with `error` and closes it.
    func closeNow(_ error: P2PError) {
        core.loop.assertInEventLoop()
        guard !isClosed else { return }
        closeReason = closeReason ?? error
        failEverything(error)
        context?.close()
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: Envelope) {
        switch role {
        case .shortDial: receiveShortReply(data, context: context)
        case .shortServer: receiveShortRequest(data, context: context)
        case .persistent: receivePersistent(data, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            peerClosedOutput(context: context)
        } else if let timeout = event as? ConnectionTimeout {
            timedOut(timeout, failing: .readTimeout(peer: "\(peerAddress)"))
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wireError = error as? WireError, !isNative, wireError.leavesStreamInStep {
            receiveMalformed(wireError, context: context)
            return
        }
        // Anything else closes the connection (the stage that raised it does so).
        if case .limitReached(let limit)? = error as? P2PError {
            closeReason = closeReason ?? .limitReached(limit)
            core.metrics.refusedByLimit()
            core.report(.limitReached(limit))
        }
        if isPersistent, isNative, !helloReceived {
            closeReason = closeReason ?? .unknownProtocol("\(error)")
        }
        if role == .shortDial {
            completeShortReply(failure: .mismatchedResponse("\(error)"))
        }
        logger.debug("connection error", metadata: ["peer": "\(peerAddress)", "error": "\(escapedDescription(of: error))"])
    }

    private func receiveShortReply(_ reply: Envelope, context: ChannelHandlerContext) {
        // Only the native wire has a "no reply follows" marker; on the JSON wire an answer of that
        // name is an answer like any other.
        completeShortReply(with: isNative && reply.isNoReplyMarker ? nil : reply)
        context.close()
    }

    private func receiveShortRequest(_ request: Envelope, context: ChannelHandlerContext) {
        guard !requestSeen else { return }
        requestSeen = true
        startAnswerTimer()
        guard validated(request) else {
            context.close()
            return
        }
        if isNative, request.hopLimit > 0, !core.noteBroadcast(request, from: self) {
            context.close()
            return
        }
        owed.append(OwedAnswer(messageID: request.messageID, conversation: nil))
        core.metrics.deliveredToProtocol()
        context.fireChannelRead(request)
    }

    private func receivePersistent(_ message: Envelope, context: ChannelHandlerContext) {
        if isNative, !helloReceived {
            guard message.operation == ControlMessage.helloOperation else {
                closeNow(.unknownProtocol("the peer sent '\(message.operation)' before its hello"))
                return
            }
            receiveHello(message)
            return
        }
        // The router's own messages exist on the native wire only. The JSON wire carries none, so
        // there an operation that starts with U+0000 is the protocol's, like any other.
        if isNative, message.isNoReplyMarker {
            _ = answerArrived(message.correlationID, answer: nil)
            shutOutputIfDrained()
            return
        }
        if isNative, message.isControl {
            receiveControl(message)
            return
        }
        guard validated(message) else {
            guard !isClosed, isNative else { return }
            // As if it had not come: a reply it was is taken as none, and the peer, which awaits an
            // answer to every message, is told that none follows.
            if message.correlationID != 0 { _ = answerArrived(message.correlationID, answer: nil) }
            context.writeAndFlush(Envelope.noReplyMarker(from: configuration.name, answering: message.messageID))
            return
        }
        if isNative, message.hopLimit > 0, !core.noteBroadcast(message, from: self) {
            // A broadcast seen before: answer nothing, and do not show it to the protocol again.
            context.writeAndFlush(Envelope.noReplyMarker(from: configuration.name, answering: message.messageID))
            return
        }
        let conversation: Conversation?
        if isNative {
            conversation = message.correlationID == 0 ? nil : answerArrived(message.correlationID, answer: message)
        } else {
            conversation = currentJSONConversation
            conversation?.received(message)
        }
        guard owed.count < Self.maximumPendingMessages, awaiting.count < Self.maximumPendingMessages else {
            closeNow(.mismatchedRequest("the peer leaves more than \(Self.maximumPendingMessages) messages unanswered"))
            return
        }
        owed.append(OwedAnswer(messageID: message.messageID, conversation: conversation))
        core.metrics.deliveredToProtocol()
        context.fireChannelRead(message)
    }

    /// Whether the application's validator (if any) lets `message` go on to the protocol and the
    /// mesh; a reject counts against the connection, which is closed at the configured maximum.
    private func validated(_ message: Envelope) -> Bool {
        guard let validator = configuration.validator else { return true }
        let origin = MessageOrigin(peer: core.peerKey(of: self), remoteAddress: context?.channel.remoteAddress)
        switch validator(message, origin) {
        case .accept:
            return true
        case .ignore:
            return false
        case .reject:
            rejects += 1
            core.metrics.rejectedMessage()
            core.report(.messageRejected(origin.peer, count: rejects))
            if rejects >= configuration.maximumRejectsPerPeer {
                logger.debug("closing a peer whose messages the validator rejects", metadata: ["peer": "\(peerAddress)", "rejects": "\(rejects)"])
                closeNow(.mismatchedRequest("the validator rejected \(rejects) messages of this peer"))
            }
            return false
        }
    }

    /// A JSON object that is not an envelope: the protocol answers it (`unknownop` in the example).
    private func receiveMalformed(_ error: WireError, context: ChannelHandlerContext) {
        switch role {
        case .shortDial:
            completeShortReply(failure: .mismatchedResponse(error.description))
            context.close()
            return
        case .shortServer:
            guard !requestSeen else { return }
            requestSeen = true
            startAnswerTimer()
            owed.append(OwedAnswer(messageID: 0, conversation: nil))
        case .persistent:
            owed.append(OwedAnswer(messageID: 0, conversation: currentJSONConversation))
        }
        context.fireErrorCaught(error)
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

    private var currentJSONConversation: Conversation? {
        jsonConversations.removeAll { $0.isFinished }
        return jsonConversations.first
    }

    // MARK: Control messages

    private func sendHello(context: ChannelHandlerContext) {
        facts.localAddress = core.advertisedAddress(for: context.channel)
        let generation: UInt64 = facts.direction == .outbound ? facts.generation : 0
        let hello = ControlMessage.Hello(name: configuration.name, generation: generation, listeningAddress: facts.localAddress)
        context.writeAndFlush(ControlMessage.hello(hello))
        startHandshakeTimer()
    }

    private func receiveHello(_ message: Envelope) {
        let hello: ControlMessage.Hello
        do {
            hello = try ControlMessage.parseHello(message)
        } catch {
            closeNow(error)
            return
        }
        helloReceived = true
        cancelTimer()
        if facts.direction == .inbound {
            facts.generation = hello.generation
            facts.peerAddress = hello.listeningAddress
        } else {
            facts.peerAddress = hello.listeningAddress ?? dialedAddress
        }
        core.helloReceived(hello, on: self)
    }

    private func receiveControl(_ message: Envelope) {
        switch message.operation {
        case ControlMessage.goAwayOperation:
            goAwayReceived = true
            if !isDraining { core.peerAskedToDrain(self) }
            shutOutputIfDrained()
        case ControlMessage.helloOperation:
            logger.debug("ignoring a second hello", metadata: ["peer": "\(peerAddress)"])
        default:
            logger.debug("ignoring an unknown control message", metadata: ["peer": "\(peerAddress)", "operation": "\(String(message.operation.dropFirst()).escapedForTerminal)"])
        }
    }

    // MARK: Outbound: the protocol's answers

    /// The protocol's answer to the oldest message it owes one.
    func write(context: ChannelHandlerContext, data: Envelope, promise: Promise<Void>?) {
        var answer: Envelope? = data
        if isNative, data.isControl {
            // The router's messages are the router's: a protocol that answers with one (say, an
            // operation it copied from a payload) must not make this node say hello or goaway.
            logger.warning("the protocol answered with an operation reserved for the router; answering nothing instead",
                           metadata: ["operation": "\(data.operation.escapedForTerminal)"])
            answer = nil
        }
        deliver(answer, promise: promise, context: context)
    }

    /// The protocol answered the oldest message it owes an answer with nothing (called by the
    /// ``ProtocolStage`` directly, not through the pipeline, so that no envelope a protocol could
    /// also return stands for "nothing").
    func protocolAnsweredNothing() {
        guard let context else { return }
        deliver(nil, promise: nil, context: context)
    }

    /// Sends `answer` (nil: none) to the oldest message owed one, as the role does it.
    private func deliver(_ answer: Envelope?, promise: Promise<Void>?, context: ChannelHandlerContext) {
        switch role {
        case .shortDial:
            promise?.fail(ChannelError.operationUnsupported)
        case .shortServer:
            answerShortRequest(answer, promise: promise, context: context)
        case .persistent:
            answerPersistent(answer, promise: promise, context: context)
        }
    }

    private func answerShortRequest(_ answer: Envelope?, promise: Promise<Void>?, context: ChannelHandlerContext) {
        let request = owed.isEmpty ? nil : owed.removeFirst()
        guard let answer = answer ?? (isNative ? Envelope.noReplyMarker(from: configuration.name, answering: 0) : nil) else {
            // The JSON wire has no marker: closing without a reply says it.
            promise?.succeed(())
            context.close()
            return
        }
        var reply = answer
        reply.hopLimit = 0
        if isNative {
            reply.messageID = answer.isNoReplyMarker ? 0 : core.nextMessageID()
            reply.correlationID = request?.messageID ?? 0
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(reply, promise: written)
        written.futureResult.whenCompleteOnLoop { result in
            promise?.complete(result)
            context.close()
        }
    }

    private func answerPersistent(_ answer: Envelope?, promise: Promise<Void>?, context: ChannelHandlerContext) {
        let request = owed.isEmpty ? OwedAnswer(messageID: 0, conversation: nil) : owed.removeFirst()
        if let answer {
            var reply = answer
            if isNative {
                reply.messageID = allocateID()
                reply.correlationID = request.messageID
                reply.hopLimit = 0
                expect(PendingID(allocator: .thisNode, id: reply.messageID), dispatch: nil, conversation: request.conversation)
            }
            request.conversation?.sent(reply, awaitingAnswerWithin: configuration.replyTimeout)
            context.write(reply, promise: promise)
        } else {
            request.conversation?.complete(.completedHere)
            if isNative, request.messageID != 0 {
                context.write(Envelope.noReplyMarker(from: configuration.name, answering: request.messageID), promise: promise)
            } else {
                promise?.succeed(())
            }
        }
        shutOutputIfDrained()
    }

    // MARK: Endings

    private func peerClosedOutput(context: ChannelHandlerContext) {
        inputClosed = true
        switch role {
        case .shortDial:
            // The native server always answers, if only with the marker, so an end of stream
            // without one means the peer went away; the JSON wire cannot tell the two apart.
            if isNative {
                completeShortReply(failure: .connectionLost(peerAddress))
            } else {
                completeShortReply(with: nil)
            }
            context.close()
        case .shortServer:
            if !requestSeen { context.close() }
        case .persistent:
            // Nothing more can arrive, so nothing awaited will.
            failAwaiting(droppedError)
            if isDraining {
                shutOutputIfDrained()
            } else {
                context.close()
            }
        }
    }

    /// Shuts the output of a draining connection once this side awaits and owes nothing, the peer
    /// has said it starts nothing new (its `goaway`, or its end of stream), and the route knows the
    /// connection that replaces this one.
    private func shutOutputIfDrained() {
        guard isDraining, !outputShut, !isClosed, let context else { return }
        let peerStartsNothing = goAwayReceived || inputClosed || !isNative
        guard peerStartsNothing, awaiting.isEmpty, owed.isEmpty, currentJSONConversation == nil else { return }
        guard core.mayFinishDraining(self) else { return }
        outputShut = true
        context.close(mode: .output)
    }

    private func completeShortReply(with reply: Envelope?) {
        guard let promise = shortReply else { return }
        shortReply = nil
        cancelTimer()
        promise.succeed(reply)
    }

    private func completeShortReply(failure: P2PError) {
        guard let promise = shortReply else { return }
        shortReply = nil
        cancelTimer()
        promise.fail(failure)
    }

    private func failAwaiting(_ error: P2PError) {
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

    private func failEverything(_ error: P2PError) {
        failAwaiting(error)
        for answer in owed { answer.conversation?.fail(error) }
        for conversation in jsonConversations { conversation.fail(error) }
        jsonConversations = []
        completeShortReply(failure: error)
    }

    // MARK: Timeouts

    /// Closes the connection on a liveness timeout, failing what waits with `error`, and tells the
    /// observer why.
    private func timedOut(_ reason: ConnectionTimeout, failing error: P2PError) {
        guard !isClosed else { return }
        logger.debug("closing a connection on a timeout", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        core.metrics.timedOut(reason)
        core.report(.connectionTimedOut(core.peerKey(of: self), reason))
        closeNow(error)
    }

    /// Starts the wait for the handshake (``Node/Configuration/handshakeTimeout``): the peer's hello
    /// on a persistent native-wire connection, the request on a short server's.
    private func startHandshakeTimer() {
        guard let timeout = configuration.handshakeTimeout.asTimeout else { return }
        startTimer(timeout) { stage in
            let error: P2PError = stage.role == .shortServer
                ? .readTimeout(peer: "\(stage.peerAddress)")
                : .connectFailed(address: stage.peerAddress, reason: "the peer did not say hello in time")
            stage.timedOut(.handshake, failing: error)
        }
    }

    /// Short server: the answer must be written within the reply timeout once the request is in
    /// (the dialer gives up then); a peer that does not read it, or a protocol that does not
    /// answer, would otherwise hold the connection.
    private func startAnswerTimer() {
        startTimer(configuration.replyTimeout) { stage in
            stage.logger.debug("the answer to a short request did not go out in time; closing", metadata: ["peer": "\(stage.peerAddress)"])
            stage.closeNow(.writeTimeout(stage.peerAddress))
        }
    }

    // MARK: Deadlines

    /// Records that the message sent under `key` awaits its answer, until the reply timeout: then
    /// the entry is dropped, its dispatch fails and its conversation times out
    /// (``expireEntries()``). Every entry gets one, a broadcast's and a reply's too: a peer that
    /// never answers them would otherwise keep them for the connection's life, and a draining
    /// connection (which waits until it awaits nothing) until the hand-over timeout.
    ///
    /// The entries share one timer: they are made with the same timeout, so their deadlines come
    /// in the order they were made, and the timer waits for the first. An entry answered early
    /// leaves its place in the queue, skipped when it reaches the front (`pruneDeadlines`, on each
    /// answer), so the queue holds at most the messages sent within one reply timeout, and in the
    /// usual case (answers in order) only the ones not yet answered.
    private func expect(_ key: PendingID, dispatch: Promise<Envelope?>?, conversation: Conversation?) {
        let deadline = core.loop.now + configuration.replyTimeout
        awaiting[key] = Expectation(dispatch: dispatch, conversation: conversation, deadline: deadline)
        deadlines.append((key, deadline))
        if deadlineTimer == nil { armDeadlineTimer() }
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
    private func armDeadlineTimer() {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        pruneDeadlines()
        guard let first = deadlines.first, first.deadline != .distantFuture else { return }
        deadlineTimer = scheduleOnLoop(at: first.deadline) { stage in stage.expireEntries() }
    }

    /// Gives up the entries whose deadline has passed.
    private func expireEntries() {
        deadlineTimer = nil
        let now = core.loop.now
        var expired = false
        while let first = deadlines.first {
            guard !isStale(first) else {
                deadlines.removeFirst()
                continue
            }
            guard first.deadline <= now, let expectation = awaiting.removeValue(forKey: first.key) else { break }
            deadlines.removeFirst()
            expired = true
            expectation.dispatch?.fail(P2PError.readTimeout(peer: "\(peerAddress)"))
            expectation.conversation?.timeOut()
        }
        armDeadlineTimer()
        if expired { shutOutputIfDrained() }
    }

    // MARK: Timers

    private func startTimer(_ delay: TimeAmount, _ body: @escaping (RouterStage) -> Void) {
        timer?.cancel()
        timer = scheduleOnLoop(delay, body)
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    private func scheduleOnLoop(_ delay: TimeAmount, _ body: @escaping (RouterStage) -> Void) -> Scheduled<Void> {
        scheduleOnLoop(at: core.loop.now + delay, body)
    }

    private func scheduleOnLoop(at deadline: Deadline, _ body: @escaping (RouterStage) -> Void) -> Scheduled<Void> {
        let bound = LoopBound((self, body), eventLoop: core.loop)
        return core.loop.scheduleTask(deadline: deadline) {
            let (stage, body) = bound.value
            guard !stage.isClosed else { return }
            body(stage)
        }
    }
}

extension WireError {
    /// Whether the error concerns one well-framed message (JSON wire), so the connection stays
    /// open and the protocol answers it.
    var leavesStreamInStep: Bool {
        switch self {
        case .malformedEnvelope, .invalidUTF8, .invalidBase64: return true
        default: return false
        }
    }
}
