import ArgumentParser
import CEpoll
import Foundation

/// The load generator's own process: runs one plan and prints its result as one JSON line.
struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Drive a server with plain epoll sockets and print one JSON result line (used by the scenarios).",
        shouldDisplay: false)

    @Option var mode: LoadPlan.Mode
    @Option var proto: WireProtocol = .echo
    @Option var host: String = "127.0.0.1"
    @Option var port: Int
    @Option(help: "Concurrent connections.") var connections: Int = 1
    @Option(help: "Payload bytes per message.") var size: Int = 64
    @Option(help: "Messages in flight per connection (pingpong).") var depth: Int = 1
    @Option(help: "Bytes in flight per connection (stream).") var window: Int = 65_536
    @Option(help: "Seconds of load before measuring.") var warmup: Double = 1
    @Option(help: "Seconds measured.") var duration: Double = 3
    @Option(help: "Seconds the conns mode holds its connections.") var hold: Double = 1
    @Option(help: "Seconds before the run is abandoned.") var timeout: Double = 60
    @Option(help: "Connects pending at once.") var connectsInFlight: Int = 256
    @Option(help: "The server's pid, for its CPU time and memory.") var serverPID: Int32?
    @Flag(help: "Check every reply byte.") var verify = false
    @Option(help: "Speak TLS: full (a full handshake each) or resumed (offering the last session ticket).")
    var tls: LoadPlan.TLSMode?

    func validate() throws {
        guard connections > 0, size > 0, depth > 0, window > 0, connectsInFlight > 0 else {
            throw ValidationError("--connections, --size, --depth, --window and --connects-in-flight must be positive")
        }
        guard size <= Int(UInt32.max) else { throw ValidationError("--size must fit a 4-byte length") }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let limit = cepoll_raise_open_files_limit()
        guard connections + 16 <= limit else {
            throw ValidationError("\(connections) connections exceed the open-files limit of \(limit)")
        }
        let result = try LoadGenerator(plan: plan).run()
        print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
    }

    private var plan: LoadPlan {
        var plan = LoadPlan(mode: mode, proto: proto, connections: connections)
        plan.host = host
        plan.port = port
        plan.size = size
        plan.depth = depth
        plan.window = window
        plan.warmup = warmup
        plan.duration = duration
        plan.hold = hold
        plan.timeout = timeout
        plan.connectsInFlight = connectsInFlight
        plan.serverPID = serverPID
        plan.verify = verify
        plan.tls = tls
        return plan
    }
}

extension LoadPlan {
    /// The `load` command line that runs this plan.
    var arguments: [String] {
        var arguments = [
            "--mode", mode.rawValue, "--proto", proto.rawValue, "--host", host, "--port", "\(port)",
            "--connections", "\(connections)", "--size", "\(size)", "--depth", "\(depth)", "--window", "\(window)",
            "--warmup", "\(warmup)", "--duration", "\(duration)", "--hold", "\(hold)", "--timeout", "\(timeout)",
            "--connects-in-flight", "\(connectsInFlight)",
        ]
        if let serverPID { arguments += ["--server-pid", "\(serverPID)"] }
        if verify { arguments.append("--verify") }
        if let tls { arguments += ["--tls", tls.rawValue] }
        return arguments
    }
}
