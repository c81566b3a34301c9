import Foundation

/// One goal check of a chaos run.
struct ChaosCheck: Codable, Sendable {
    var name: String
    var passed: Bool
    var detail: String
    /// Whether a failure makes the command exit with status 1 (some only with `--strict`).
    var gating: Bool
}

/// Everything a chaos run measured: the settings, every sample, the counters, the server's file
/// descriptors and memory at the moments that matter, and the goal checks.
struct ChaosReport: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var proto: WireProtocol
        var clients: Int
        var durationSeconds: Double
        var sampleEverySeconds: Double
        var seed: UInt64
        var serverCommand: String
        var strict: Bool
    }

    var scenario = "chaos"
    var machine: MachineDescription
    var settings: Settings
    var loadAverageBefore: Double?
    var loadAverageAfter: Double?
    /// Measured after the server started (and answered a probe connection), before the clients.
    var baselineFDs: Int?
    var baselineRSSKiB: Int?
    var samples: [ChaosSample]
    var counters: ChaosCounters
    /// The RSS reference: when it was taken (60 s, or a fifth of a run shorter than 2 minutes).
    var referenceSeconds: Double?
    var referenceRSSKiB: Int?
    /// The last reading under load.
    var endSeconds: Double?
    var endFDs: Int?
    var endRSSKiB: Int?
    var peakFDs: Int?
    var peakRSSKiB: Int?
    /// The lowest and highest RSS sampled from the reference on: how much it swings under load
    /// (the check compares two points of it).
    var minimumRSSFromReferenceKiB: Int?
    var maximumRSSFromReferenceKiB: Int?
    /// The server's CPU use over the load, in percent of one core.
    var averageCPUPercent: Double?
    /// After every client closed: the server's file descriptors, how long until they were back at
    /// the baseline (or the wait gave up), and its resident memory.
    var fdsAfterStop: Int?
    var secondsToFDBaseline: Double?
    var rssAfterStopKiB: Int?
    /// Whether the server process died during the run, and how it ended.
    var serverExitedDuringRun: Bool
    var serverExit: String?
    var checks: [ChaosCheck] = []

    var passed: Bool { !checks.contains { $0.gating && !$0.passed } }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Checks

    /// The goal checks: fds back at the baseline and the server alive and right, always; RSS,
    /// unexpected errors and connect failures only fail the run with `--strict`.
    mutating func judge() {
        checks = [fdCheck, rssCheck]
        checks.append(ChaosCheck(
            name: "no verification failure", passed: counters.verificationFailures == 0,
            detail: counters.firstVerificationFailure.map { "\(counters.verificationFailures), first: \($0)" } ?? "0", gating: true))
        checks.append(ChaosCheck(
            name: "the server stayed up", passed: !serverExitedDuringRun,
            detail: serverExitedDuringRun ? "it exited during the run (\(serverExit ?? "?"))" : "yes", gating: true))
        checks.append(ChaosCheck(
            name: "no unexpected error", passed: counters.unexpectedErrors == 0,
            detail: counters.firstUnexpectedError.map { "\(counters.unexpectedErrors), first: \($0)" } ?? "0", gating: settings.strict))
        checks.append(ChaosCheck(
            name: "no connect failure", passed: counters.connectFailures == 0,
            detail: counters.firstConnectFailure.map { "\(counters.connectFailures), first: \($0)" } ?? "0", gating: settings.strict))
    }

    private var fdCheck: ChaosCheck {
        let name = "fd count back at its baseline after the clients stop"
        guard let baselineFDs, let fdsAfterStop else {
            return ChaosCheck(name: name, passed: false, detail: "could not read /proc/PID/fd", gating: true)
        }
        let time = secondsToFDBaseline.map { " after \(NumberText.format($0, decimals: 1)) s" } ?? ""
        return ChaosCheck(
            name: name, passed: fdsAfterStop <= baselineFDs, detail: "baseline \(baselineFDs), \(fdsAfterStop)\(time)", gating: true)
    }

    private var rssCheck: ChaosCheck {
        let shortRun = settings.durationSeconds < 120
        let when = shortRun
            ? "at a fifth of the run (\(NumberText.format(referenceSeconds ?? 0, decimals: 1)) s), the run being shorter than 2 minutes"
            : "after the first minute"
        let name = "RSS within ±10% of its value \(when)"
        guard let referenceRSSKiB, let endRSSKiB, referenceRSSKiB > 0 else {
            return ChaosCheck(name: name, passed: false, detail: "could not read VmRSS", gating: settings.strict)
        }
        let change = Double(endRSSKiB - referenceRSSKiB) / Double(referenceRSSKiB) * 100
        let detail = "\(Self.mebibytes(referenceRSSKiB)) -> \(Self.mebibytes(endRSSKiB)) at the end of the load "
            + "(\(change >= 0 ? "+" : "")\(NumberText.format(change, decimals: 1))%)"
        return ChaosCheck(name: name, passed: abs(change) <= 10, detail: detail, gating: settings.strict)
    }

    // MARK: Text

    /// The summary printed after the samples.
    func summary() -> String {
        var lines = ["", "Summary: \(settings.clients) clients, \(settings.proto.rawValue), "
            + "\(NumberText.format(endSeconds ?? settings.durationSeconds, decimals: 1)) s of load, seed \(settings.seed)"]
        let kinds = ChaosKind.allCases.map { "\($0.rawValue) \(Self.count(counters.sessionsByKind[$0.rawValue] ?? 0))" }
        lines.append("  sessions: \(Self.count(counters.sessions)) (\(kinds.joined(separator: ", ")))")
        lines.append("  bytes: \(Self.megabytes(counters.bytesSent)) sent, \(Self.megabytes(counters.bytesReceived)) received and verified")
        lines.append("  round trips ok: \(Self.count(counters.roundTrips)), client resets: \(Self.count(counters.resets)), "
            + "half-closes: \(Self.count(counters.completeHalfCloses)) complete, \(Self.count(counters.shortHalfCloses)) short"
            + (counters.firstShortHalfClose.map { " (first: \($0))" } ?? ""))
        lines.append("  server fds: baseline \(Self.text(baselineFDs)), \(Self.text(endFDs)) at the end of the load "
            + "(peak \(Self.text(peakFDs))), \(Self.text(fdsAfterStop)) after the clients stopped")
        lines.append("  server RSS: baseline \(Self.mebibytes(baselineRSSKiB)), \(Self.mebibytes(referenceRSSKiB)) at "
            + "\(NumberText.format(referenceSeconds ?? 0, decimals: 1)) s, \(Self.mebibytes(endRSSKiB)) at the end of the load, "
            + "peak \(Self.mebibytes(peakRSSKiB)), \(Self.mebibytes(rssAfterStopKiB)) after the clients stopped; "
            + "\(Self.mebibytes(minimumRSSFromReferenceKiB))-\(Self.mebibytes(maximumRSSFromReferenceKiB)) from the reference on")
        lines.append("  server CPU: \(averageCPUPercent.map { NumberText.format($0, decimals: 0) } ?? "-")% of a core on average; "
            + "server \(serverExit ?? "running")")
        lines.append("Checks:")
        for check in checks {
            let verdict = check.passed ? "PASS" : (check.gating ? "FAIL" : "fail (not gating without --strict)")
            lines.append("  \(verdict)  \(check.name): \(check.detail)")
        }
        return lines.joined(separator: "\n")
    }

    static func mebibytes(_ kib: Int?) -> String {
        kib.map { NumberText.format(Double($0) / 1024, decimals: 1) + " MiB" } ?? "-"
    }

    private static func megabytes(_ bytes: Int) -> String { NumberText.format(Double(bytes) / 1e6, decimals: 1) + " MB" }

    private static func count(_ value: Int) -> String { NumberText.format(Double(value), decimals: 0) }
    private static func text(_ value: Int?) -> String { value.map { "\($0)" } ?? "-" }
}
