import Foundation
import Glibc
import Logging
import Pheromones
import PheromonesP2P
import Synchronization
import XCTest

/// Why a bounded wait in a test gave up.
struct TestTimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// A logger for nodes under test: silent unless `P2P_TEST_LOG` names a level (`debug`, `trace`).
func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    let level = ProcessInfo.processInfo.environment["P2P_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) }
    logger.logLevel = level ?? .critical
    return logger
}

/// Runs `body`, failing with ``TestTimedOut`` if it takes longer than `seconds` (timed by `loop`).
func within<T: Sendable>(
    _ seconds: Int64, on loop: any EventLoop, _ what: String = "an operation",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let promise = loop.makePromise(of: T.self)
    let task = Task {
        do { promise.trySucceed(try await body()) } catch { promise.tryFail(error) }
    }
    let timer = loop.scheduleTask(in: .seconds(seconds)) { promise.tryFail(TestTimedOut(what: what)) }
    defer { timer.cancel() }
    do {
        return try await promise.futureResult.get()
    } catch {
        task.cancel()
        throw error
    }
}

/// Collects values from any thread and lets a test wait, boundedly, until they satisfy a condition.
final class Recorder<Element: Sendable>: Sendable {
    private struct Waiter {
        var condition: @Sendable ([Element]) -> Bool
        var promise: Promise<Void>
    }

    private struct State {
        var items: [Element] = []
        var waiters: [Waiter] = []
    }

    private let state = LockedValue(State())

    init() {}

    /// Everything recorded so far, oldest first.
    var all: [Element] { state.withLock { $0.items } }

    func append(_ item: Element) {
        let ready = state.withLock { state -> [Promise<Void>] in
            state.items.append(item)
            let items = state.items
            let ready = state.waiters.filter { $0.condition(items) }.map(\.promise)
            state.waiters.removeAll { $0.condition(items) }
            return ready
        }
        for promise in ready { promise.trySucceed(()) }
    }

    /// Waits until the recorded values satisfy `condition`, at most `seconds` (timed by `loop`).
    func wait(
        _ what: String, within seconds: Int64 = 10, on loop: any EventLoop,
        until condition: @escaping @Sendable ([Element]) -> Bool
    ) async throws {
        let promise = loop.makePromise(of: Void.self)
        let satisfied = state.withLock { state -> Bool in
            if condition(state.items) { return true }
            state.waiters.append(Waiter(condition: condition, promise: promise))
            return false
        }
        if satisfied { return }
        let timer = loop.scheduleTask(in: .seconds(seconds)) { promise.tryFail(TestTimedOut(what: what)) }
        defer { timer.cancel() }
        try await promise.futureResult.get()
    }
}

/// A node running the example protocol, its server on 127.0.0.1 with a kernel-chosen port.
struct ExampleNode: Sendable {
    let node: Node
    let address: SocketAddress
    let events: Recorder<ExampleProtocol.Event>
    let connections: Recorder<NodeEvent>

    var name: String { node.name }

    /// The `connectreq` that starts this node's conversations.
    var hello: Envelope { ExampleProtocol.connectRequest(from: node.name, listeningAddress: address) }

    static func start(
        _ name: String, _ connectionType: ConnectionType, _ wire: WireFormat, group: MultiThreadedEventLoopGroup?,
        configure: (inout Node.Configuration) -> Void = { _ in }
    ) async throws -> ExampleNode {
        let events = Recorder<ExampleProtocol.Event>()
        let connections = Recorder<NodeEvent>()
        var configuration = Node.Configuration(
            name: name, connectionType: connectionType, wire: wire,
            dialTimeout: .seconds(2), replyTimeout: .seconds(5), handOverTimeout: .seconds(5),
            logger: testLogger("p2p.\(name)"), observer: { connections.append($0) })
        configure(&configuration)
        let example = ExampleProtocol(observer: { events.append($0) }, logger: testLogger("example.\(name)"))
        let node = try Node(configuration: configuration, protocol: example, group: group)
        let address = try await node.listen(on: .loopbackV4(port: 0))
        return ExampleNode(node: node, address: address, events: events, connections: connections)
    }

    /// Waits until this node's protocol has seen `count` conversations finish.
    func waitForFinishedConversations(_ count: Int, within seconds: Int64 = 10) async throws {
        try await events.wait("\(count) finished conversations at \(name)", within: seconds, on: node.eventLoop) { events in
            events.filter { if case .conversationFinished = $0 { return true } else { return false } }.count >= count
        }
    }

    /// Waits until `count` of this node's persistent connections have closed.
    func waitForClosedConnections(_ count: Int, within seconds: Int64 = 10) async throws {
        try await connections.wait("\(count) closed connections at \(name)", within: seconds, on: node.eventLoop) { events in
            events.filter { if case .connectionClosed = $0 { return true } else { return false } }.count >= count
        }
    }

    /// The operations this node's protocol handled, in order.
    var handledOperations: [String] {
        events.all.compactMap { if case .handled(_, let message, _) = $0 { return message.operation } else { return nil } }
    }
}

extension ConversationSummary {
    /// The operations of the conversation in the order they were exchanged (sent and received
    /// alternate, starting with the first message sent).
    var transcript: [String] {
        var operations: [String] = []
        for index in 0..<max(sent.count, received.count) {
            if index < sent.count { operations.append(sent[index].operation) }
            if index < received.count { operations.append(received[index].operation) }
        }
        return operations
    }
}

/// The example conversation as the initiator sees it: what it sends and receives, alternating.
let exampleTranscript = [
    "connectreq", "connectresp", "getreq", "getresp", "fetchreq", "fetchresp", "noticereq", "noticeresp",
]

/// The number of open file descriptors of this process.
func openDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Raises the soft descriptor limit to at least `count` (up to the hard limit).
func ensureDescriptorLimit(atLeast count: Int) throws {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw XCTSkip("getrlimit failed") }
    guard limit.rlim_cur < rlim_t(count) else { return }
    guard limit.rlim_max >= rlim_t(count) else { throw XCTSkip("the descriptor limit \(limit.rlim_max) is below \(count)") }
    limit.rlim_cur = rlim_t(count)
    guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw XCTSkip("setrlimit failed") }
}

/// A gate async code can wait at until the test opens it.
final class Gate: Sendable {
    private let promise: Promise<Void>

    init(loop: any EventLoop) {
        promise = loop.makePromise(of: Void.self)
    }

    func open() { promise.trySucceed(()) }

    func wait() async { try? await promise.futureResult.get() }
}

/// The example's transitions as an async protocol that holds its answer to `gatedOperation` until
/// `gate` opens, recording each operation that reaches the gate: a peer that is busy, or stuck.
struct GatedExample: AsyncPeerProtocol {
    let gatedOperation: String
    let gate: Gate
    let arrivals: Recorder<String>

    static let answers = [
        "connectreq": "connectresp", "getreq": "getresp", "fetchreq": "fetchresp", "noticereq": "noticeresp",
        "connectresp": "getreq", "getresp": "fetchreq", "fetchresp": "noticereq",
    ]

    func handle(_ message: Envelope, context: PeerContext) async throws -> Envelope? {
        arrivals.append(message.operation)
        if message.operation == gatedOperation { await gate.wait() }
        guard let answer = Self.answers[message.operation] else { return nil }
        return Envelope(name: context.localName, operation: answer)
    }
}

/// A node running ``GatedExample``.
func startGatedNode(
    _ name: String, _ connectionType: ConnectionType, _ wire: WireFormat, gating operation: String, gate: Gate,
    arrivals: Recorder<String>, group: MultiThreadedEventLoopGroup, configure: (inout Node.Configuration) -> Void = { _ in }
) async throws -> (Node, SocketAddress) {
    var configuration = Node.Configuration(name: name, connectionType: connectionType, wire: wire, logger: testLogger("p2p.\(name)"))
    configure(&configuration)
    let node = try Node(configuration: configuration, protocol: GatedExample(gatedOperation: operation, gate: gate, arrivals: arrivals), group: group)
    let address = try await node.listen(on: .loopbackV4(port: 0))
    return (node, address)
}

/// A socket that listens on 127.0.0.1 but never accepts: connecting succeeds (the kernel's
/// backlog takes it), and nothing is ever answered.
final class SilentListener: Sendable {
    let address: SocketAddress
    private let fd: CInt

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        guard fd >= 0 else { throw TestTimedOut(what: "a socket") }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else { throw TestTimedOut(what: "bind/listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        address = .loopbackV4(port: Int(UInt16(bigEndian: sin.sin_port)))
    }

    func close() { _ = Glibc.close(fd) }
}

/// An address on 127.0.0.1 where nothing listens (a port just released).
func deadAddress() throws -> SocketAddress {
    let listener = try SilentListener()
    listener.close()
    return listener.address
}

/// Measures how long `body` takes.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try await body()
    return (value, clock.now - start)
}

/// What each open descriptor is (`fd -> target`), for leak reports; leaves out the descriptor
/// that reads the directory.
func openDescriptors() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }.compactMap { name in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)") else { return nil }
        return "\(name) -> \(target)"
    }
}

/// A test case with a two-loop group of its own, made before each test and shut down after it.
class GroupTestCase: XCTestCase {
    /// The group the test's nodes run on.
    var group: MultiThreadedEventLoopGroup!

    override func setUp() async throws {
        group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() async throws {
        try await group.shutdownGracefully()
        group = nil
    }
}
