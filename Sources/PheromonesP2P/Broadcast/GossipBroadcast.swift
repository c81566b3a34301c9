import Pheromones

/// ``BroadcastMode/gossip(_:)`` on a node: the ``GossipRouter`` (a pure state machine) driven
/// from the node's loop. This type feeds it what happens (connections that carry a route come and
/// go, broadcasts and gossip control arrive, the heartbeat and the pull timers fire) and carries
/// out the actions it returns: full copies go out as one-way broadcasts on the peers' persistent
/// connections, control messages as router messages (`\0ihave`, ...) that await no answer.
///
/// Peers are the node's connections (their ids): a route whose connection is replaced leaves
/// the mesh with the old connection and joins it again with the new one.
final class GossipBroadcast: BroadcastStrategy {
    private let parameters: GossipParameters
    private var router: GossipRouter<ConnectionID>
    /// The router's output, reused from call to call.
    private var actions: [GossipAction<ConnectionID>] = []
    private var heartbeat: Scheduled<Void>?
    /// The pull timer armed, and for when.
    private var pullTimer: (deadline: Deadline, task: Scheduled<Void>)?
    /// The router's statistics as last added to the node's metrics.
    private var counted = GossipStatistics()
    private var isShutDown = false

    init(parameters: GossipParameters, seed: UInt64, memory: Int) {
        self.parameters = parameters.clamped
        router = GossipRouter(parameters: parameters, seed: seed, seenCapacity: memory)
    }

    func publish(_ message: Envelope, to recipients: Recipients, in core: NodeCore) -> Int {
        core.loop.assertInEventLoop()
        router.publish(message, now: core.loop.now, actions: &actions)
        return carryOut(in: core, ownMessage: true)
    }

    func received(_ message: Envelope, from stage: RouterStage, in core: NodeCore) -> Bool {
        core.loop.assertInEventLoop()
        let isNew = router.received(message, from: stage.id, now: core.loop.now, actions: &actions)
        if !isNew { core.metrics.droppedDuplicate() }
        let forwarded = carryOut(in: core)
        if forwarded > 0 { core.metrics.forwardedCopies(forwarded) }
        return isNew
    }

    func peerUp(_ stage: PersistentStage, in core: NodeCore) {
        core.loop.assertInEventLoop()
        startHeartbeat(in: core)
        router.peerConnected(stage.id, roundTrip: stage.roundTrip, now: core.loop.now, actions: &actions)
        _ = carryOut(in: core)
    }

    func peerDown(_ connection: ConnectionID, in core: NodeCore) {
        core.loop.assertInEventLoop()
        router.peerDisconnected(connection)
        // Its pulls may have moved to the next announcer, due at once; its failed pulls counted.
        armPullTimer(in: core)
        flushCounters(in: core)
    }

    func controlReceived(_ message: Envelope, on stage: PersistentStage, in core: NodeCore) throws(P2PError) -> Bool {
        core.loop.assertInEventLoop()
        guard let control = try GossipControl.parse(message, limits: parameters) else { return false }
        router.receivedControl(control, from: stage.id, now: core.loop.now, actions: &actions)
        _ = carryOut(in: core)
        return true
    }

    func shutdown() {
        isShutDown = true
        heartbeat?.cancel()
        heartbeat = nil
        pullTimer?.task.cancel()
        pullTimer = nil
    }

    // MARK: Carrying out the router's actions

    /// Sends what the router asked for; returns how many full copies went out. `ownMessage`: the
    /// copies are of a broadcast this node started (its id is this node's).
    @discardableResult
    private func carryOut(in core: NodeCore, ownMessage: Bool = false) -> Int {
        var copies = 0
        for action in actions {
            switch action {
            case .send(let message, let peer):
                guard let stage = core.persistentStage(peer) else { continue }
                stage.sendOneWay(message, idChosenBy: ownMessage ? .thisNode : .broadcaster)
                copies += 1
            case .control(let control, let peer):
                // Nameless: the connection says who sent it, and the name would cost bytes on every one.
                core.persistentStage(peer)?.sendControl(control.envelope(from: ""))
            }
        }
        actions.removeAll(keepingCapacity: true)
        armPullTimer(in: core)
        return copies
    }

    /// Adds what the router counted since last time to the node's metrics: on each heartbeat,
    /// when a peer leaves, and before the node's statistics are read, not per message.
    func flushCounters(in core: NodeCore) {
        let now = router.statistics
        guard now != counted else { return }
        core.metrics.gossip(GossipCounters(now).subtracting(GossipCounters(counted)))
        counted = now
    }

    // MARK: Timers

    private func startHeartbeat(in core: NodeCore) {
        guard heartbeat == nil, !isShutDown else { return }
        scheduleHeartbeat(in: core)
    }

    private func scheduleHeartbeat(in core: NodeCore) {
        let target = LoopBound((WeakReference(self), WeakReference(core)), eventLoop: core.loop)
        heartbeat = core.loop.scheduleTask(in: parameters.heartbeatInterval) {
            guard let strategy = target.value.0.object, let core = target.value.1.object else { return }
            strategy.heartbeatFired(in: core)
        }
    }

    private func heartbeatFired(in core: NodeCore) {
        guard !isShutDown, !core.isShutDown else { return }
        router.heartbeat(now: core.loop.now, actions: &actions)
        carryOut(in: core)
        flushCounters(in: core)
        scheduleHeartbeat(in: core)
    }

    /// Keeps one loop timer at the router's earliest pull deadline.
    private func armPullTimer(in core: NodeCore) {
        guard !isShutDown, let deadline = router.nextDeadline else { return }
        if let armed = pullTimer, armed.deadline <= deadline { return }
        pullTimer?.task.cancel()
        let target = LoopBound((WeakReference(self), WeakReference(core)), eventLoop: core.loop)
        let task = core.loop.scheduleTask(deadline: deadline) {
            guard let strategy = target.value.0.object, let core = target.value.1.object else { return }
            strategy.pullTimerFired(in: core)
        }
        pullTimer = (deadline, task)
    }

    private func pullTimerFired(in core: NodeCore) {
        pullTimer = nil
        guard !isShutDown, !core.isShutDown else { return }
        router.expireTimers(now: core.loop.now, actions: &actions)
        carryOut(in: core)
    }
}
