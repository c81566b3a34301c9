/// One protocol's slow-reader run against a started server: a warm-up and the idle reading, the
/// flood with a ping-pong client alongside, the reading while the flooder holds, its reset, and
/// the reading after it left.
struct SlowReaderRun {
    let plan: SlowReaderPlan
    let server: ChaosServer
    private let loop: SlowReaderLoop
    private let reference: ReferenceBytes

    init(plan: SlowReaderPlan, server: ChaosServer) throws(LoadError) {
        self.plan = plan
        self.server = server
        loop = try SlowReaderLoop()
        reference = ReferenceBytes(seed: 1)
    }

    private var pid: Int32 { server.process.pid }

    /// Runs every stage; a stage that fails (the warm-up, the server dying) ends the run with the
    /// figures taken so far. The result is not judged yet: the server's exit is still to come.
    func measure() -> SlowReaderResult {
        var result = SlowReaderResult(plan: plan, serverCommand: server.command, serverPID: pid)
        runStages(into: &result)
        return result
    }

    private func runStages(into result: inout SlowReaderResult) {
        guard warmUp(into: &result), settle(into: &result) else { return }
        let flooder = PipelineFlooder.slowReader(plan: plan, epoll: loop.epoll, reference: reference)
        guard flood(flooder, into: &result), hold(flooder, into: &result) else { return }
        flooder.leave()
        leave(into: &result)
    }

    // MARK: Stages

    /// A few round trips on a fresh connection, so that the idle reading is of a server that has
    /// served one (its buffers and pools exist), then a close.
    private func warmUp(into result: inout SlowReaderResult) -> Bool {
        let pinger = SlowReaderPinger(plan: plan, epoll: loop.epoll, reference: reference, stopAt: .max, limit: plan.warmUpRoundTrips)
        let watch = SlowReaderWatch(pid: pid, interval: plan.sampleEvery)
        pinger.connect(port: server.port, now: monotonicNanoseconds())
        loop.run([pinger], watch: watch, deadline: stageDeadline(plan.connectTimeout + plan.replyTimeout * Double(plan.warmUpRoundTrips))) {
            pinger.isFinished
        }
        result.warmUpRoundTrips = pinger.roundTrips
        if let failure = pinger.failure ?? (pinger.isFinished ? nil : "did not finish in time") {
            result.problems.append("warm-up: \(failure)")
            return false
        }
        return checkAlive(watch, into: &result)
    }

    /// The idle reading, after the server was left alone for the settle time.
    private func settle(into result: inout SlowReaderResult) -> Bool {
        let watch = SlowReaderWatch(pid: pid, interval: plan.sampleEvery)
        loop.run([], watch: watch, deadline: stageDeadline(plan.settleSeconds))
        guard checkAlive(watch, into: &result) else { return false }
        result.idleRSSKiB = ProcessStats.residentKiB(of: pid)
        result.idleFDs = ProcessStats.openFileCount(of: pid)
        return true
    }

    /// The flooder and, on a second connection at the same moment, the ping-pong client; until
    /// the flood has ended (everything sent, a stall, the flood timeout) and the ping-pong time is
    /// over, sampling the server's RSS every `sampleEvery`.
    private func flood(_ flooder: PipelineFlooder, into result: inout SlowReaderResult) -> Bool {
        let now = monotonicNanoseconds()
        let pinger = SlowReaderPinger(
            plan: plan, epoll: loop.epoll, reference: reference, stopAt: now + ChaosDriver.nanoseconds(plan.pingPongSeconds))
        let watch = SlowReaderWatch(pid: pid, interval: plan.sampleEvery)
        flooder.connect(port: server.port, now: now)
        pinger.connect(port: server.port, now: now)
        // Both clients end on their own timers; this deadline only bounds the stage should they not.
        let bound = max(plan.floodTimeout, plan.pingPongSeconds + plan.replyTimeout) + plan.connectTimeout + 1
        loop.run([flooder, pinger], watch: watch, deadline: stageDeadline(bound)) {
            flooder.outcome != nil && pinger.isFinished
        }
        result.record(flooder)
        result.record(pinger)
        result.peakRSSKiB = watch.peakKiB
        result.rssSamples = watch.samples
        return checkAlive(watch, into: &result) && flooder.outcome != .connectFailed
    }

    /// The flooder stays connected, its flood over, for the settle time (still sampled for the
    /// peak); then the reading while it holds.
    private func hold(_ flooder: PipelineFlooder, into result: inout SlowReaderResult) -> Bool {
        let watch = SlowReaderWatch(pid: pid, interval: plan.sampleEvery)
        loop.run([flooder], watch: watch, deadline: stageDeadline(plan.settleSeconds))
        guard checkAlive(watch, into: &result) else { return false }
        result.holdRSSKiB = ProcessStats.residentKiB(of: pid)
        result.holdFDs = ProcessStats.openFileCount(of: pid)
        result.peakRSSKiB = [result.peakRSSKiB, watch.peakKiB, result.holdRSSKiB].compactMap { $0 }.max()
        result.rssSamples += watch.samples + 1
        return true
    }

    /// The reading `leaveSeconds` after the flooder's reset.
    private func leave(into result: inout SlowReaderResult) {
        let watch = SlowReaderWatch(pid: pid, interval: plan.sampleEvery)
        loop.run([], watch: watch, deadline: stageDeadline(plan.leaveSeconds))
        guard checkAlive(watch, into: &result) else { return }
        result.afterLeaveRSSKiB = ProcessStats.residentKiB(of: pid)
        result.afterLeaveFDs = ProcessStats.openFileCount(of: pid)
    }

    // MARK: Helpers

    /// Whether the server is still up (as `watch` last saw it and as /proc says now); records its
    /// death otherwise.
    private func checkAlive(_ watch: SlowReaderWatch, into result: inout SlowReaderResult) -> Bool {
        guard watch.serverAlive && ProcessStats.isAlive(pid) else {
            result.serverDied = true
            return false
        }
        return true
    }

    private func stageDeadline(_ seconds: Double) -> UInt64 { SlowReaderLoop.deadline(in: seconds) }
}
