import Dispatch
import Pheromones
import PheromonesP2P

/// A `dispatch` row: two nodes on the native wire, one router, `concurrency` tasks each awaiting
/// one dispatch at a time, over Noise (the default) or in plaintext.
struct DispatchRow: Sendable {
    var connectionType: ConnectionType
    var concurrency: Int
    var security: WireSecurity = .noise

    var name: String { "dispatch \(connectionType.rawValue) c\(concurrency) \(security == .noise ? "noise" : "plaintext")" }

    /// Persistent router with 1 and 64 dispatchers, short router with 1 and 16, over Noise; the
    /// busiest of each router also in plaintext, for the price of encryption (rounds alternate).
    static let defaults = [
        DispatchRow(connectionType: .persistent, concurrency: 1),
        DispatchRow(connectionType: .persistent, concurrency: 64),
        DispatchRow(connectionType: .persistent, concurrency: 64, security: .insecure),
        DispatchRow(connectionType: .short, concurrency: 1),
        DispatchRow(connectionType: .short, concurrency: 16),
        DispatchRow(connectionType: .short, concurrency: 16, security: .insecure),
    ]
}

/// What one round of a `dispatch` row measured.
struct DispatchResult: Sendable {
    var dispatchesPerSecond: Double
    var latencyP50: Double
    var latencyP99: Double
    /// Process CPU time (both nodes and the dispatching tasks) per dispatch in the measured window.
    var cpuMicrosecondsPerDispatch: Double
    var problems: [String]
}

/// Answers every `ping` with a `pong` carrying the same payload, on the node's loop; answers
/// nothing else (such as the `pong` that also reaches the dispatching node's protocol).
final class PingPongProtocol: PeerProtocol {
    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        guard message.operation == "ping" else { return nil }
        return Envelope(name: context.localName, operation: "pong", data: message.data)
    }
}

/// Monotonic nanoseconds.
enum Clock {
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// Measures one round of `row`: fresh nodes on a fresh group, warm-up, then `duration` seconds.
enum DispatchBench {
    static func measure(_ row: DispatchRow, timing: Timing, loops: Int, size: Int) async throws -> DispatchResult {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: loops)
        do {
            let result = try await measure(row, on: group, timing: timing, size: size)
            try? await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private static func measure(
        _ row: DispatchRow, on group: MultiThreadedEventLoopGroup, timing: Timing, size: Int
    ) async throws -> DispatchResult {
        let server = try Node(configuration: configuration("server", row), protocol: PingPongProtocol(), group: group)
        let client = try Node(configuration: configuration("client", row), protocol: PingPongProtocol(), group: group)
        do {
            let address = try await server.listen(on: .loopbackV4(port: 0))
            try await client.add(peer: "server", address: address)
            let result = await run(row, client: client, timing: timing, size: size)
            await shutdown([client, server])
            return result
        } catch {
            await shutdown([client, server])
            throw error
        }
    }

    static func shutdown(_ nodes: [Node]) async {
        for node in nodes { await node.shutdown() }
    }

    private static func configuration(_ name: String, _ row: DispatchRow) -> Node.Configuration {
        var configuration = Node.Configuration(name: name, connectionType: row.connectionType)
        configuration.security = row.security
        return configuration
    }

    /// Runs the dispatchers and merges what each measured.
    private static func run(_ row: DispatchRow, client: Node, timing: Timing, size: Int) async -> DispatchResult {
        let start = Clock.now() + UInt64(timing.warmup * 1e9)
        let end = start + UInt64(timing.duration * 1e9)
        let message = Envelope(name: "client", operation: "ping", data: ByteBuffer(repeating: 0x2A, count: size))
        async let cpu = ProcessCPU.nanoseconds(between: start, and: end)
        let outcomes = await withTaskGroup(of: DispatcherOutcome.self) { tasks in
            for _ in 0..<row.concurrency {
                tasks.addTask { await dispatchLoop(client, message: message, measuring: start..<end) }
            }
            return await tasks.reduce(into: []) { $0.append($1) }
        }
        var histogram = LatencyHistogram()
        var count = 0
        var problems: [String] = []
        for outcome in outcomes {
            histogram.merge(outcome.latencies)
            count += outcome.count
            if let error = outcome.error { problems.append(error) }
        }
        if count == 0 { problems.append("no dispatch completed in the measured window") }
        let cpuNanoseconds = await cpu.all
        return DispatchResult(
            dispatchesPerSecond: Double(count) / timing.duration,
            latencyP50: histogram.percentile(0.50) / 1000, latencyP99: histogram.percentile(0.99) / 1000,
            cpuMicrosecondsPerDispatch: count == 0 ? 0 : Double(cpuNanoseconds) / 1000 / Double(count),
            problems: problems.isEmpty ? [] : ["\(problems.count) dispatcher(s) failed, first: \(problems[0])"])
    }

    private struct DispatcherOutcome: Sendable {
        var count = 0
        var latencies = LatencyHistogram()
        var error: String?
    }

    /// One dispatcher: dispatches until the window ends, recording the dispatches that lie in it.
    /// Stops at the first error or missing reply.
    private static func dispatchLoop(_ client: Node, message: Envelope, measuring window: Range<UInt64>) async -> DispatcherOutcome {
        var outcome = DispatcherOutcome()
        while true {
            let sent = Clock.now()
            do {
                guard try await client.dispatch(to: "server", message)?.operation == "pong" else {
                    outcome.error = "a ping was not answered with a pong"
                    return outcome
                }
            } catch {
                outcome.error = "\(error)"
                return outcome
            }
            let answered = Clock.now()
            if answered >= window.upperBound { return outcome }
            if sent >= window.lowerBound {
                outcome.count += 1
                outcome.latencies.record(nanoseconds: answered - sent)
            }
        }
    }
}
