import Logging
import Pheromones
import PheromonesNoise

/// The stage between the wire and the protocol: one connection's place among the node's routes.
///
/// Each role is a subclass of its own, and each wire a ``WireDialect`` the stage asks wherever the
/// wires differ:
/// - ``ShortDialStage``: a short-mode dial; writes the one request, hands the one reply to the
///   waiting dispatch, closes.
/// - ``ShortServerStage``: a short-mode accepted connection; lets one request through to the
///   protocol, writes its answer, closes.
/// - ``PersistentStage``: a persistent connection, dialed or accepted; every message goes to the
///   protocol, whose answers come back through here, and the node's dispatches, conversations and
///   broadcasts go out on it.
///
/// This base holds what every role shares: the connection's identity among the routes, the
/// validator, the liveness timeouts, the one stage timer, and the way the connection closes.
/// Everything that waits on the connection has a deadline, and when the connection drops whatever
/// waits on it fails at once (``P2PError/connectionLost(_:)``).
///
/// The liveness stages below the router (``PartialMessageTimer``, ``KeepaliveStage``) report their
/// timeouts to it as a ``ConnectionTimeout`` event, and it closes the connection as for its own.
class RouterStage: ChannelDuplexHandler {
    typealias InboundIn = Envelope
    typealias InboundOut = Envelope
    typealias OutboundIn = Envelope
    typealias OutboundOut = Envelope

    let id: ConnectionID
    let core: NodeCore
    let dialect: any WireDialect
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
    var closeReason: P2PError?
    private(set) var isClosed = false
    private(set) var context: ChannelHandlerContext?
    /// The connection's one stage timer (the handshake, a short dial's reply, a short server's
    /// answer, a drain).
    private var timer: Scheduled<Void>?
    /// Messages of this connection the validator rejected.
    private var rejects = 0

    required init(id: ConnectionID, core: NodeCore, dialedAddress: SocketAddress?, facts: ConnectionFacts) {
        self.id = id
        self.core = core
        self.dialect = core.dialect
        self.dialedAddress = dialedAddress
        self.facts = facts
        self.openedAt = core.loop.now
    }

    /// When the connection began: its dial, or its acceptance.
    let openedAt: Deadline
    /// From the connection's beginning to the peer's hello: about one round trip (plus a Noise
    /// handshake's two, inside Noise), which gossip uses to prefer near peers for its eager links.
    var roundTrip: TimeAmount?

    var configuration: Node.Configuration { core.configuration }
    var logger: Logger { core.logger }

    /// The best address to name the peer by in errors.
    var peerAddress: SocketAddress {
        routeAddress ?? dialedAddress ?? context?.channel.remoteAddress ?? .anyV4(port: 0)
    }

    // MARK: What each role says (overridden)

    /// Whether the connection is a persistent one: it belongs to a route, and its opening and
    /// closing are reported.
    var isPersistent: Bool { false }

    /// How many messages sent on this connection await their answer (for tests and diagnostics).
    var awaitedAnswerCount: Int { 0 }

    /// What waits on the connection fails with when it drops.
    var droppedError: P2PError { .connectionLost(peerAddress) }

    /// The connection is up.
    func connectionActive(context: ChannelHandlerContext) {}

    /// A message arrived from the peer.
    func received(_ message: Envelope, context: ChannelHandlerContext) {}

    /// A message the wire could not make into an envelope, though the stream stays in step: the
    /// protocol answers it (a JSON object with wrong fields, say).
    func receivedMalformed(_ error: WireError, context: ChannelHandlerContext) {}

    /// The peer shut its output.
    func peerClosedOutput(context: ChannelHandlerContext) {
        context.close()
    }

    /// An error that closes the connection reached the stage (the stage that raised it closes it).
    func connectionFailed(_ error: any Error) {}

    /// The protocol answered the oldest message it owes an answer with `answer` (nil: nothing).
    func deliver(_ answer: Envelope?, promise: Promise<Void>?, context: ChannelHandlerContext) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    /// Fails everything that waits on the connection with `error`.
    func failEverything(_ error: P2PError) {}

    // MARK: Lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        connectionActive(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        cancelTimer()
        failEverything(droppedError)
        core.connectionClosed(self)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: Envelope) {
        received(data, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            peerClosedOutput(context: context)
        } else if let timeout = event as? ConnectionTimeout {
            timedOut(timeout, failing: .readTimeout(peer: "\(peerAddress)"))
        } else if case .handshakeCompleted(let result)? = event as? NoiseEvent {
            // Before any plaintext, so before any hello: who the peer is decides whether it stays.
            core.peerAuthenticated(self, peer: result.remotePeerID)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wireError = error as? WireError, dialect.leavesStreamInStep(wireError) {
            receivedMalformed(wireError, context: context)
            return
        }
        if case .limitReached(let limit)? = error as? P2PError {
            closeReason = closeReason ?? .limitReached(limit)
            core.metrics.refusedByLimit()
            core.report(.limitReached(limit))
        }
        connectionFailed(error)
        logger.debug("connection error", metadata: ["peer": "\(peerAddress)", "error": "\(escapedDescription(of: error))"])
    }

    // MARK: The protocol's answers

    /// The protocol's answer to the oldest message it owes one.
    func write(context: ChannelHandlerContext, data: Envelope, promise: Promise<Void>?) {
        var answer: Envelope? = data
        if dialect.isRouterMessage(data) {
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

    // MARK: Closing

    /// Fails what waits on the connection with `error` and closes it.
    func closeNow(_ error: P2PError) {
        core.loop.assertInEventLoop()
        guard !isClosed else { return }
        closeReason = closeReason ?? error
        failEverything(error)
        context?.close()
    }

    /// Closes the connection on a liveness timeout, failing what waits with `error`, and tells the
    /// observer why.
    func timedOut(_ reason: ConnectionTimeout, failing error: P2PError) {
        guard !isClosed else { return }
        logger.debug("closing a connection on a timeout", metadata: ["peer": "\(peerAddress)", "reason": "\(reason)"])
        core.metrics.timedOut(reason)
        core.report(.connectionTimedOut(core.peerKey(of: self), reason))
        closeNow(error)
    }

    /// Starts the wait for the handshake (``Node/Configuration/handshakeTimeout``); when it runs
    /// out the connection closes, failing what waits with `error`.
    func startHandshakeTimer(failing error: @escaping (RouterStage) -> P2PError) {
        guard let timeout = configuration.handshakeTimeout.asTimeout else { return }
        startTimer(timeout) { stage in stage.timedOut(.handshake, failing: error(stage)) }
    }

    // MARK: Validation

    /// Whether the application's validator (if any) lets `message` go on to the protocol and the
    /// mesh; a reject counts against the connection, which is closed at the configured maximum.
    func validated(_ message: Envelope) -> Bool {
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

    // MARK: Timers

    /// Replaces the stage timer with one that runs `body` after `delay`.
    func startTimer(_ delay: TimeAmount, _ body: @escaping (RouterStage) -> Void) {
        timer?.cancel()
        timer = scheduleOnLoop(at: core.loop.now + delay, body)
    }

    func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    /// Runs `body` with the stage at `deadline`, unless the connection has closed by then.
    func scheduleOnLoop(at deadline: Deadline, _ body: @escaping (RouterStage) -> Void) -> Scheduled<Void> {
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
