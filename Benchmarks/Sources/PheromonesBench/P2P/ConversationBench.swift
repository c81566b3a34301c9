import Foundation
import Pheromones
import PheromonesP2P

/// A `conversation` row: the Go original's example conversation on the JSON wire, one router,
/// `concurrency` tasks each running one conversation at a time against the same target.
///
/// It is the measurement of issue 8's table (the Go original against itself, conversations/s),
/// so it is set up as that table was: a target node, and a driver that is a node of its own, on a
/// loop of its own, running the same `ExampleProtocol`.
struct ConversationRow: Sendable {
    var connectionType: ConnectionType
    var concurrency: Int
    /// Whether the driver's conversation tasks prefer the driver node's loop as their task
    /// executor (`addTask(executorPreference:)`), so that they run on the thread the node's
    /// messages are handled on instead of the global executor's.
    var prefersDriverLoop = false

    var name: String {
        "conversation \(connectionType.rawValue) c\(concurrency)" + (prefersDriverLoop ? " on driver loop" : "")
    }

    /// The four modes: short router one at a time and 16 at once, then persistent.
    static let defaults = [
        ConversationRow(connectionType: .short, concurrency: 1),
        ConversationRow(connectionType: .short, concurrency: 16),
        ConversationRow(connectionType: .persistent, concurrency: 1),
        ConversationRow(connectionType: .persistent, concurrency: 16),
    ]

    /// The same rows with the driver's tasks preferring its loop.
    static let onDriverLoop = defaults.map { row in
        var row = row
        row.prefersDriverLoop = true
        return row
    }
}

/// What one round of a `conversation` row measured.
struct ConversationResult: Sendable {
    var conversationsPerSecond: Double
    /// Around each `converse` call: all eight messages, and in short mode four dials.
    var latencyP50: Double
    var latencyP99: Double
    /// Process CPU time (user and system, every thread: the target's, the driver's and the
    /// tasks') over the measured window, per conversation completed in it.
    var cpuMicrosecondsPerConversation: Double
    /// The user-space part of it.
    var userCPUMicrosecondsPerConversation: Double
    var problems: [String]
}

/// Measures one round of a `ConversationRow`: a fresh target and driver, warm-up, then `duration`
/// seconds of conversations.
enum ConversationBench {
    /// The driver's name, in its messages and in the target's route to it.
    static let driverName = "driver"
    static let targetName = "target"

    static func measure(_ row: ConversationRow, timing: Timing, loops: Int) async throws -> ConversationResult {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: loops)
        do {
            let result = try await measure(row, targetGroup: group, timing: timing)
            try? await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// The target on `targetGroup`; the driver on a loop of its own, which its `shutdown()` stops.
    private static func measure(_ row: ConversationRow, targetGroup: MultiThreadedEventLoopGroup, timing: Timing) async throws -> ConversationResult {
        let target = try Node(configuration: configuration(targetName, row), protocol: ExampleProtocol(), group: targetGroup)
        let driver = try Node(configuration: configuration(driverName, row), protocol: ExampleProtocol())
        do {
            let targetAddress = try await target.listen(on: .loopbackV4(port: 0))
            // The driver listens too, as the original's example node does: its `connectreq` tells
            // the target where, and the target adds that route (the first time; afterwards the
            // route exists, which the protocol reports and goes on, as in the original).
            let driverAddress = try await driver.listen(on: .loopbackV4(port: 0))
            // Short mode records the route; persistent mode dials the connection every
            // conversation of the round then shares.
            try await driver.add(peer: targetName, address: targetAddress)
            let opening = ExampleProtocol.connectRequest(from: driverName, listeningAddress: driverAddress)
            let result = await run(row, driver: driver, opening: opening, timing: timing)
            await DispatchBench.shutdown([driver, target])
            return result
        } catch {
            await DispatchBench.shutdown([driver, target])
            throw error
        }
    }

    /// The JSON wire and the row's router; every other setting the library's default, the reply
    /// timeout (5 s per step) included: it is what bounds each conversation's wait.
    private static func configuration(_ name: String, _ row: ConversationRow) -> Node.Configuration {
        Node.Configuration(name: name, connectionType: row.connectionType, wire: .json)
    }

    /// Runs the conversation tasks and merges what each measured.
    private static func run(_ row: ConversationRow, driver: Node, opening: Envelope, timing: Timing) async -> ConversationResult {
        let start = Clock.now() + UInt64(timing.warmup * 1e9)
        let end = start + UInt64(timing.duration * 1e9)
        let preference: (any TaskExecutor)? = row.prefersDriverLoop ? driver.eventLoop : nil
        async let cpu = ProcessCPU.nanoseconds(between: start, and: end)
        let outcomes = await withTaskGroup(of: ConverserOutcome.self) { tasks in
            for _ in 0..<row.concurrency {
                tasks.addTask(executorPreference: preference) {
                    await converseLoop(driver, opening: opening, measuring: start..<end)
                }
            }
            return await tasks.reduce(into: []) { $0.append($1) }
        }
        let (cpuNanoseconds, userNanoseconds) = await cpu
        var histogram = LatencyHistogram()
        var count = 0
        var problems: [String] = []
        for outcome in outcomes {
            histogram.merge(outcome.latencies)
            count += outcome.count
            if let error = outcome.error { problems.append(error) }
        }
        if count == 0 { problems.append("no conversation completed in the measured window") }
        return ConversationResult(
            conversationsPerSecond: Double(count) / timing.duration,
            latencyP50: histogram.percentile(0.50) / 1000, latencyP99: histogram.percentile(0.99) / 1000,
            cpuMicrosecondsPerConversation: count == 0 ? 0 : Double(cpuNanoseconds) / 1000 / Double(count),
            userCPUMicrosecondsPerConversation: count == 0 ? 0 : Double(userNanoseconds) / 1000 / Double(count),
            problems: problems.isEmpty ? [] : ["\(problems.count) conversation task(s) failed, first: \(problems[0])"])
    }

    private struct ConverserOutcome: Sendable {
        var count = 0
        var latencies = LatencyHistogram()
        var error: String?
    }

    /// One conversation task: converses until the window ends, recording the conversations that
    /// lie in it. Stops at the first error or a conversation that did not end as the protocol ends
    /// it (the driver's protocol answering the target's `noticeresp` with nothing).
    private static func converseLoop(_ driver: Node, opening: Envelope, measuring window: Range<UInt64>) async -> ConverserOutcome {
        var outcome = ConverserOutcome()
        while true {
            let started = Clock.now()
            do {
                let summary = try await driver.converse(with: targetName, starting: opening)
                // Only the ending is checked: on a persistent JSON connection, which carries no
                // ids, concurrent conversations share the connection and each incoming message is
                // credited to the oldest one under way, so one summary's messages may be another's.
                guard summary.ending == .completedHere,
                      summary.received.last?.operation == ExampleProtocol.Operation.noticeResponse
                else {
                    let last = summary.received.last?.operation ?? "nothing"
                    outcome.error = "a conversation ended \(summary.ending) after \(last)"
                    return outcome
                }
            } catch {
                outcome.error = "\(error)"
                return outcome
            }
            let finished = Clock.now()
            if finished >= window.upperBound { return outcome }
            if started >= window.lowerBound {
                outcome.count += 1
                outcome.latencies.record(nanoseconds: finished - started)
            }
        }
    }
}

/// The process's CPU time (user and system, all threads), read with `getrusage`.
enum ProcessCPU {
    /// User and system time so far.
    static func now() -> (user: UInt64, system: UInt64) {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return (0, 0) }
        func nanoseconds(_ time: timeval) -> UInt64 { UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_usec) * 1000 }
        return (nanoseconds(usage.ru_utime), nanoseconds(usage.ru_stime))
    }

    /// CPU time (all, and user) spent from monotonic instant `start` to `end` (waits for both).
    static func nanoseconds(between start: UInt64, and end: UInt64) async -> (all: UInt64, user: UInt64) {
        await sleep(until: start)
        let before = now()
        await sleep(until: end)
        let after = now()
        let user = after.user &- before.user
        return (user &+ (after.system &- before.system), user)
    }

    private static func sleep(until instant: UInt64) async {
        let now = Clock.now()
        if instant > now { try? await Task.sleep(nanoseconds: instant - now) }
    }
}
