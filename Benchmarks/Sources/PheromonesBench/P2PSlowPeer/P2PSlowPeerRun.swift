/// One wire and router's p2p-slow-peer run against a started node: a warm-up and the idle
/// reading, the flood with a ping-pong client alongside, the reading while the flooder holds, its
/// reset, and the reading after it left. The stages are slow-reader's (`SlowReaderRun`), on its
/// loop and watch, with P2P clients.
struct P2PSlowPeerRun {
    let plan: P2PSlowPeerPlan
    let node: ChaosServer
    private let loop: SlowReaderLoop

    init(plan: P2PSlowPeerPlan, node: ChaosServer) throws(LoadError) {
        self.plan = plan
        self.node = node
        loop = try SlowReaderLoop()
    }

    private var pid: Int32 { node.process.pid }

    /// Runs every stage; a stage that fails (the warm-up, the node dying) ends the run with the
    /// figures taken so far. The result is not judged yet: the node's exit is still to come.
    func measure() throws(LoadError) -> P2PSlowPeerResult {
        var result = P2PSlowPeerResult(plan: plan, nodeCommand: node.command, nodePID: pid)
        try runStages(into: &result)
        return result
    }

    private func runStages(into result: inout P2PSlowPeerResult) throws(LoadError) {
        guard warmUp(into: &result), settle(into: &result) else { return }
        let flooder: any PeerFlooder = switch plan.router {
        case .persistent: PeerPipelineFlooder(plan: plan, epoll: loop.epoll)
        case .short: try PeerConnectionFlooder(plan: plan, epoll: loop.epoll)
        }
        guard flood(flooder, into: &result), hold(flooder, into: &result) else { return }
        flooder.leave()
        leave(into: &result)
    }

    // MARK: Stages

    /// A few round trips, so that the idle reading is of a node that has served a peer (its
    /// buffers and pools exist), then a close.
    private func warmUp(into result: inout P2PSlowPeerResult) -> Bool {
        let pinger = PeerPinger(plan: plan, epoll: loop.epoll, stopAt: .max, limit: plan.warmUpRoundTrips)
        let watch = makeWatch()
        pinger.start(port: node.port, now: monotonicNanoseconds())
        let bound = (plan.connectTimeout + plan.replyTimeout) * Double(plan.warmUpRoundTrips)
        loop.run([pinger], watch: watch, deadline: stageDeadline(bound)) { pinger.isFinished }
        result.warmUpRoundTrips = pinger.roundTrips
        if let failure = pinger.failure ?? (pinger.isFinished ? nil : "did not finish in time") {
            result.problems.append("warm-up: \(failure)")
            return false
        }
        return checkAlive(watch, into: &result)
    }

    /// The idle reading, after the node was left alone for the settle time.
    private func settle(into result: inout P2PSlowPeerResult) -> Bool {
        let watch = makeWatch()
        loop.run([], watch: watch, deadline: stageDeadline(plan.settleSeconds))
        guard checkAlive(watch, into: &result) else { return false }
        result.idleRSSKiB = ProcessStats.residentKiB(of: pid)
        result.idleFDs = ProcessStats.openFileCount(of: pid)
        return true
    }

    /// The flooder and, at the same moment, the ping-pong client; until the flood has ended
    /// (everything sent, a stall, the flood timeout) and the ping-pong time is over, sampling the
    /// node's RSS and descriptors every `sampleEvery`.
    private func flood(_ flooder: any PeerFlooder, into result: inout P2PSlowPeerResult) -> Bool {
        let now = monotonicNanoseconds()
        let pinger = PeerPinger(plan: plan, epoll: loop.epoll, stopAt: now + ChaosDriver.nanoseconds(plan.pingPongSeconds))
        let watch = makeWatch()
        flooder.connect(port: node.port, now: now)
        pinger.start(port: node.port, now: now)
        // Both clients end on their own timers; this deadline only bounds the stage should they not.
        let bound = max(plan.floodTimeout, plan.pingPongSeconds + plan.replyTimeout) + plan.connectTimeout + 1
        loop.run([flooder, pinger], watch: watch, deadline: stageDeadline(bound)) {
            flooder.outcome != nil && pinger.isFinished
        }
        result.record(flooder)
        result.record(pinger)
        result.peakRSSKiB = watch.peakKiB
        result.peakFDs = watch.peakFDs
        result.rssSamples = watch.samples
        return checkAlive(watch, into: &result) && flooder.outcome != .connectFailed
    }

    /// The flooder stays connected, its flood over, for the settle time (still sampled for the
    /// peak); then the reading while it holds.
    private func hold(_ flooder: any PeerFlooder, into result: inout P2PSlowPeerResult) -> Bool {
        let watch = makeWatch()
        loop.run([flooder], watch: watch, deadline: stageDeadline(plan.settleSeconds))
        guard checkAlive(watch, into: &result) else { return false }
        result.holdRSSKiB = ProcessStats.residentKiB(of: pid)
        result.holdFDs = ProcessStats.openFileCount(of: pid)
        result.peakRSSKiB = [result.peakRSSKiB, watch.peakKiB, result.holdRSSKiB].compactMap { $0 }.max()
        result.peakFDs = [result.peakFDs, watch.peakFDs, result.holdFDs].compactMap { $0 }.max()
        result.rssSamples += watch.samples + 1
        // What the node closed while the flooder held counts too (short router).
        result.flood = flooder.figures
        return true
    }

    /// The reading `leaveSeconds` after the flooder's reset.
    private func leave(into result: inout P2PSlowPeerResult) {
        let watch = makeWatch()
        loop.run([], watch: watch, deadline: stageDeadline(plan.leaveSeconds))
        guard checkAlive(watch, into: &result) else { return }
        result.afterLeaveRSSKiB = ProcessStats.residentKiB(of: pid)
        result.afterLeaveFDs = ProcessStats.openFileCount(of: pid)
    }

    // MARK: Helpers

    /// A watch of the node's RSS and descriptors (the short-router flooder's connections show in
    /// the node's descriptors while it holds them).
    private func makeWatch() -> SlowReaderWatch {
        SlowReaderWatch(pid: pid, interval: plan.sampleEvery, countsFiles: true)
    }

    /// Whether the node is still up (as `watch` last saw it and as /proc says now); records its
    /// death otherwise.
    private func checkAlive(_ watch: SlowReaderWatch, into result: inout P2PSlowPeerResult) -> Bool {
        guard watch.serverAlive && ProcessStats.isAlive(pid) else {
            result.nodeDied = true
            return false
        }
        return true
    }

    private func stageDeadline(_ seconds: Double) -> UInt64 { SlowReaderLoop.deadline(in: seconds) }
}
