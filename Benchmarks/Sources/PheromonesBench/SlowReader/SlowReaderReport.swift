import Foundation

/// A slow-reader run over one or both protocols: the settings, the machine, and one result per
/// protocol, as a readable table per protocol and as JSON.
struct SlowReaderReport: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var megabytes: Int
        var stallSeconds: Double
        var pingPongSeconds: Double
        var replyTimeout: Double
        var floodTimeout: Double
        var maxGrowthMiB: Double
        var messageSize: Int
        var floodPayload: Int
        var sampleEverySeconds: Double
        var settleSeconds: Double
        var leaveSeconds: Double

        init(_ plan: SlowReaderPlan) {
            megabytes = plan.megabytes
            stallSeconds = plan.stallSeconds
            pingPongSeconds = plan.pingPongSeconds
            replyTimeout = plan.replyTimeout
            floodTimeout = plan.floodTimeout
            maxGrowthMiB = plan.maxGrowthMiB
            messageSize = plan.messageSize
            floodPayload = plan.floodPayload
            sampleEverySeconds = plan.sampleEvery
            settleSeconds = plan.settleSeconds
            leaveSeconds = plan.leaveSeconds
        }
    }

    var scenario = "slow-reader"
    var machine: MachineDescription
    var settings: Settings
    var loadAverageBefore: Double?
    var loadAverageAfter: Double?
    var results: [SlowReaderResult] = []

    var passed: Bool { results.allSatisfy { $0.problems.isEmpty } }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Text

    /// The lines printed before the first protocol runs.
    func header() -> String {
        let machine = machine
        return """
            Machine: \(machine.cpu), \(machine.cores) cores, \(machine.memoryGiB) GiB, \(machine.kernel); \(machine.date)
            slow-reader: a flooder pipelines \(settings.megabytes) MiB and never reads (it stops after \
            \(Self.seconds(settings.stallSeconds)) without a byte accepted); meanwhile a second client ping-pongs \
            \(settings.messageSize)-byte messages for \(Self.seconds(settings.pingPongSeconds)); load average \
            \(loadAverageBefore.map { NumberText.format($0, decimals: 2) } ?? "-")
            """
    }

    /// One protocol's table, and its problems if any.
    static func table(_ result: SlowReaderResult) -> String {
        var lines = [
            "", "#### slow-reader, \(result.proto.rawValue)", "",
            "server: \(result.serverCommand) (pid \(result.serverPID)), \(result.serverExit ?? "running")", "",
            "| figure | value |", "|---|---|",
        ]
        lines += rows(result).map { "| \($0.0) | \($0.1) |" }
        lines += result.problems.map { "- problem: \($0)" }
        return lines.joined(separator: "\n")
    }

    private static func rows(_ result: SlowReaderResult) -> [(String, String)] {
        let flood = result.flood, pingPong = result.pingPong
        let failures = pingPong.failure.map { "**\(pingPong.failures) failure**: \($0)" } ?? "0 failures"
        return [
            ("idle RSS (after \(result.warmUpRoundTrips) warm-up round trips)", "\(mebibytes(result.idleRSSKiB)), \(fds(result.idleFDs))"),
            ("peak RSS, flooder connected (\(result.rssSamples) samples)", mebibytes(result.peakRSSKiB)),
            ("peak growth over idle", "**\(mebibytes(result.peakGrowthKiB, signed: true))** (limit \(NumberText.format(result.maxGrowthMiB, decimals: 1)) MiB)"),
            ("MiB the flooder got in (accepted by the kernel)", "\(mebibytes(bytes: flood.bytesAccepted)) of \(mebibytes(bytes: flood.bytesOffered))"),
            ("how the flood ended", floodEnd(flood)),
            ("RSS while the flooder holds", "\(mebibytes(result.holdRSSKiB)), \(fds(result.holdFDs))"),
            ("ping-pong round trips during the flood", "\(NumberText.format(Double(pingPong.roundTrips), decimals: 0)) in "
                + "\(seconds(pingPong.seconds)), \(failures); slowest \(NumberText.format(pingPong.slowestMilliseconds, decimals: 1)) ms"),
            ("RSS \(seconds(result.afterLeaveSeconds)) after the flooder's \(flood.close)", "\(mebibytes(result.afterLeaveRSSKiB)), "
                + "\(fds(result.afterLeaveFDs))"),
            ("after leaving, over idle", "**\(mebibytes(result.afterLeaveGrowthKiB, signed: true))**"),
            ("verdict", result.passed ? "PASS" : "FAIL"),
        ]
    }

    private static func floodEnd(_ flood: SlowReaderResult.Flood) -> String {
        guard let outcome = flood.outcome else { return "-" }
        var text = "\(outcome.rawValue) (\(flood.detail))"
        if let last = flood.secondsToLastByte { text += "; last byte accepted at \(seconds(last))" }
        return text
    }

    // MARK: Units

    /// KiB as MiB with one decimal ("-" if unknown), with a sign when `signed`.
    static func mebibytes(_ kib: Int?, signed: Bool = false) -> String {
        guard let kib else { return "-" }
        let sign = signed && kib >= 0 ? "+" : ""
        return sign + NumberText.format(Double(kib) / 1024, decimals: 1) + " MiB"
    }

    private static func mebibytes(bytes: Int) -> String {
        NumberText.format(Double(bytes) / 1_048_576, decimals: 1) + " MiB"
    }

    private static func fds(_ count: Int?) -> String { "\(count.map { "\($0)" } ?? "-") fds" }

    private static func seconds(_ value: Double) -> String {
        NumberText.format(value, decimals: value < 1 ? 3 : value < 10 ? 2 : 1) + " s"
    }
}
