import ArgumentParser
import CEpoll
import Foundation

struct NoiseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noise",
        abstract: "Noise (ours only): handshakes per second, encrypted against plaintext echo of 1 KiB messages, memory per idle encrypted connection.",
        discussion: """
            The server is ours with a NoiseHandler (responder) first in its pipeline, or without one \
            (plain); the client is a Noise client on our own stack (ClientBootstrap + NoiseHandler, \
            one event loop, a process of its own), the same for both. Rows: handshakes \
            (--handshake-connections cycling: connect, handshake, one round trip, close); echo \
            (--echo-connections, one --size-byte message in flight each; noise and plain rounds \
            alternated, ratio noise/plain); idle (--idle-connections handshaken, answered once and \
            held: server RSS growth per connection, noise and plain).
            """)

    @Option(help: "Which rows: a list of handshakes, echo, idle.")
    var only: String = NoisePlan.Part.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Connections cycling at once in the handshake row.") var handshakeConnections: Int = 16
    @Option(help: "Echo connections, one message in flight each.") var echoConnections: Int = 32
    @Option(help: "Echo payload bytes.") var size: Int = 1024
    @Option(help: "Idle connections held (default 1,000; 200 with --quick).") var idleConnections: Int?
    @OptionGroup var options: RunOptions

    func validate() throws {
        guard handshakeConnections > 0, echoConnections > 0, (idleConnections ?? 1) > 0 else {
            throw ValidationError("connection counts must be positive")
        }
        guard (1...NoiseLoadCommand.largestMessage).contains(size) else {
            throw ValidationError("--size must be between 1 and \(NoiseLoadCommand.largestMessage)")
        }
        guard parts != nil else { throw ValidationError("--only takes a list of handshakes, echo, idle") }
    }

    private var parts: Set<NoisePlan.Part>? {
        let parts = Set(only.split(separator: ",").compactMap { NoisePlan.Part(rawValue: $0.trimmingCharacters(in: .whitespaces)) })
        return parts.count == only.split(separator: ",").count && !parts.isEmpty ? parts : nil
    }

    func run() async throws {
        var plan = NoisePlan(quick: options.quick, timing: options.timing, loops: options.loops)
        plan.parts = parts ?? []
        plan.handshakeConnections = handshakeConnections
        plan.echoConnections = echoConnections
        plan.size = size
        if let idleConnections { plan.idleConnections = idleConnections }
        do {
            try NoiseBench.run(plan, json: options.json)
        } catch {
            throw ExitCode.failure
        }
    }

    /// `PATH` with `-noise` before its extension (`all --json` writes the noise rows there).
    static func siblingPath(_ path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let name = url.deletingPathExtension().lastPathComponent + "-noise" + (url.pathExtension.isEmpty ? "" : "." + url.pathExtension)
        return url.deletingLastPathComponent().appendingPathComponent(name).path
    }
}

extension NoisePlan {
    /// The default plan for a run's timing (`--quick`: 200 idle connections).
    init(quick: Bool, timing: Timing, loops: Int) {
        self.init(timing: timing, loops: loops)
        if quick { idleConnections = 200 }
    }
}

/// The `noise` scenario's client, in a process of its own (the harness starts it).
struct NoiseLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noise-load", abstract: "The noise scenario's client (used by `noise`).", shouldDisplay: false)

    /// The largest echo message: one Noise transport message.
    static let largestMessage = 65_519

    @Option var part: String
    @Option var port: Int
    @Option var serverPid: Int32
    @Option var connections: Int
    @Option var size: Int = 1024
    @Flag var noise = false
    @Option var warmup: Double = 1
    @Option var duration: Double = 3
    @Option var hold: Double = 1

    func run() async throws {
        _ = cepoll_raise_open_files_limit()
        guard let part = NoisePlan.Part(rawValue: part) else { throw ValidationError("unknown --part \(part)") }
        let load = NoiseLoad(
            part: part, port: port, serverPID: serverPid, connections: connections, size: size, noise: noise,
            warmup: warmup, duration: duration, hold: hold)
        let result = try await load.run()
        print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
    }
}
