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
/// requests; an answer of nil is written as the "no reply follows" marker for the router to send
/// or drop. Stand-alone (``init(protocol:localName:connectionType:onAddRoute:logger:)``), it sits right
/// after a wire's stages, and nil answers are simply not written: that is how the example
/// protocol is tested on an `EmbeddedChannel`.
///
/// A message that is not an envelope (a JSON object with wrong fields) reaches the stage as a
/// ``WireError`` and goes to the protocol's `handleMalformedMessage`. Other errors are passed on.
public final class ProtocolStage: ChannelInboundHandler {
    /// Messages from the router (or the wire).
    public typealias InboundIn = Envelope
    /// Answers.
    public typealias OutboundOut = Envelope

    private enum Work: Sendable {
        case message(Envelope)
        case malformed(WireError)
    }

    private let handler: ProtocolHandler
    private let localName: String
    private let connectionType: ConnectionType
    private let core: NodeCore?
    private let router: RouterStage?
    private let onAddRoute: (@Sendable (String, SocketAddress) throws(P2PError) -> Void)?
    private let logger: Logger
    /// Whether nil answers are written as markers (for a router to handle).
    private let writesNoReplyMarkers: Bool
    /// Whether each answer is flushed on its own: the Go original reads one message per `Read`,
    /// so on its JSON wire two answers must never share a write.
    private let flushesEachAnswer: Bool
    /// Work waiting for an async protocol, oldest first (a deque: it may hold thousands).
    private var queue: Deque<Work> = []
    private var isBusy = false
    private var needsFlush = false
    private var context: ChannelHandlerContext?

    init(handler: ProtocolHandler, core: NodeCore, router: RouterStage) {
        self.handler = handler
        self.localName = core.configuration.name
        self.connectionType = core.configuration.connectionType
        self.core = core
        self.router = router
        self.onAddRoute = nil
        self.logger = core.logger
        self.writesNoReplyMarkers = true
        self.flushesEachAnswer = core.configuration.wire == .json
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
        self.writesNoReplyMarkers = false
        self.flushesEachAnswer = true
    }

    /// Keeps the context, for answers that arrive after an await.
    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Forgets the context; answers still under way are dropped.
    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        queue = []
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
        logger.debug("a message is not an envelope", metadata: ["error": "\("\(wireError)".escapedForTerminal)"])
        enqueue(.malformed(wireError))
    }

    // MARK: Handling

    private func enqueue(_ work: Work) {
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
            respond(answer, flushNow: flushesEachAnswer)
        case .async(let peerProtocol):
            isBusy = true
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
                    logger.warning("the protocol failed; answering nothing", metadata: ["error": "\("\(error)".escapedForTerminal)"])
                    answer = nil
                }
                bound.eventLoop.execute { bound.value.asyncAnswerArrived(answer) }
            }
        }
    }

    private func asyncAnswerArrived(_ answer: Envelope?) {
        isBusy = false
        respond(answer, flushNow: true)
        while !isBusy, context != nil, !queue.isEmpty {
            handle(queue.removeFirst())
        }
        if needsFlush, let context {
            needsFlush = false
            context.flush()
        }
    }

    private func respond(_ answer: Envelope?, flushNow: Bool) {
        guard let context else { return }
        if let answer {
            context.write(answer)
        } else if writesNoReplyMarkers {
            context.write(Envelope.noReplyMarker(from: localName, answering: 0))
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
        if let core {
            routes = .node(LoopBound(core, eventLoop: context.eventLoop), connection: router.map { LoopBound($0, eventLoop: context.eventLoop) })
        } else {
            routes = .hook(onAddRoute)
        }
        return PeerContext(
            localName: localName, sender: sender, remoteAddress: context.channel.remoteAddress,
            peerAddress: router?.routeAddress, connectionType: connectionType, node: core?.node, routes: routes)
    }

    private func reportFailure(_ error: any Error, of work: Work) {
        let operation: String
        switch work {
        case .message(let message): operation = message.operation
        case .malformed: operation = "(malformed)"
        }
        logger.warning("the protocol failed; answering nothing", metadata: ["operation": "\(operation.escapedForTerminal)", "error": "\("\(error)".escapedForTerminal)"])
    }
}
