import ArgumentParser
import Foundation

/// One client that pipelines a lot and never reads, against the echo server: how much the server's
/// memory grows, and whether another client is still served meanwhile.
struct SlowReaderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slow-reader",
        abstract: "A client that floods the echo server and never reads: the server's RSS growth, and a ping-pong client alongside.",
        discussion: """
            Per protocol, on a fresh server: a warm-up client does a few round trips and the \
            server's idle RSS is read; then a flooder sends --megabytes MiB as fast as its socket \
            takes them (framed: frames of 64 KiB payload) and never reads, until everything is sent \
            or nothing was accepted for --stall-seconds; at the same moment a second client \
            ping-pongs 64-byte messages for --pingpong-seconds, verifying every reply byte. The \
            server's RSS is sampled every 50 ms; read again while the flooder holds, and 2 s after \
            it left with a reset. The server is started on a free 127.0.0.1 port: by default the \
            repository's .build/release/pheromones-echo, otherwise --server-cmd, with {port} and \
            {proto} replaced. Exits with status 1 if the ping-pong client failed, the server died \
            or its peak RSS grew more than --max-growth-mib over idle.
            """)

    @Option(help: "echo or framed (default: both, one fresh server each).") var proto: WireProtocol?
    @Option(name: .customLong("server-cmd"), help: "The server's command line, with {port} and {proto} (default: the repository's release pheromones-echo).")
    var serverCommand: String?
    @Option(help: "MiB the flooder sends (framed: rounded up to whole 64 KiB frames).") var megabytes: Int = 200
    @Option(help: "Seconds without a byte accepted after which the flooder stops sending.") var stallSeconds: Double = 3
    @Option(name: .customLong("pingpong-seconds"), help: "Seconds the ping-pong client starts round trips, from the flooder's connect.")
    var pingPongSeconds: Double = 2
    @Option(help: "Seconds a ping-pong reply may take before it counts as a failure.") var replyTimeout: Double = 2
    @Option(help: "Seconds after which the flood stops even if the server still reads it.") var floodTimeout: Double = 60
    @Option(name: .customLong("max-growth-mib"), help: "The most the peak RSS may grow over idle, in MiB.")
    var maxGrowthMiB: Double = 32
    @Option(help: "Also write the settings and results as JSON to this file.") var json: String?

    static let maximumMegabytes = 64 << 10
    static let maximumSeconds = 3600.0

    func validate() throws {
        guard (1...Self.maximumMegabytes).contains(megabytes) else {
            throw ValidationError("--megabytes must be 1...\(Self.maximumMegabytes), not \(megabytes)")
        }
        for (name, value) in [("--stall-seconds", stallSeconds), ("--pingpong-seconds", pingPongSeconds),
                              ("--reply-timeout", replyTimeout), ("--flood-timeout", floodTimeout)] {
            guard value.isFinite, value > 0, value <= Self.maximumSeconds else {
                throw ValidationError("\(name) must be in (0, \(Int(Self.maximumSeconds))] seconds, not \(value)")
            }
        }
        guard maxGrowthMiB.isFinite, maxGrowthMiB >= 0 else {
            throw ValidationError("--max-growth-mib must be a finite number of MiB, 0 or more, not \(maxGrowthMiB)")
        }
        if let serverCommand, !serverCommand.contains(ChaosServer.portPlaceholder) {
            throw ValidationError("--server-cmd must contain \(ChaosServer.portPlaceholder)")
        }
        if let json, json.isEmpty { throw ValidationError("--json needs a path") }
    }

    // No SIGPIPE handling: every send passes MSG_NOSIGNAL, and a server started for the second
    // protocol must not inherit an ignored SIGPIPE from here.
    func run() throws {
        let template = try serverCommand ?? ChaosServer.defaultCommand()
        var report = SlowReaderReport(
            machine: .current(), settings: .init(plan(for: .echo)), loadAverageBefore: RunDescription.loadAverage())
        print(report.header())
        fflush(nil)  // all streams: the tables must show as they come when stdout is a pipe
        for proto in proto.map({ [$0] }) ?? WireProtocol.allCases {
            let result = try measure(proto, template: template)
            print(SlowReaderReport.table(result))
            fflush(nil)
            report.results.append(result)
        }
        report.loadAverageAfter = RunDescription.loadAverage()
        if let json { try report.writeJSON(to: json) }
        print("\nslow-reader: \(report.passed ? "PASS" : "FAIL")")
        if !report.passed { throw ExitCode.failure }
    }

    /// One protocol on a fresh server, stopped with SIGTERM afterwards; judged once the server's
    /// end is known (a server that exited on its own died during the run).
    private func measure(_ proto: WireProtocol, template: String) throws -> SlowReaderResult {
        let server = try ChaosServer.start(template, proto: proto)
        defer { server.process.stop() }
        var result = try SlowReaderRun(plan: plan(for: proto), server: server).measure()
        if let exit = server.process.exitDescription {
            result.serverExit = "exited (\(exit))"
            result.serverDied = true
        } else {
            server.process.stop()
            result.serverExit = "stopped with SIGTERM (\(server.process.exitDescription ?? "?"))"
        }
        result.judge()
        return result
    }

    private func plan(for proto: WireProtocol) -> SlowReaderPlan {
        SlowReaderPlan(
            proto: proto, megabytes: megabytes, stallSeconds: stallSeconds, pingPongSeconds: pingPongSeconds,
            replyTimeout: replyTimeout, floodTimeout: floodTimeout, maxGrowthMiB: maxGrowthMiB)
    }
}
