import ArgumentParser
import CEpoll
import Foundation

/// Many misbehaving clients against one echo server for a given time, printing the server's file
/// descriptors, memory and CPU, and the clients' counters, as it goes.
struct ChaosCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Clients that ping-pong, reset, read slowly, half-close and idle, against the echo server, for a given time.",
        discussion: """
            Each client runs one connection at a time and, each time it reconnects, draws what it \
            does next from a generator seeded by --seed and its number: ping-pong with every reply \
            byte verified, a reset at a random moment (before the server accepts, before the first \
            reply, in the middle of a pipelined stream), a slow reader (pipelines up to 16 MiB, reads \
            rarely or never, leaves), a half-closer (sends up to 8 MiB, shuts its write side, expects every byte \
            back before EOF) or an idle connection. Loopback only; the load stops by itself. The \
            server is started on a free 127.0.0.1 port: by default the repository's \
            .build/release/pheromones-echo, otherwise --server-cmd, with {port} and {proto} \
            replaced. Exits with status 1 on a verification failure, a server that died or an fd \
            count not back at its baseline after the clients stopped (--strict: also on unexpected \
            errors, connect failures and the RSS check).
            """)

    @Option(help: "Seconds of load.") var duration: Double = 60
    @Option(help: "Clients, each with one connection at a time.") var clients: Int = 100
    @Option(help: "echo or framed.") var proto: WireProtocol = .echo
    @Option(name: .customLong("server-cmd"), help: "The server's command line, with {port} and {proto} (default: the repository's release pheromones-echo).")
    var serverCommand: String?
    @Option(help: "Seconds between two sample lines (default: a tenth of the run, between 1 and 10).")
    var sampleEvery: Double?
    @Option(help: "Seeds every client's choices: the same seed, the same sequence of sessions per client.")
    var seed: UInt64 = 1
    @Option(help: "Seconds a client waits for an expected reply byte before it counts a stall.")
    var stallTimeout: Double = 10
    @Option(help: "Seconds to wait, after the clients stopped, for the server's fd count to return to its baseline.")
    var settleTimeout: Double = 10
    @Option(help: "Also write the samples, counters and checks as JSON to this file.")
    var json: String?
    @Flag(help: "Also fail on unexpected errors, connect failures and the RSS check.")
    var strict = false

    static let maximumClients = 2000
    static let maximumDuration = 24 * 3600.0

    func validate() throws {
        guard (1...Self.maximumClients).contains(clients) else { throw ValidationError("--clients must be 1...\(Self.maximumClients)") }
        guard duration > 0, duration <= Self.maximumDuration else { throw ValidationError("--duration must be in (0, 86400] seconds") }
        guard (sampleEvery ?? 1) > 0, stallTimeout > 0, settleTimeout >= 0 else {
            throw ValidationError("--sample-every and --stall-timeout must be positive")
        }
    }

    func run() throws {
        let limit = cepoll_raise_open_files_limit()
        guard clients + 64 <= limit else { throw ValidationError("\(clients) clients exceed the open-files limit of \(limit)") }
        // The server starts before SIGPIPE is ignored here, so that it does not inherit that.
        let server = try ChaosServer.start(serverCommand ?? ChaosServer.defaultCommand(), proto: proto)
        defer { server.process.stop() }
        signal(SIGPIPE, SIG_IGN)
        var report = try measure(server)
        if let exit = server.process.exitDescription {
            report.serverExit = "exited (\(exit))"
        } else {
            server.process.stop()
            report.serverExit = "stopped with SIGTERM (\(server.process.exitDescription ?? "?"))"
        }
        report.judge()
        print(report.summary())
        if let json { try report.writeJSON(to: json) }
        if !report.passed { throw ExitCode.failure }
    }

    private func measure(_ server: ChaosServer) throws -> ChaosReport {
        let pid = server.process.pid
        let baselineFDs = server.steadyFileCount()
        let plan = ChaosPlan(
            proto: proto, clients: clients, duration: duration, sampleEvery: sampleEvery ?? min(10, max(1, duration / 10)),
            seed: seed, port: server.port, serverPID: pid, stallTimeout: stallTimeout)
        var report = ChaosReport(
            machine: .current(),
            settings: .init(
                proto: proto, clients: clients, durationSeconds: duration, sampleEverySeconds: plan.sampleEvery, seed: seed,
                serverCommand: server.command, strict: strict),
            loadAverageBefore: RunDescription.loadAverage(), baselineFDs: baselineFDs,
            baselineRSSKiB: ProcessStats.residentKiB(of: pid), samples: [], counters: ChaosCounters(), serverExitedDuringRun: false)
        printHeader(report, pid: pid)

        let driver = try ChaosDriver(plan: plan)
        let cpuBefore = ProcessStats.cpuSeconds(of: pid)
        let monitor = ChaosMonitor(plan: plan, start: monotonicNanoseconds())
        driver.run(monitor: monitor)
        let cpuAfter = ProcessStats.cpuSeconds(of: pid)
        record(monitor, driver, into: &report)
        if let cpuBefore, let cpuAfter, let seconds = report.endSeconds, seconds > 0 {
            report.averageCPUPercent = (cpuAfter - cpuBefore) * 100 / seconds
        }

        let settled = server.waitForFileCount(atMost: baselineFDs ?? 0, timeout: settleTimeout)
        report.fdsAfterStop = settled.count
        report.secondsToFDBaseline = settled.seconds
        report.rssAfterStopKiB = ProcessStats.residentKiB(of: pid)
        report.serverExitedDuringRun = monitor.serverExited || !ProcessStats.isAlive(pid)
        report.loadAverageAfter = RunDescription.loadAverage()
        return report
    }

    private func record(_ monitor: ChaosMonitor, _ driver: ChaosDriver, into report: inout ChaosReport) {
        report.samples = monitor.samples
        report.counters = driver.counters
        report.referenceSeconds = monitor.reference?.seconds
        report.referenceRSSKiB = monitor.reference?.rssKiB
        let end = monitor.samples.last
        report.endSeconds = end?.seconds
        report.endFDs = end?.fds
        report.endRSSKiB = end?.rssKiB
        report.peakFDs = monitor.samples.compactMap(\.fds).max()
        report.peakRSSKiB = monitor.samples.compactMap(\.rssKiB).max()
        let fromReference = monitor.samples.filter { $0.seconds >= (monitor.reference?.seconds ?? 0) }.compactMap(\.rssKiB)
        report.minimumRSSFromReferenceKiB = fromReference.min()
        report.maximumRSSFromReferenceKiB = fromReference.max()
    }

    private func printHeader(_ report: ChaosReport, pid: Int32) {
        let settings = report.settings
        print("chaos: \(settings.clients) clients, \(settings.proto.rawValue), \(NumberText.format(settings.durationSeconds, decimals: 0)) s, "
            + "seed \(settings.seed), a sample every \(NumberText.format(settings.sampleEverySeconds, decimals: 1)) s")
        print("server: \(settings.serverCommand) (pid \(pid))")
        print("baseline: \(report.baselineFDs.map { "\($0)" } ?? "-") fds, RSS \(ChaosReport.mebibytes(report.baselineRSSKiB))")
        print(ChaosMonitor.headerLine())
        fflush(nil)  // all streams: the lines must show as they come when stdout is a pipe
    }
}
