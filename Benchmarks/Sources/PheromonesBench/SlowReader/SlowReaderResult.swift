/// What one protocol's slow-reader run measured: the server's memory idle, at its peak during the
/// flood, while the flooder held and after it left; how far the flood got; how the ping-pong client
/// fared meanwhile; and the problems that fail the run.
struct SlowReaderResult: Codable, Sendable {
    /// The flooder's side.
    struct Flood: Codable, Sendable {
        /// Bytes offered and accepted by the socket (the kernel's buffers on both sides included).
        var bytesOffered = 0
        var bytesAccepted = 0
        var outcome: FloodOutcome?
        var detail = ""
        /// Seconds from the connection to the last byte accepted, and to the end of the flood.
        var secondsToLastByte: Double?
        var seconds: Double?
        /// How the flooder leaves.
        var close = "reset (SO_LINGER 0, then close)"
    }

    /// The ping-pong client's side, on its own connection during the flood.
    struct PingPong: Codable, Sendable {
        var roundTrips = 0
        /// 0 or 1: the client stops at its first problem.
        var failures = 0
        var failure: String?
        /// Seconds from its first message to its last reply, and its slowest round trip.
        var seconds = 0.0
        var slowestMilliseconds = 0.0
    }

    var proto: WireProtocol
    var serverCommand: String
    var serverPID: Int32
    var maxGrowthMiB: Double
    var warmUpRoundTrips = 0
    /// `VmRSS` of the server in KiB, and its open file descriptors, at each reading.
    var idleRSSKiB: Int?
    var idleFDs: Int?
    /// The largest reading from the flooder's connect to the reading while it holds.
    var peakRSSKiB: Int?
    var rssSamples = 0
    var holdRSSKiB: Int?
    var holdFDs: Int?
    var afterLeaveRSSKiB: Int?
    var afterLeaveFDs: Int?
    var afterLeaveSeconds: Double
    /// Whether the run got as far as the flood (the warm-up and the idle reading went well).
    var floodStarted = false
    var flood = Flood()
    var pingPong = PingPong()
    /// Peak over idle, and after-leave over idle (set by `judge()`).
    var peakGrowthKiB: Int?
    var afterLeaveGrowthKiB: Int?
    var serverDied = false
    var serverExit: String?
    var problems: [String] = []
    /// No problem (set by `judge()`).
    var passed = false

    init(plan: SlowReaderPlan, serverCommand: String, serverPID: Int32) {
        proto = plan.proto
        self.serverCommand = serverCommand
        self.serverPID = serverPID
        maxGrowthMiB = plan.maxGrowthMiB
        afterLeaveSeconds = plan.leaveSeconds
        flood.bytesOffered = plan.floodBytes
    }

    mutating func record(_ flooder: PipelineFlooder) {
        floodStarted = true
        flood.bytesAccepted = flooder.accepted
        flood.outcome = flooder.outcome
        flood.detail = flooder.detail
        flood.secondsToLastByte = flooder.secondsToLastByte
        flood.seconds = flooder.seconds
    }

    mutating func record(_ pinger: SlowReaderPinger) {
        pingPong.roundTrips = pinger.roundTrips
        pingPong.failure = pinger.failure ?? (pinger.isFinished ? nil : "still running when the flood stage ended")
        pingPong.failures = pingPong.failure == nil ? 0 : 1
        pingPong.seconds = pinger.seconds
        pingPong.slowestMilliseconds = Double(pinger.slowestNanoseconds) / 1e6
    }

    /// Computes the growths and lists what fails the run: a dead server, a ping-pong failure (or
    /// no round trip at all), a flooder that never connected, an unreadable RSS, or a peak more
    /// than `maxGrowthMiB` over idle. Problems a stage already recorded (the warm-up) stay.
    mutating func judge() {
        defer { passed = problems.isEmpty }
        peakGrowthKiB = difference(peakRSSKiB, idleRSSKiB)
        afterLeaveGrowthKiB = difference(afterLeaveRSSKiB, idleRSSKiB)
        if serverDied { problems.append("the server died (\(serverExit ?? "?"))") }
        // An earlier stage that failed has said so, and left nothing below to judge.
        guard floodStarted else { return }
        if flood.outcome == .connectFailed { problems.append("the flooder could not connect: \(flood.detail)") }
        if let failure = pingPong.failure { problems.append("ping-pong during the flood: \(failure)") }
        if pingPong.roundTrips == 0 && pingPong.failure == nil { problems.append("ping-pong during the flood: no round trip done") }
        guard let peakGrowthKiB else {
            if !serverDied { problems.append("could not read the server's VmRSS") }
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
