/// What one wire and router's p2p-slow-peer run measured: the node's memory and descriptors idle,
/// at their peak during the flood, while the flooder held and after it left; how far the flood
/// got; how the ping-pong client fared meanwhile; and the problems that fail the run.
struct P2PSlowPeerResult: Codable, Sendable {
    /// The ping-pong client's side, on its own connection(s) during the flood.
    struct PingPong: Codable, Sendable {
        var roundTrips = 0
        /// 0 or 1: the client stops at its first problem.
        var failures = 0
        var failure: String?
        /// Seconds from its first request to its last answer.
        var seconds = 0.0
        /// Round-trip times in milliseconds (histogram values, about 1.6% precision; the maximum
        /// exact).
        var p50Milliseconds = 0.0
        var p99Milliseconds = 0.0
        var maxMilliseconds = 0.0
    }

    var wire: PeerWire
    var router: PeerRouter
    var nodeCommand: String
    var nodePID: Int32
    var maxGrowthMiB: Double
    var maxP99Milliseconds: Double?
    var warmUpRoundTrips = 0
    /// `VmRSS` of the node in KiB, and its open file descriptors, at each reading.
    var idleRSSKiB: Int?
    var idleFDs: Int?
    /// The largest readings from the flooder's connect to the reading while it holds.
    var peakRSSKiB: Int?
    var peakFDs: Int?
    var rssSamples = 0
    var holdRSSKiB: Int?
    var holdFDs: Int?
    var afterLeaveRSSKiB: Int?
    var afterLeaveFDs: Int?
    var afterLeaveSeconds: Double
    /// Whether the run got as far as the flood (the warm-up and the idle reading went well).
    var floodStarted = false
    var flood = PeerFloodFigures()
    var pingPong = PingPong()
    /// Peak over idle, and after-leave over idle (set by `judge()`).
    var peakGrowthKiB: Int?
    var afterLeaveGrowthKiB: Int?
    var nodeDied = false
    var nodeExit: String?
    var problems: [String] = []
    /// No problem (set by `judge()`).
    var passed = false

    init(plan: P2PSlowPeerPlan, nodeCommand: String, nodePID: Int32) {
        wire = plan.wire
        router = plan.router
        self.nodeCommand = nodeCommand
        self.nodePID = nodePID
        maxGrowthMiB = plan.maxGrowthMiB
        maxP99Milliseconds = plan.maxP99Milliseconds
        afterLeaveSeconds = plan.leaveSeconds
    }

    /// "native wire, persistent router".
    var combination: String { "\(wire.rawValue) wire, \(router.rawValue) router" }

    mutating func record(_ flooder: any PeerFlooder) {
        floodStarted = true
        flood = flooder.figures
    }

    mutating func record(_ pinger: PeerPinger) {
        pingPong.roundTrips = pinger.roundTrips
        pingPong.failure = pinger.failure ?? (pinger.isFinished ? nil : "still running when the flood stage ended")
        pingPong.failures = pingPong.failure == nil ? 0 : 1
        pingPong.seconds = pinger.seconds
        pingPong.p50Milliseconds = pinger.latencies.percentile(0.5) / 1e6
        pingPong.p99Milliseconds = pinger.latencies.percentile(0.99) / 1e6
        pingPong.maxMilliseconds = Double(pinger.slowestNanoseconds) / 1e6
    }

    /// Computes the growths and lists what fails the run: a dead node, a ping-pong failure (or no
    /// round trip at all), a flooder that never connected, an unreadable RSS, a peak more than
    /// `maxGrowthMiB` over idle, and a p99 over `maxP99Milliseconds` when that is set. Problems a
    /// stage already recorded (the warm-up) stay.
    mutating func judge() {
        defer { passed = problems.isEmpty }
        peakGrowthKiB = difference(peakRSSKiB, idleRSSKiB)
        afterLeaveGrowthKiB = difference(afterLeaveRSSKiB, idleRSSKiB)
        if nodeDied { problems.append("the node died (\(nodeExit ?? "?"))") }
        // An earlier stage that failed has said so, and left nothing below to judge.
        guard floodStarted else { return }
        if flood.outcome == .connectFailed { problems.append("the flooder could not connect: \(flood.detail)") }
        if let failure = pingPong.failure { problems.append("ping-pong during the flood: \(failure)") }
        if pingPong.roundTrips == 0 && pingPong.failure == nil { problems.append("ping-pong during the flood: no round trip done") }
        if let maxP99Milliseconds, pingPong.roundTrips > 0, pingPong.p99Milliseconds > maxP99Milliseconds {
            problems.append("ping-pong p99 \(NumberText.format(pingPong.p99Milliseconds, decimals: 2)) ms, "
                + "more than the \(NumberText.format(maxP99Milliseconds, decimals: 2)) ms allowed")
        }
        guard let peakGrowthKiB else {
            if !nodeDied { problems.append("could not read the node's VmRSS") }
            return
        }
        if Double(peakGrowthKiB) / 1024 > maxGrowthMiB {
            problems.append("peak RSS \(SlowReaderReport.mebibytes(peakGrowthKiB, signed: true)) over idle, "
                + "more than the \(NumberText.format(maxGrowthMiB, decimals: 1)) MiB allowed")
        }
    }

    private func difference(_ value: Int?, _ base: Int?) -> Int? {
        guard let value, let base else { return nil }
        return value - base
    }
}
