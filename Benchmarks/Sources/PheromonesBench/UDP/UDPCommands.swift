import ArgumentParser
import CUDPLoad
import Foundation

/// What a datagram echo server prints once it is bound; the harness reads the port from it.
enum UDPReadyLine {
    static func print(_ implementation: Implementation, host: String, port: Int) {
        Swift.print("\(implementation.rawValue) udp echo server \(ReadyLine.marker)\(port) (\(host), 1 loop)")
        fflush(nil)  // all streams: stdout is a pipe when the harness reads it
    }
}

/// Runs one datagram echo server until SIGINT or SIGTERM.
struct ServeUDP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-udp",
        abstract: "Run only a datagram echo server (ours or SwiftNIO's), one loop, until SIGINT/SIGTERM.")

    @Option(help: "pheromones or nio.")
    var impl: Implementation

    @Option(help: "The UDP port (0: any free port).")
    var port: Int = 9000

    @Option(help: "The address to bind.")
    var host: String = "127.0.0.1"

    @Flag(help: "Ours only: turn segmentation offload (UDP_SEGMENT, on by default where the kernel has it) off, one send entry per datagram as NIO's default.")
    var noGso = false

    func run() async throws {
        switch impl {
        case .pheromones: try await PheromonesUDPServer.serve(host: host, port: port, segmentationOffload: !noGso)
        case .nio: try await NIOUDPServer.serve(host: host, port: port)
        }
    }
}

/// What one `udp-load` run measured (printed as one JSON line).
struct UDPLoadResult: Codable, Sendable {
    var seconds: Double
    var sent: UInt64
    var received: UInt64
    var lost: UInt64
    var bad: UInt64
    var datagramsPerSecond: Double
    /// Server CPU (user + system) per echoed datagram, in microseconds, from /proc/PID/stat.
    var serverMicrosecondsPerDatagram: Double?
}

/// The load generator of the `udp` scenario, in a process of its own: `senders` connected UDP
/// sockets each keeping `window` datagrams in flight (C, sendmmsg/recvmmsg), replies counted.
struct UDPLoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp-load", abstract: "Load a datagram echo server on 127.0.0.1 and print one JSON line.")

    @Option var port: Int
    @Option var senders = 4
    @Option var window = 32
    @Option var size = 64
    @Option var warmup = 1.0
    @Option var duration = 3.0
    @Option(help: "The server's process, whose CPU time is read from /proc.") var serverPID: Int32?

    func run() throws {
        guard let load = cudp_load_open(CInt(port), CInt(senders), CInt(window), CInt(size), 200) else {
            throw HarnessError("the UDP load generator could not open its sockets (errno \(errno))")
        }
        defer { cudp_load_close(load) }
        var warm = cudp_counts()
        guard cudp_load_run(load, warmup, &warm) == 0 else { throw HarnessError("the warm-up failed") }
        var counts = cudp_counts()
        let cpuBefore = serverPID.flatMap { ProcessStats.cpuSeconds(of: $0) }
        let start = Date()
        guard cudp_load_run(load, duration, &counts) == 0 else { throw HarnessError("the measured run failed") }
        let seconds = Date().timeIntervalSince(start)
        let cpuAfter = serverPID.flatMap { ProcessStats.cpuSeconds(of: $0) }
        var result = UDPLoadResult(
            seconds: seconds, sent: counts.sent, received: counts.received, lost: counts.lost, bad: counts.bad,
            datagramsPerSecond: Double(counts.received) / seconds)
        if let cpuBefore, let cpuAfter, counts.received > 0 {
            result.serverMicrosecondsPerDatagram = (cpuAfter - cpuBefore) * 1e6 / Double(counts.received)
        }
        let json = try JSONEncoder().encode(result)
        print(String(decoding: json, as: UTF8.self))
    }
}

/// The `udp` scenario: our datagram echo server against SwiftNIO's, rounds alternated, medians.
struct UDPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "udp",
        abstract: "Datagram echo: ours (DatagramChannel) against SwiftNIO's DatagramBootstrap, one loop each.",
        discussion: """
            Each round starts a fresh server process (this executable, `serve-udp`) and a fresh load \
            generator (`udp-load`: C, connected UDP sockets, sendmmsg/recvmmsg, a fixed window of \
            datagrams in flight per sender, replies counted, a window with no reply for 200 ms counted \
            lost and resent). Rounds alternate ours, NIO, ours, NIO. Reports the median datagrams/s \
            and server CPU µs per datagram, and the ratios ours/NIO.
            """)

    @Option(help: "Rounds per server, alternating.") var rounds = 5
    @Option(help: "Seconds measured per round.") var duration = 3.0
    @Option(help: "Seconds of load before measuring.") var warmup = 1.0
    @Option(help: "Sending sockets.") var senders = 4
    @Option(help: "Datagrams in flight per sender.") var window = 32
    @Option(help: "Payload bytes per datagram.") var size = 64
    @Flag(help: "1 round, 0.2 s warm-up, 0.5 s measured.") var quick = false
    @Flag(help: "Our server without segmentation offload (UDP_SEGMENT, on by default where the kernel has it), as NIO's default; NIO's is unchanged.") var noGso = false
    @Option(help: "Also write the results as JSON to this file.") var json: String?

    func run() throws {
        let rounds = quick ? 1 : rounds, duration = quick ? 0.5 : duration, warmup = quick ? 0.2 : warmup
        let loadBefore = RunDescription.loadAverage()
        var results: [Implementation: [UDPLoadResult]] = [:]
        var problems: [String] = []
        for round in 1...rounds {
            for implementation in Implementation.allCases {
                do {
                    let result = try measure(implementation, duration: duration, warmup: warmup)
                    results[implementation, default: []].append(result)
                    let cpu = result.serverMicrosecondsPerDatagram.map { String(format: "%.2f", $0) } ?? "?"
                    FileHandle.standardError.write(Data((
                        "udp \(senders)x\(window) \(size) B, round \(round)/\(rounds), \(implementation.rawValue): "
                            + String(format: "%.0f", result.datagramsPerSecond) + " datagrams/s, \(cpu) CPU µs/datagram, "
                            + "\(result.lost) lost of \(result.sent) sent\n").utf8))
                } catch {
                    problems.append("\(implementation.rawValue) round \(round): \(error)")
                }
            }
        }
        let loadAfter = RunDescription.loadAverage()
        let ours = results[.pheromones] ?? [], nio = results[.nio] ?? []
        let rate = (ours: median(ours.map(\.datagramsPerSecond)), nio: median(nio.map(\.datagramsPerSecond)))
        let cpu = (ours: median(ours.compactMap(\.serverMicrosecondsPerDatagram)), nio: median(nio.compactMap(\.serverMicrosecondsPerDatagram)))
        let lost = (ours: ours.reduce(0) { $0 + $1.lost }, nio: nio.reduce(0) { $0 + $1.lost })
        let sent = (ours: ours.reduce(0) { $0 + $1.sent }, nio: nio.reduce(0) { $0 + $1.sent })
        let bad = (ours: ours.reduce(0) { $0 + $1.bad }, nio: nio.reduce(0) { $0 + $1.bad })
        print("udp echo\(noGso ? " (ours without GSO)" : ""), \(senders) senders x \(window) in flight, \(size)-byte datagrams, 1 server loop; "
              + "\(rounds) round(s) of \(duration) s after \(warmup) s, alternated; load average "
              + "\(loadBefore.map { String(format: "%.2f", $0) } ?? "?") before, \(loadAfter.map { String(format: "%.2f", $0) } ?? "?") after")
        print("| | pheromones | nio | ours/nio |")
        print("|---|---|---|---|")
        print("| datagrams/s (median) | \(format(rate.ours, "%.0f")) | \(format(rate.nio, "%.0f")) | \(ratio(rate.ours, rate.nio)) |")
        print("| server CPU µs/datagram (median) | \(format(cpu.ours, "%.2f")) | \(format(cpu.nio, "%.2f")) | \(ratio(cpu.ours, cpu.nio)) |")
        print("| lost / sent (all rounds) | \(lost.ours) / \(sent.ours) | \(lost.nio) / \(sent.nio) | |")
        print("| replies of the wrong length | \(bad.ours) | \(bad.nio) | |")
        for problem in problems { print("problem: \(problem)") }
        if let json {
            let document = ["pheromones": ours, "nio": nio]
            try JSONEncoder().encode(document).write(to: URL(fileURLWithPath: json))
        }
        if !problems.isEmpty { throw ExitCode.failure }
    }

    private func measure(_ implementation: Implementation, duration: Double, warmup: Double) throws -> UDPLoadResult {
        let server = try ChildProcess(
            arguments: ["serve-udp", "--impl", implementation.rawValue, "--port", "0"] + (noGso && implementation == .pheromones ? ["--no-gso"] : []))
        defer { server.stop() }
        guard let line = server.readLine(), let port = ReadyLine.port(in: line) else {
            throw HarnessError("the \(implementation.rawValue) server did not start")
        }
        let load = try ChildProcess(arguments: [
            "udp-load", "--port", "\(port)", "--senders", "\(senders)", "--window", "\(window)", "--size", "\(size)",
            "--warmup", "\(warmup)", "--duration", "\(duration)", "--server-pid", "\(server.pid)",
        ])
        let (output, status) = load.readToEnd()
        guard status == 0 else { throw HarnessError("the load generator exited with status \(status)") }
        guard let last = output.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(UDPLoadResult.self, from: Data(last.utf8)) else {
            throw HarnessError("the load generator printed no result")
        }
        if !server.isRunning { throw HarnessError("the server exited during the run") }
        return result
    }

    private func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    private func format(_ value: Double?, _ pattern: String) -> String { value.map { String(format: pattern, $0) } ?? "?" }

    private func ratio(_ ours: Double?, _ theirs: Double?) -> String {
        guard let ours, let theirs, theirs > 0 else { return "?" }
        return String(format: "%.2fx", ours / theirs)
    }
}
