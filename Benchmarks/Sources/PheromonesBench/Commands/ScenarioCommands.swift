import ArgumentParser
import Foundation

/// Options every load scenario takes.
struct RunOptions: ParsableArguments {
    @Flag(help: "Short smoke run: 1 round, 0.2 s warm-up, 0.5 s measured, 1,000 connections for conns.")
    var quick = false

    @Option(help: "Rounds per server, alternating (default 3; 1 with --quick).")
    var rounds: Int?

    @Option(help: "Seconds measured per round (default 3; 0.5 with --quick).")
    var duration: Double?

    @Option(help: "Seconds of load before measuring (default 1; 0.2 with --quick).")
    var warmup: Double?

    @Option(help: "Event loops per server.")
    var loops: Int = 1

    @Flag(help: "Check every reply byte in the load generator.")
    var verify = false

    @Option(help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (rounds ?? 1) > 0, loops > 0 else { throw ValidationError("--rounds and --loops must be at least 1") }
        guard (duration ?? 1) > 0, (warmup ?? 0) >= 0 else { throw ValidationError("--duration must be positive") }
    }

    var timing: Timing {
        Timing(
            rounds: rounds ?? (quick ? 1 : 3), warmup: warmup ?? (quick ? 0.2 : 1), duration: duration ?? (quick ? 0.5 : 3),
            hold: quick ? 0.2 : 1, verify: verify)
    }

    /// Measures `rows` against both servers, then the `p2p` rows if any, prints the table, writes
    /// the JSON if asked, and fails if any measurement went wrong (the figures themselves are never
    /// judged).
    func run(_ rows: [Row], p2p: P2PPlan? = nil) async throws {
        let timing = timing
        let loadBefore = RunDescription.loadAverage()
        let measurements = Runner(loops: loops, rounds: timing.rounds).run(rows)
        let p2pReports = await p2p?.run()
        let settings = RunDescription(
            rounds: timing.rounds, warmupSeconds: timing.warmup, durationSeconds: timing.duration,
            serverLoops: loops, verify: verify,
            loadAverageBefore: loadBefore, loadAverageAfter: RunDescription.loadAverage())
        var report = Report(rows: rows, measurements: measurements, settings: settings)
        report.p2p = p2pReports
        print(report.table())
        if let json { try report.writeJSON(to: json) }
        if report.hasProblems { throw ExitCode.failure }
    }
}

/// The ping-pong rows' shape options, shared by `pingpong` and `framed`.
struct PingPongOptions: ParsableArguments {
    @Option(help: "Rows: connection counts, or CxD for C connections with D messages in flight each.")
    var rows: String = "1,100,1000,10x16"

    @Option(help: "Messages in flight per connection for rows given as a bare count.")
    var depth: Int = 1

    @Option(help: "Payload bytes per message.")
    var size: Int = 64

    func validate() throws {
        guard shapes != nil else { throw ValidationError("--rows takes a list such as 1,100,1000,10x16") }
        guard size > 0, depth > 0 else { throw ValidationError("--size and --depth must be positive") }
    }

    var shapes: [ConnectionShape]? { ConnectionShape.list(rows, defaultDepth: depth) }

    func rows(_ scenario: Scenario, timing: Timing) -> [Row] {
        Row.pingPong(scenario, shapes: shapes ?? [], size: size, timing: timing)
    }
}

struct PingPongCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pingpong",
        abstract: "Echo ping-pong: msg/s, latency p50/p99/p999, server CPU per message.")

    @OptionGroup var shape: PingPongOptions
    @OptionGroup var options: RunOptions

    func run() async throws { try await options.run(shape.rows(.pingpong, timing: options.timing)) }
}

struct FramedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "framed",
        abstract: "Ping-pong over 4-byte length-prefixed frames (decoder, handler, encoder in the pipeline).")

    @OptionGroup var shape: PingPongOptions
    @OptionGroup var options: RunOptions

    func run() async throws { try await options.run(shape.rows(.framed, timing: options.timing)) }
}

struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Connections writing messages continuously within a window: MB/s echoed back.")

    @Option(help: "Connections.") var connections: Int = 10
    @Option(help: "Bytes per message.") var size: Int = 4096
    @Option(help: "Bytes in flight per connection.") var window: Int = 65_536
    @OptionGroup var options: RunOptions

    func run() async throws {
        try await options.run([Row.stream(connections: connections, size: size, window: window, timing: options.timing)])
    }
}

struct ConnsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conns",
        abstract: "Many concurrent connections to one loop: time until all answered once, server RSS per connection.")

    @Option(help: "Connections (default 10,000; 1,000 with --quick). The open-files limit caps it near 19,000.")
    var connections: Int?
    @OptionGroup var options: RunOptions

    func run() async throws {
        try await options.run([Row.connections(connections ?? (options.quick ? 1000 : 10_000), timing: options.timing)])
    }
}

struct TLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls",
        abstract: "Echo over TLS 1.3 (ours: PheromonesTLS; NIO: NIOSSL): ping-pong, stream, handshakes per second, memory per idle connection.",
        discussion: """
            The load generator is the same for both servers: OpenSSL's client (TLS 1.3, \
            TLS_AES_128_GCM_SHA256, X25519, no certificate verification) on the generator's \
            epoll sockets. Rows: tls-pingpong (--connections, one 64-byte message in flight each); \
            tls-stream (--stream-connections, 64 KiB of 4 KiB messages in flight each); \
            tls-handshakes full and resumed (--handshake-connections cycling: connect, handshake, one \
            64-byte round trip, close_notify and close; resumed offers the last ticket received); \
            tls-idle (--idle-connections handshaken, answered once and held: server RSS growth per \
            connection, then the same in plaintext for reference).
            """)

    @Option(help: "Which rows: a list of pingpong, stream, handshakes, idle.")
    var only: String = TLSShape.Part.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Ping-pong connections.") var connections: Int = 100
    @Option(help: "Stream connections.") var streamConnections: Int = 10
    @Option(help: "Connections cycling at once in the handshake rows.") var handshakeConnections: Int = 16
    @Option(help: "Idle connections held.") var idleConnections: Int = 1000
    @OptionGroup var options: RunOptions

    func validate() throws {
        guard connections > 0, streamConnections > 0, handshakeConnections > 0, idleConnections > 0 else {
            throw ValidationError("connection counts must be positive")
        }
        guard shape != nil else { throw ValidationError("--only takes a list of pingpong, stream, handshakes, idle") }
    }

    private var shape: TLSShape? { TLSShape(only: only) }

    func run() async throws {
        guard var shape else { return }
        shape.pingpongConnections = connections
        shape.streamConnections = streamConnections
        shape.handshakeConnections = handshakeConnections
        shape.idleConnections = idleConnections
        try await options.run(shape.rows(timing: options.timing))
    }
}

extension TLSShape {
    /// The parts `only` names (nil when a name is not one).
    init?(only: String) {
        var parts = Set<Part>()
        for name in only.split(separator: ",") {
            guard let part = Part(rawValue: name.trimmingCharacters(in: .whitespaces)) else { return nil }
            parts.insert(part)
        }
        guard !parts.isEmpty else { return nil }
        self.init()
        self.parts = parts
    }
}

struct AllCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "all",
        abstract: "Every scenario with its default rows, tls, noise and p2p included (--quick: a smoke run of about half a minute).",
        discussion: "With --json PATH the noise rows go to PATH with -noise before its extension.")

    @OptionGroup var options: RunOptions

    func run() async throws {
        let timing = options.timing
        let shapes = try PingPongOptions.parse([])
        var rows = shapes.rows(.pingpong, timing: timing) + shapes.rows(.framed, timing: timing)
        rows.append(Row.stream(connections: 10, size: 4096, window: 65_536, timing: timing))
        rows.append(Row.connections(options.quick ? 1000 : 10_000, timing: timing))
        rows += TLSShape().rows(timing: timing)
        try await options.run(rows, p2p: P2PPlan(quick: options.quick, timing: timing, loops: options.loops))
        try NoiseBench.run(NoisePlan(quick: options.quick, timing: timing, loops: options.loops), json: options.json.map(NoiseCommand.siblingPath))
    }
}

struct P2PCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "p2p",
        abstract: "P2P nodes in this process (ours only): dispatch and conversation rates between two nodes, broadcast over a mesh.",
        discussion: """
            dispatch rows: two nodes on one event loop group (--loops), native wire, --size-byte pings \
            answered with pongs; C tasks each awaiting one dispatch at a time: persistent router C=1 \
            and C=64, short router (a connection per message) C=1 and C=16. conversation rows: the Go \
            original's example conversation (connectreq ... noticeresp, 8 messages) on the JSON wire, \
            a target node on the group and a driver node on a loop of its own; C tasks each running \
            one conversation at a time: short and persistent router, C=1 and C=16 (with \
            --executor-preference, the same again with the tasks preferring the driver's loop as their \
            executor). broadcast row: --nodes persistent nodes meshed as a ring plus chords to the \
            node a quarter of the ring ahead; node 0 broadcasts --broadcasts times; time until every \
            node's protocol saw it, and the copies each node received.
            """)

    @Option(help: "Nodes in the broadcast mesh (default 16; 8 with --quick).") var nodes: Int?
    @Option(help: "Broadcasts measured (default 20; 5 with --quick).") var broadcasts: Int?
    @Option(help: "Payload bytes per message (dispatch and broadcast rows).") var size: Int = 64
    @Option(help: "Which rows: a list of dispatch, conversation, broadcast.")
    var only: String = P2PPlan.Part.allCases.map(\.rawValue).joined(separator: ",")
    @Flag(help: "Also run the conversation rows with the driver's tasks preferring its event loop as their executor.")
    var executorPreference = false
    @Option(help: "Only these dispatch and conversation rows: a comma-separated list of row names, as the tables print them (e.g. \"conversation persistent c16\").")
    var rows: String?
    @OptionGroup var options: RunOptions

    func validate() throws {
        guard (nodes ?? 3) >= 3, (broadcasts ?? 1) > 0, size >= 0 else {
            throw ValidationError("--nodes must be at least 3, --broadcasts at least 1")
        }
        guard let parts, !parts.isEmpty else {
            throw ValidationError("--only takes a list of dispatch, conversation, broadcast")
        }
        if executorPreference, !parts.contains(.conversation) {
            throw ValidationError("--executor-preference needs the conversation rows (--only)")
        }
    }

    /// The parts `--only` names; nil when a name is not one.
    private var parts: Set<P2PPlan.Part>? {
        var parts = Set<P2PPlan.Part>()
        for name in only.split(separator: ",") {
            guard let part = P2PPlan.Part(rawValue: name.trimmingCharacters(in: .whitespaces)) else { return nil }
            parts.insert(part)
        }
        return parts
    }

    func run() async throws {
        var plan = P2PPlan(quick: options.quick, timing: options.timing, loops: options.loops, nodes: nodes, broadcasts: broadcasts)
        plan.size = size
        if executorPreference { plan.conversationRows += ConversationRow.onDriverLoop }
        plan.restrict(to: parts ?? [])
        if let rows {
            plan.restrict(toRows: Set(rows.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }))
        }
        try await options.run([], p2p: plan)
    }
}
