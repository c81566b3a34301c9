import DequeModule
import Logging
import Pheromones

/// The last stage of a peer connection: calls the user's protocol with each message and writes
/// its answer back.
///
/// An on-loop ``PeerProtocol`` is called right in `channelRead` (the fast path: the answer is
/// written in the same turn and, on the native wire, flushed with the rest of the read batch; on
/// the JSON wire each answer is flushed alone, as the Go original reads one message per read). An ``AsyncPeerProtocol`` is
/// awaited in a task; messages that arrive meanwhile wait their turn, so each connection's
/// messages are handled one at a time, in order.
///
/// In a node the stage follows a ``RouterStage``, which numbers the answers and matches them to
/// requests; an answer of nil is told to the router directly (``RouterStage/protocolAnsweredNothing()``),
/// which sends the "no reply follows" marker or nothing, as its wire and role want. (Not as an
/// envelope through the pipeline: whatever envelope stood for "nothing", a protocol could return it
/// too, and on the JSON wire an operation named like a control message is an ordinary one.) Stand-alone (``init(protocol:localName:connectionType:onAddRoute:logger:)``), it sits right
/// after a wire's stages, and nil answers are simply not written: that is how the example
/// protocol is tested on an `EmbeddedChannel`.
///
/// A message that is not an envelope (a JSON object with wrong fields) reaches the stage as a
/// ``WireError`` and goes to the protocol's `handleMalformedMessage`. Other errors are passed on.
///
/// ### Flow control
/// The stage counts the messages it has handed to the protocol and not yet seen answered, and their
/// bytes. While either count is at its bound it holds the channel's requests for more input (an
/// outbound `read()`), so the connection stops reading and TCP pushes back on the peer; once the
/// protocol has caught up below both bounds, it passes the request on. An on-loop protocol answers
/// each message before the next arrives, so only an async one ever reaches the bounds.
public final class ProtocolStage: ChannelDuplexHandler {
    /// Messages from the router (or the wire).
    public typealias InboundIn = Envelope
    /// Answers.
    public typealias OutboundOut = Envelope
    /// Writes from other stages pass through unchanged.
    public typealias OutboundIn = Envelope

    /// Writes and flushes go past this stage; it only watches `read()` requests.
    public static var passThroughEvents: PassThroughEvents { [.write, .flush] }

    private enum Work: Sendable {
        case message(Envelope)
        case malformed(WireError)

        /// What the work counts for against ``ProtocolStage``'s byte bound.
        var size: Int {
            switch self {
            case .message(let message):
                (message.data?.readableBytes ?? 0) + message.name.utf8.count + message.operation.utf8.count
            case .malformed: 0
            }
        }
    }

    private let handler: ProtocolHandler
    private let localName: String
    private let connectionType: ConnectionType
    private let core: NodeCore?
    private let router: RouterStage?
    private let onAddRoute: (@Sendable (String, SocketAddress) throws(P2PError) -> Void)?
    private let logger: Logger
    /// Whether each answer is flushed on its own: the Go original reads one message per `Read`,
    /// so on its JSON wire two answers must never share a write.
    private let flushesEachAnswer: Bool
    /// Work waiting for an async protocol, oldest first (a deque: it may hold thousands).
    private var queue: Deque<Work> = []
    private var isBusy = false
    private var needsFlush = false
    private var context: ChannelHandlerContext?
    /// What every ``PeerContext`` of the connection shares, made once (they are made per message).
    private var cachedRoutes: RouteRegistrar?
    private var remoteAddress: SocketAddress?
    /// The most messages handed to the protocol and not yet answered before reading stops.
    private let maximumUnansweredMessages: Int
    /// The same bound in bytes (``Work/size``).
    private let maximumUnansweredBytes: Int
    /// Messages handed to the protocol (queued or being handled) and not yet answered.
    private var unansweredMessages = 0
    /// Their bytes.
    private var unansweredBytes = 0
    /// The size of the work the async protocol is handling now.
    private var sizeInProgress = 0
    /// Whether a `read()` request is held back because a bound is reached.
    private var readHeld = false

    init(handler: ProtocolHandler, core: NodeCore, router: RouterStage) {
        self.handler = handler
        self.localName = core.configuration.name
        self.connectionType = core.routing.connectionType
        self.core = core
        self.router = router
        self.onAddRoute = nil
        self.logger = core.logger
        self.flushesEachAnswer = core.dialect.flushesEachAnswer
        self.maximumUnansweredMessages = max(1, core.configuration.maximumUnansweredMessages)
        self.maximumUnansweredBytes = max(1, core.configuration.maximumUnansweredBytes)
    }

    /// A stand-alone stage running `protocol` (for tests and custom pipelines); `onAddRoute` sees
    /// the protocol's ``PeerContext/addRoute(name:address:)-(String,String)`` calls.
    public init(
        protocol peerProtocol: sending some PeerProtocol, localName: String, connectionType: ConnectionType,
        onAddRoute: (@Sendable (String, SocketAddress) throws(P2PError) -> Void)? = nil,
        logger: Logger = Logger(label: "pheromones.p2p")
    ) {
        self.handler = .onLoop(peerProtocol)
        self.localName = localName
        self.connectionType = connectionType
        self.core = nil
        self.router = nil
        self.onAddRoute = onAddRoute
        self.logger = logger
        self.flushesEachAnswer = true
        self.maximumUnansweredMessages = Int.max
        self.maximumUnansweredBytes = Int.max
    }

    /// Keeps the context, for answers that arrive after an await.
    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Forgets the context; answers still under way are dropped. A held `read()` is passed on:
    /// without this stage nothing would release it.
    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        cachedRoutes = nil
        remoteAddress = nil
        queue = []
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    /// Passes the request for more input on, unless the protocol is behind by a bound or more.
    public func read(context: ChannelHandlerContext) {
        if isBehind {
            readHeld = true
        } else {
            context.read()
        }
    }

    /// Whether the unanswered messages reach either bound.
    private var isBehind: Bool {
        unansweredMessages >= maximumUnansweredMessages || unansweredBytes >= maximumUnansweredBytes
    }

    /// Hands the message to the protocol (or queues it behind the one being handled).
    public func channelRead(context: ChannelHandlerContext, data: Envelope) {
        enqueue(.message(data))
    }

    /// Flushes the answers written during the read batch.
    public func channelReadComplete(context: ChannelHandlerContext) {
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    /// Hands a message that is not an envelope to the protocol; passes other errors on.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let wireError = error as? WireError, wireError.leavesStreamInStep else {
            context.fireErrorCaught(error)
            return
        }
        logger.debug("a message is not an envelope", metadata: ["error": "\(escapedDescription(of: wireError))"])
        enqueue(.malformed(wireError))
    }

    // MARK: Handling

    private func enqueue(_ work: Work) {
        unansweredMessages += 1
        unansweredBytes += work.size
        guard !isBusy else {
            queue.append(work)
            return
        }
        handle(work)
    }

    private func handle(_ work: Work) {
        guard let context else { return }
        let peerContext = makePeerContext(for: work, context: context)
        switch handler {
        case .onLoop(let peerProtocol):
            let answer: Envelope?
            do {
                switch work {
                case .message(let message): answer = try peerProtocol.handle(message, context: peerContext)
                case .malformed(let error): answer = try peerProtocol.handleMalformedMessage(error, context: peerContext)
                }
            } catch {
                reportFailure(error, of: work)
                answer = nil
            }
            answered(work.size)
            respond(answer, flushNow: flushesEachAnswer)
        case .async(let peerProtocol):
            isBusy = true
            sizeInProgress = work.size
            let bound = LoopBound(self, eventLoop: context.eventLoop)
            let logger = logger
            Task {
                let answer: Envelope?
                do {
                    switch work {
                    case .message(let message): answer = try await peerProtocol.handle(message, context: peerContext)
                    case .malformed(let error): answer = try await peerProtocol.handleMalformedMessage(error, context: peerContext)
                    }
                } catch {
                    logger.warning("the protocol failed; answering nothing", metadata: ["error": "\(escapedDescription(of: error))"])
                    answer = nil
                }
                bound.eventLoop.execute { bound.value.asyncAnswerArrived(answer) }
            }
        }
    }

    private func asyncAnswerArrived(_ answer: Envelope?) {
        isBusy = false
        answered(sizeInProgress)
        respond(answer, flushNow: true)
        while !isBusy, context != nil, !queue.isEmpty {
            handle(queue.removeFirst())
        }
        if needsFlush, let context {
            needsFlush = false
            context.flush()
        }
        releaseHeldReadIfCaughtUp()
    }

    /// Counts one message of `size` bytes as answered.
    private func answered(_ size: Int) {
        unansweredMessages -= 1
        unansweredBytes -= size
    }

    /// Passes a held `read()` on once the protocol is below both bounds again.
    private func releaseHeldReadIfCaughtUp() {
        guard readHeld, !isBehind, let context else { return }
        readHeld = false
        context.read()
    }

    private func respond(_ answer: Envelope?, flushNow: Bool) {
        guard let context else { return }
        if let answer {
            context.write(answer)
        } else if let router {
            router.protocolAnsweredNothing()
        } else {
            return
        }
        if flushNow {
            context.flush()
        } else {
            needsFlush = true
        }
    }

    private func makePeerContext(for work: Work, context: ChannelHandlerContext) -> PeerContext {
        let sender: String
        switch work {
        case .message(let message): sender = message.name
        case .malformed: sender = ""
        }
        let routes: RouteRegistrar
        if let cachedRoutes {
            routes = cachedRoutes
        } else {
            if let core {
                routes = .node(LoopBound(core, eventLoop: context.eventLoop), connection: router.map { LoopBound($0, eventLoop: context.eventLoop) })
            } else {
                routes = .hook(onAddRoute)
            }
            cachedRoutes = routes
        }
        // A connection's remote address does not change once known: read from the channel once.
        if remoteAddress == nil { remoteAddress = context.channel.remoteAddress }
        return PeerContext(
            localName: localName, sender: sender, remoteAddress: remoteAddress,
            peerAddress: router?.routeAddress, connectionType: connectionType, node: core?.node, routes: routes)
    }

    private func reportFailure(_ error: any Error, of work: Work) {
        let operation: String
        switch work {
        case .message(let message): operation = message.operation
        case .malformed: operation = "(malformed)"
        }
        logger.warning("the protocol failed; answering nothing", metadata: ["operation": "\(operation.escapedForTerminal)", "error": "\(escapedDescription(of: error))"])
    }
}
