import Foundation
import Pheromones
import PheromonesNoise

// The `noise` scenario (issue 10's benchmark): our echo server with a `NoiseHandler` first in its
// pipeline against the same server in plaintext, in the same run, rounds alternated; and the Noise
// handshake rate. Ours only: NIO has no Noise.
//
// The load generator is a Noise client on our own stack (ClientBootstrap + NoiseHandler, one
// event loop, in a process of its own): the same client, the same code path, for both variants,
// the NoiseHandler present or not. A C client would have needed a Noise implementation of its own.

/// What the `noise` command measures: its parts, connection counts and timing.
struct NoisePlan: Sendable {
    enum Part: String, CaseIterable, Sendable {
        case handshakes, echo, idle
    }

    var parts: Set<Part> = Set(Part.allCases)
    var timing: Timing
    var loops = 1
    /// Connections cycling at once in the handshake row.
    var handshakeConnections = 16
    /// Echo connections, one message in flight each.
    var echoConnections = 32
    /// Echo payload bytes.
    var size = 1024
    /// Idle connections held for the memory row.
    var idleConnections = 1000

    /// The rows in order, each measured in alternating rounds over its variants.
    var rows: [NoiseRow] {
        var rows: [NoiseRow] = []
        if parts.contains(.handshakes) {
            rows.append(NoiseRow(part: .handshakes, name: "handshakes c\(handshakeConnections)", connections: handshakeConnections, variants: [.noise]))
        }
        if parts.contains(.echo) {
            rows.append(NoiseRow(part: .echo, name: "echo c\(echoConnections) \(size) B", connections: echoConnections, variants: [.noise, .plain]))
        }
        if parts.contains(.idle) {
            rows.append(NoiseRow(part: .idle, name: "idle c\(idleConnections)", connections: idleConnections, variants: [.noise, .plain]))
        }
        return rows
    }
}

/// Encrypted (a `NoiseHandler` on both ends) or plaintext (none); nothing else differs.
enum NoiseVariant: String, Codable, Sendable, CaseIterable {
    case noise, plain
}

/// One row: a load shape, measured once per variant per round.
struct NoiseRow: Sendable {
    var part: NoisePlan.Part
    var name: String
    var connections: Int
    var variants: [NoiseVariant]

    /// The figures the row reports: a title and how to read it from a result.
    var metrics: [(title: String, value: @Sendable (NoiseLoadResult) -> Double?)] {
        switch part {
        case .handshakes:
            return [("handshakes/s", { $0.rate }), ("server CPU µs/handshake", { $0.serverMicrosecondsPerReply })]
        case .echo:
            return [("msg/s", { $0.rate }), ("server CPU µs/msg", { $0.serverMicrosecondsPerReply })]
        case .idle:
            return [("server RSS KB/connection", { $0.residentKBPerConnection }), ("s until all answered", { $0.secondsToAnswerAll })]
        }
    }
}

/// What one load-generator process measured (its one line of JSON).
struct NoiseLoadResult: Codable, Sendable {
    /// Replies (echo), completed cycles (handshakes) or connections answered (idle).
    var replies = 0
    var seconds = 0.0
    var serverCPUSeconds: Double?
    var residentKiBBefore: Int?
    var residentKiBHeld: Int?
    var secondsToAnswerAll: Double?
    var errors = 0
    var firstError: String?

    var rate: Double? { seconds > 0 ? Double(replies) / seconds : nil }
    var serverMicrosecondsPerReply: Double? {
        guard let serverCPUSeconds, replies > 0 else { return nil }
        return serverCPUSeconds * 1e6 / Double(replies)
    }
    var residentKBPerConnection: Double? {
        guard let before = residentKiBBefore, let held = residentKiBHeld, replies > 0 else { return nil }
        return Double(held - before) * 1.024 / Double(replies)
    }
}

// MARK: - The harness

/// Runs a ``NoisePlan``: fresh server and client processes per measurement, variants alternated
/// within each round, medians, a table and (if asked) JSON.
enum NoiseBench {
    /// One row's figure for one variant over the rounds.
    struct Figure: Codable, Sendable {
        var row: String
        var metric: String
        var variant: NoiseVariant
        var spread: Spread
        /// noise / plain of the medians (on the noise figure of two-variant rows).
        var ratioToPlain: Double?
    }

    /// The JSON document.
    struct Document: Codable, Sendable {
        var scenario = "noise"
        var machine: MachineDescription
        var settings: RunDescription
        var figures: [Figure]
        var problems: [String]
    }

    /// Measures, prints the table, writes `json` if given; throws when a measurement failed.
    static func run(_ plan: NoisePlan, json: String?) throws {
        let loadBefore = RunDescription.loadAverage()
        var figures: [Figure] = []
        var problems: [String] = []
        for row in plan.rows {
            var results: [NoiseVariant: [NoiseLoadResult]] = [:]
            for round in 1...plan.timing.rounds {
                for variant in row.variants {
                    do {
                        let result = try measure(row, variant: variant, plan: plan)
                        if result.errors > 0 { problems.append("\(row.name) \(variant.rawValue) round \(round): \(result.errors) error(s), first: \(result.firstError ?? "?")") }
                        results[variant, default: []].append(result)
                        progress(row, variant: variant, round: round, of: plan.timing.rounds, result: result)
                    } catch {
                        problems.append("\(row.name) \(variant.rawValue) round \(round): \(error)")
                    }
                }
            }
            figures += summarize(row, results)
        }
        let settings = RunDescription(
            rounds: plan.timing.rounds, warmupSeconds: plan.timing.warmup, durationSeconds: plan.timing.duration,
            serverLoops: plan.loops, verify: plan.timing.verify, loadAverageBefore: loadBefore, loadAverageAfter: RunDescription.loadAverage())
        let document = Document(machine: .current(), settings: settings, figures: figures, problems: problems)
        print(table(document))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(document).write(to: URL(fileURLWithPath: json))
        }
        if !problems.isEmpty { throw HarnessError("\(problems.count) noise measurement(s) went wrong") }
    }

    /// One measurement: a fresh server (with Noise or without) and a fresh client process.
    private static func measure(_ row: NoiseRow, variant: NoiseVariant, plan: NoisePlan) throws -> NoiseLoadResult {
        let server = try ChildProcess(arguments: [
            "serve", "--impl", "pheromones", "--proto", "echo", "--port", "0", "--loops", "\(plan.loops)",
        ] + (variant == .noise ? ["--noise"] : []))
        defer { server.stop() }
        guard let line = server.readLine(), let port = ReadyLine.port(in: line) else { throw HarnessError("the server did not start") }
        let load = try ChildProcess(arguments: [
            "noise-load", "--part", row.part.rawValue, "--port", "\(port)", "--server-pid", "\(server.pid)",
            "--connections", "\(row.connections)", "--size", "\(plan.size)",
            "--warmup", "\(plan.timing.warmup)", "--duration", "\(plan.timing.duration)", "--hold", "\(plan.timing.hold)",
        ] + (variant == .noise ? ["--noise"] : []))
        let (output, status) = load.readToEnd()
        guard status == 0, let last = output.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(NoiseLoadResult.self, from: Data(last.utf8))
        else { throw HarnessError("the Noise load generator failed (status \(status))") }
        if !server.isRunning { throw HarnessError("the server exited during the run") }
        return result
    }

    private static func summarize(_ row: NoiseRow, _ results: [NoiseVariant: [NoiseLoadResult]]) -> [Figure] {
        var figures: [Figure] = []
        for (title, value) in row.metrics {
            let spreads = row.variants.map { variant in (variant, Spread((results[variant] ?? []).compactMap(value))) }
            let plainMedian = spreads.first { $0.0 == .plain }?.1?.median
            for (variant, spread) in spreads {
                guard let spread else { continue }
                let ratio = variant == .noise ? plainMedian.flatMap { $0 > 0 ? spread.median / $0 : nil } : nil
                figures.append(Figure(row: row.name, metric: title, variant: variant, spread: spread, ratioToPlain: ratio))
            }
        }
        return figures
    }

    private static func progress(_ row: NoiseRow, variant: NoiseVariant, round: Int, of rounds: Int, result: NoiseLoadResult) {
        let values = row.metrics.compactMap { metric in metric.value(result).map { "\(format($0)) \(metric.title)" } }
        FileHandle.standardError.write(Data("noise \(row.name), round \(round)/\(rounds), \(variant.rawValue): \(values.joined(separator: ", "))\n".utf8))
    }

    private static func table(_ document: Document) -> String {
        let settings = document.settings
        var text = "noise: Noise_XX_25519_ChaChaPoly_SHA256 (NoiseHandler) against plaintext, same server and client otherwise; "
        text += "\(settings.rounds) round(s) alternated, medians (min-max); load average \(settings.loadAverageBefore.map { format($0) } ?? "?") before, "
        text += "\(settings.loadAverageAfter.map { format($0) } ?? "?") after; \(document.machine.date)\n"
        let heading = "row".padding(toLength: 48, withPad: " ", startingAt: 0) + "noise".leftPadded(24) + "plain".leftPadded(24) + "noise/plain".leftPadded(13)
        text += heading + "\n" + String(repeating: "-", count: heading.count) + "\n"
        var seen: [String] = []
        for figure in document.figures where !seen.contains(figure.row + figure.metric) {
            seen.append(figure.row + figure.metric)
            let cell = { (variant: NoiseVariant) -> String in
                guard let spread = document.figures.first(where: { $0.row == figure.row && $0.metric == figure.metric && $0.variant == variant })?.spread else { return "" }
                return "\(format(spread.median)) (\(format(spread.min))-\(format(spread.max)))"
            }
            let ratio = document.figures.first { $0.row == figure.row && $0.metric == figure.metric && $0.variant == .noise }?.ratioToPlain
            text += "\(figure.row) \(figure.metric)".padding(toLength: 48, withPad: " ", startingAt: 0)
                + cell(.noise).leftPadded(24) + cell(.plain).leftPadded(24) + (ratio.map { String(format: "%.2f", $0) } ?? "").leftPadded(13) + "\n"
        }
        for problem in document.problems { text += "- \(problem)\n" }
        return text
    }

    private static func format(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(format: value >= 10 ? "%.1f" : "%.2f", value)
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}

// MARK: - The load generator (in its own process)

/// The Noise client: connections on one event loop of our own stack, each a `NoiseHandler`
/// (initiator) or none, then ``NoiseLoadHandler``.
struct NoiseLoad {
    var part: NoisePlan.Part
    var port: Int
    var serverPID: Int32
    var connections: Int
    var size: Int
    var noise: Bool
    var warmup: Double
    var duration: Double
    var hold: Double

    func run() async throws -> NoiseLoadResult {
        // One loop: every connection and the counters on it.
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        guard let loop = group.loops.first else { throw HarnessError("no event loop") }
        // Loop-confined state is made on the loop (a `LoopBound` must be).
        let counters = try await loop.submit { LoopBound(NoiseLoadCounters(), eventLoop: loop) }.get()
        let configuration = try noise ? NoiseConfiguration(identity: NodeIdentity()) : nil
        let behaviour: NoiseLoadHandler.Behaviour = part == .echo ? .pingpong : part == .handshakes ? .cycle : .once
        let size = self.size
        let bootstrap = ClientBootstrap(group: group).channelInitializer { channel in
            let handler = NoiseLoadHandler(size: size, behaviour: behaviour, counters: counters.value)
            if let configuration {
                try channel.pipeline.addHandlers([NoiseHandler(initiatorWith: configuration), handler])
            } else {
                try channel.pipeline.addHandler(handler)
            }
        }
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let connector = try await loop.submit {
            LoopBound(NoiseConnector(bootstrap: bootstrap, address: address, loop: loop, counters: counters.value), eventLoop: loop)
        }.get()
        var result = NoiseLoadResult()
        result.residentKiBBefore = ProcessStats.residentKiB(of: serverPID)
        let start = monotonicNanoseconds()
        try await loop.submit { [connections] in connector.value.open(connections, reconnect: behaviour == .cycle) }.get()
        if part == .idle {
            try await measureIdle(&result, counters: counters, start: start)
        } else {
            try await Task.sleep(for: .seconds(warmup))
            let before = try await loop.submit { counters.value.replies }.get()
            let cpuBefore = ProcessStats.cpuSeconds(of: serverPID)
            let measuredStart = monotonicNanoseconds()
            try await Task.sleep(for: .seconds(duration))
            result.replies = try await loop.submit { counters.value.replies }.get() - before
            result.seconds = Double(monotonicNanoseconds() - measuredStart) / 1e9
            if let cpuBefore, let cpuAfter = ProcessStats.cpuSeconds(of: serverPID) { result.serverCPUSeconds = cpuAfter - cpuBefore }
        }
        (result.errors, result.firstError) = try await loop.submit { connector.value.stop() }.get()
        try await group.shutdownGracefully()
        return result
    }

    /// Waits until every connection was answered once (at most a minute), then samples the
    /// server's RSS twice over `hold` seconds.
    private func measureIdle(_ result: inout NoiseLoadResult, counters: LoopBound<NoiseLoadCounters>, start: UInt64) async throws {
        let loop = counters.eventLoop
        while try await loop.submit({ counters.value.replies + counters.value.errors }).get() < connections,
              monotonicNanoseconds() - start < 60_000_000_000 {
            try await Task.sleep(for: .milliseconds(10))
        }
        result.replies = try await loop.submit { counters.value.replies }.get()
        result.secondsToAnswerAll = Double(monotonicNanoseconds() - start) / 1e9
        try await Task.sleep(for: .seconds(hold / 2))
        let first = ProcessStats.residentKiB(of: serverPID)
        try await Task.sleep(for: .seconds(hold / 2))
        result.residentKiBHeld = [first, ProcessStats.residentKiB(of: serverPID)].compactMap { $0 }.max()
    }
}

/// What the client's connections count (loop-confined).
final class NoiseLoadCounters {
    var replies = 0
    var errors = 0
    var firstError: String?

    func record(_ error: any Error) {
        errors += 1
        if firstError == nil { firstError = "\(error)" }
    }
}

/// Opens the client's connections, at most 256 connecting at once, and (cycling) opens a new one
/// whenever one closes. Loop-confined.
final class NoiseConnector {
    private let bootstrap: ClientBootstrap
    private let address: SocketAddress
    private let loop: any EventLoop
    private let counters: NoiseLoadCounters
    private var waiting = 0
    private var connecting = 0
    private var reconnect = false
    private var stopped = false
    private var open: [ObjectIdentifier: any Channel] = [:]

    init(bootstrap: ClientBootstrap, address: SocketAddress, loop: any EventLoop, counters: NoiseLoadCounters) {
        self.bootstrap = bootstrap
        self.address = address
        self.loop = loop
        self.counters = counters
    }

    func open(_ count: Int, reconnect: Bool) {
        self.reconnect = reconnect
        waiting += count
        next()
    }

    /// Closes every connection; returns the errors counted.
    func stop() -> (Int, String?) {
        stopped = true
        for channel in open.values { _ = channel.close() }
        return (counters.errors, counters.firstError)
    }

    private func next() {
        while waiting > 0, connecting < 256, !stopped {
            waiting -= 1
            connecting += 1
            bootstrap.connect(to: address).whenCompleteOnLoop { [self] result in
                connecting -= 1
                switch result {
                case .success(let channel):
                    let id = ObjectIdentifier(channel)
                    open[id] = channel
                    channel.closeFuture.whenCompleteOnLoop { [self] _ in
                        open[id] = nil
                        if reconnect, !stopped { waiting += 1 }
                        next()
                    }
                case .failure(let error):
                    counters.record(error)
                }
                next()
            }
        }
    }
}

/// One client connection: writes a `size`-byte message once active (a `NoiseHandler` before it
/// holds it until the handshake is done) and, once all of it is back, counts a reply and then
/// sends the next (`pingpong`), closes (`cycle`) or waits (`once`).
final class NoiseLoadHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Behaviour { case pingpong, cycle, once }

    private let message: ByteBuffer
    private let behaviour: Behaviour
    private let counters: NoiseLoadCounters
    private var received = 0

    init(size: Int, behaviour: Behaviour, counters: NoiseLoadCounters) {
        message = ByteBuffer(repeating: 0x4E, count: size)
        self.behaviour = behaviour
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(message, promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        received += data.readableBytes
        guard received >= message.readableBytes else { return }
        received -= message.readableBytes
        counters.replies += 1
        switch behaviour {
        case .pingpong: context.writeAndFlush(message, promise: nil)
        case .cycle: context.close(promise: nil)
        case .once: break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        counters.record(error)
        context.close(promise: nil)
    }
}
