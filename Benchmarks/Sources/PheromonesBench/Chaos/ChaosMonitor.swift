import Foundation

/// One reading of the server and of the clients' counters during a chaos run.
struct ChaosSample: Codable, Sendable {
    /// Seconds since the clients started.
    var seconds: Double
    /// The server's open file descriptors, resident memory and CPU use over the interval before.
    var fds: Int?
    var rssKiB: Int?
    var cpuPercent: Double?
    /// Client connections open.
    var openConnections: Int
    var sessions: Int
    var roundTrips: Int
    var verificationFailures: Int
    var resets: Int
    var connectFailures: Int
    var unexpectedErrors: Int
    var shortHalfCloses: Int
    /// "reference" for the RSS reference reading, "end" for the last one under load.
    var note: String?
}

/// Samples the server and prints one line per sample while a chaos run goes on.
final class ChaosMonitor {
    private let pid: Int32
    private let start: UInt64
    private let interval: UInt64
    private let referenceAt: UInt64
    /// Regular samples stop half an interval before the end, where the end sample is taken.
    private let lastRegularSample: UInt64
    private var nextSample: UInt64
    private var nextAliveCheck: UInt64 = 0
    private var lastCPU: (time: UInt64, seconds: Double)?

    private(set) var samples: [ChaosSample] = []
    private(set) var reference: ChaosSample?
    /// Set once the server process is gone.
    private(set) var serverExited = false

    init(plan: ChaosPlan, start: UInt64) {
        pid = plan.serverPID
        self.start = start
        interval = ChaosDriver.nanoseconds(plan.sampleEvery)
        referenceAt = start + ChaosDriver.nanoseconds(plan.referenceSeconds)
        nextSample = start + interval
        lastRegularSample = start + ChaosDriver.nanoseconds(plan.duration) - interval / 2
        lastCPU = ProcessStats.cpuSeconds(of: pid).map { (start, $0) }
    }

    /// The column titles, printed once before the first sample.
    static let header = [
        "time s", "srv fds", "RSS MiB", "CPU %", "open", "sessions", "round trips", "verify fail", "resets",
        "conn fail", "unexpected", "short h-c",
    ]
    private static let widths = [7, 7, 8, 6, 5, 9, 12, 11, 8, 9, 10, 9]

    static func headerLine() -> String {
        zip(header, widths).map { String(repeating: " ", count: max(0, $1 - $0.count)) + $0 }.joined(separator: "  ")
    }

    /// Takes whichever readings are due at `now`.
    func tick(now: UInt64, openConnections: Int, counters: ChaosCounters) {
        if now >= nextAliveCheck {
            serverExited = !ProcessStats.isAlive(pid)
            nextAliveCheck = now + 250_000_000
        }
        let regular = now >= nextSample && nextSample <= lastRegularSample
        if regular { nextSample += interval }
        if reference == nil && now >= referenceAt {
            reference = sample(now: now, openConnections: openConnections, counters: counters, note: "reference")
        } else if regular {
            _ = sample(now: now, openConnections: openConnections, counters: counters, note: nil)
        }
    }

    /// The last reading under load (also the reference, if the run ended before it was taken).
    func sampleEnd(now: UInt64, openConnections: Int, counters: ChaosCounters) {
        let last = sample(now: now, openConnections: openConnections, counters: counters, note: "end")
        if reference == nil { reference = last }
    }

    private func sample(now: UInt64, openConnections: Int, counters: ChaosCounters, note: String?) -> ChaosSample {
        let cpu = ProcessStats.cpuSeconds(of: pid)
        var percent: Double?
        if let cpu, let lastCPU, now > lastCPU.time {
            percent = (cpu - lastCPU.seconds) * 100 / (Double(now - lastCPU.time) / 1e9)
        }
        if let cpu { lastCPU = (now, cpu) }
        let sample = ChaosSample(
            seconds: Double(now - start) / 1e9, fds: ProcessStats.openFileCount(of: pid), rssKiB: ProcessStats.residentKiB(of: pid),
            cpuPercent: percent, openConnections: openConnections, sessions: counters.sessions, roundTrips: counters.roundTrips,
            verificationFailures: counters.verificationFailures, resets: counters.resets, connectFailures: counters.connectFailures,
            unexpectedErrors: counters.unexpectedErrors, shortHalfCloses: counters.shortHalfCloses, note: note)
        samples.append(sample)
        print(Self.line(sample))
        fflush(nil)  // all streams: the lines must show as they come when stdout is a pipe
        return sample
    }

    static func line(_ sample: ChaosSample) -> String {
        let cells = [
            NumberText.format(sample.seconds, decimals: 1), sample.fds.map { "\($0)" } ?? "-",
            sample.rssKiB.map { NumberText.format(Double($0) / 1024, decimals: 1) } ?? "-",
            sample.cpuPercent.map { NumberText.format($0, decimals: 0) } ?? "-",
            "\(sample.openConnections)", NumberText.format(Double(sample.sessions), decimals: 0),
            NumberText.format(Double(sample.roundTrips), decimals: 0), "\(sample.verificationFailures)",
            NumberText.format(Double(sample.resets), decimals: 0), "\(sample.connectFailures)", "\(sample.unexpectedErrors)",
            NumberText.format(Double(sample.shortHalfCloses), decimals: 0),
        ]
        let text = zip(cells, widths).map { String(repeating: " ", count: max(0, $1 - $0.count)) + $0 }.joined(separator: "  ")
        return sample.note.map { "\(text)  (\($0))" } ?? text
    }
}
