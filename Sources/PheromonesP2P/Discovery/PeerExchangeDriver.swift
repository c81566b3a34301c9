import Pheromones
import PheromonesNoise

/// Runs peer exchange for one node: feeds the node's events to the pure ``PeerExchangeState`` and
/// carries out the actions it returns (sending requests and answers on connections, dialling
/// learned addresses, counting), with one timer for the state's next deadline.
///
/// Confined to the node's loop, like the ``NodeCore`` that owns it; time is the loop's `now`, so
/// it runs on a loop with virtual time as on a real one. The node calls it where a connection is
/// identified or ends, and ``NativeSession`` hands it the two control messages.
final class PeerExchangeDriver {
    /// The node; weak because the node owns this driver.
    private weak var core: NodeCore?
    private let loop: any EventLoop
    private var state: PeerExchangeState
    /// The one timer, armed for `timerDeadline`.
    private var timer: Scheduled<Void>?
    private var timerDeadline: Deadline?
    private var isStopped = false

    /// The driver for `core`, or nil when the node does not exchange peers: the setting is off, or
    /// the node is not in persistent mode on the native wire (the only one with control messages).
    static func make(for core: NodeCore) -> PeerExchangeDriver? {
        let configuration = core.configuration
        guard let settings = configuration.peerExchange, configuration.connectionType == .persistent, configuration.wire == .native else {
            return nil
        }
        // A seed of its own, apart from the message ids' stream, when the node is seeded.
        let seed = configuration.randomSeed.map { $0 ^ 0x7065_6572_7365_7863 } ?? UInt64.random(in: .min ... .max)
        return PeerExchangeDriver(core: core, settings: settings, seed: seed)
    }

    private init(core: NodeCore, settings: PeerExchange, seed: UInt64) {
        self.core = core
        self.loop = core.eventLoop
        self.state = PeerExchangeState(settings: settings, seed: seed)
        self.state.ownPeerID = core.transport.localPeerID
    }

    // MARK: Events (called by the node, on its loop)

    /// `stage` was identified as the route at `address`.
    func connectionIdentified(_ stage: RouterStage, address: SocketAddress) {
        loop.assertInEventLoop()
        guard !isStopped, stage.isPersistent, !stage.isClosed else { return }
        run(state.connectionIdentified(
            stage.id, address: address, peerID: stage.facts.remotePeerID, localAddress: stage.facts.localAddress, now: loop.now))
    }

    /// The connection `connection` closed, or its dial (of `dialedAddress`) failed.
    func connectionEnded(_ connection: ConnectionID, dialedAddress: SocketAddress?) {
        loop.assertInEventLoop()
        guard !isStopped else { return }
        run(state.connectionClosed(connection, dialedAddress: dialedAddress, now: loop.now))
    }

    /// A peer-exchange control message arrived on `stage` (after its hello).
    func received(_ message: Envelope, on stage: PersistentStage) {
        loop.assertInEventLoop()
        guard !isStopped else { return }
        switch message.operation {
        case PeerExchangeWire.requestOperation:
            run(state.requestReceived(on: stage.id, now: loop.now))
        case PeerExchangeWire.answerOperation:
            refreshOwnAddresses()
            let maximum = state.settings.maximumAddressesPerAnswer
            do {
                run(try state.answerReceived(on: stage.id, now: loop.now) { () throws(P2PError) in
                    // Routes the node has (pinned ones that are down too, which the state does not
                    // see) are not learned.
                    try PeerExchangeWire.parseAnswer(message, maximumEntries: maximum).filter { !hasRoute(for: $0) }
                })
            } catch {
                core?.logger.debug("closing a connection that sent a malformed peer-exchange answer",
                                   metadata: ["peer": "\(stage.peerAddress)", "error": "\(error.description)"])
                stage.closeNow(error)
            }
        default:
            break
        }
    }

    /// The node is shutting down: no more timers, requests or dials.
    func stop() {
        isStopped = true
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    // MARK: Carrying out

    private func run(_ actions: [PeerExchangeState.Action]) {
        for action in actions {
            switch action {
            case .request(let connection):
                guard let core, send(PeerExchangeWire.request(from: core.configuration.name), on: connection) else { continue }
                core.metrics.peerExchangeRequestSent()
            case .answer(let connection, let entries):
                guard let core, send(PeerExchangeWire.answer(entries, from: core.configuration.name), on: connection) else { continue }
                core.metrics.peerExchangeAnswerSent()
            case .dial(let entry):
                dial(entry)
            case .learned(let count):
                core?.metrics.peerExchangeLearned(count)
            case .ignored(let connection, let reason):
                core?.metrics.peerExchangeIgnoredMessage()
                core?.logger.debug("ignoring a peer-exchange message", metadata: ["connection": "\(connection)", "reason": "\(reason)"])
            }
        }
        reschedule()
    }

    /// Writes `message` on the persistent connection `connection` if it is open, not draining
    /// (nothing new goes on a draining connection) and its peer's queue has room; returns whether
    /// it did.
    private func send(_ message: Envelope, on connection: ConnectionID) -> Bool {
        guard let core, let stage = core.connections[connection] as? PersistentStage, !stage.isClosed, !stage.isDraining,
            let context = stage.context, context.channel.bufferedOutboundBytes < core.configuration.maximumQueuedBytesPerPeer
        else { return false }
        context.writeAndFlush(message)
        return true
    }

    /// Dials a learned address, not pinned, requiring the announced peer id; a dial that cannot
    /// start (the node has a route there or to that peer by now, the route or outbound connection
    /// limit is reached) is forgotten.
    private func dial(_ entry: PeerExchangeEntry) {
        guard let core, !core.isShutDown else { return }
        let address = entry.address
        // A learned route is a new route: it counts against the node's route limit like any other.
        let tableFull = core.table.routes.count >= core.configuration.maximumRoutes
        guard !hasRoute(for: entry), !tableFull, !isOwn(address) else {
            state.dialFailed(address)
            return
        }
        do {
            _ = try core.dial(name: "", address: address, pinning: false, pin: entry.peerID)
            core.metrics.peerExchangeDialStarted()
            core.logger.debug("dialing an address learned by peer exchange", metadata: ["address": "\(address)"])
        } catch {
            core.logger.debug("could not dial a learned address", metadata: ["address": "\(address)", "error": "\(error.description)"])
            state.dialFailed(address)
        }
    }

    /// Whether the node has a route at the entry's address or to its peer id.
    private func hasRoute(for entry: PeerExchangeEntry) -> Bool {
        guard let core else { return true }
        return core.table.routes[entry.address] != nil || entry.peerID.map { core.table.route(ofPeer: $0) != nil } == true
    }

    private func isOwn(_ address: SocketAddress) -> Bool {
        guard let core else { return true }
        return address == core.listeningAddress || address == core.configuration.advertisedAddress
    }

    private func refreshOwnAddresses() {
        guard let core else { return }
        state.ownAddresses = Set([core.listeningAddress, core.configuration.advertisedAddress].compactMap { $0 })
    }

    // MARK: The timer

    /// Arms the timer for the state's next deadline, unless it is armed for it already.
    private func reschedule() {
        let next = isStopped ? nil : state.nextDeadline(now: loop.now)
        guard next != timerDeadline else { return }
        timer?.cancel()
        timer = nil
        timerDeadline = next
        guard let next else { return }
        // Weak: a node dropped without `shutdown()` takes its driver with it, rather than leaving a
        // timer that reschedules itself forever.
        let bound = LoopBound(WeakReference(self), eventLoop: loop)
        timer = loop.scheduleTask(deadline: next) { bound.value.object?.timerFired() }
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        guard !isStopped, core != nil else { return }
        run(state.tick(now: loop.now))
    }
}
