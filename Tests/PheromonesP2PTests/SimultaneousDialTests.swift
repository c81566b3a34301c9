import Pheromones
import PheromonesP2P
import XCTest

/// TODO 4: two peers that add each other at the same moment each end up with an outbound and an
/// inbound connection; both keep the one dialed by the peer with the smaller peer id (inside Noise) and
/// drain the other. A property test over many pairs and interleavings: exactly one connection per
/// pair on both sides, nothing sent during the race lost, and no descriptor leaked.
final class SimultaneousDialTests: XCTestCase {
    func testTwoHundredMutualDialsLeaveExactlyOneConnectionPerPairOnBothSidesAndLeakNoDescriptors() async throws {
        try ensureDescriptorLimit(atLeast: 4096)
        // A few pairs first, so that what the concurrency runtime opens lazily is open before counting.
        _ = try await Self.runMutualDials(pairs: 4, batch: 4)
        let before = openDescriptors()
        let loops = try await Self.runMutualDials(pairs: 200, batch: 20)

        // The group is shut down and gone, and its epoll and eventfd descriptors with its loops.
        XCTAssertTrue(loops.allSatisfy { $0.loop == nil }, "the loops are still referenced")
        let after = openDescriptors()
        let grown = Self.growth(from: before, to: after)
        // Every listener and connection is a socket, every loop an eventpoll: none may be left.
        XCTAssertEqual(grown["socket"] ?? 0, 0, "sockets leaked: \(after) (before: \(before))")
        XCTAssertLessThanOrEqual(grown["anon_inode:[eventpoll]"] ?? 0, 0, "loops leaked: \(after) (before: \(before))")
        // libdispatch may open an eventfd or timerfd as it starts worker threads under load; a
        // leaked loop's eventfd would have come with its eventpoll.
        let other = grown.filter { !["socket", "anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[timerfd]"].contains($0.key) }
        XCTAssertTrue(other.values.allSatisfy { $0 <= 0 }, "descriptors leaked: \(after) (before: \(before))")
        XCTAssertLessThanOrEqual((grown["anon_inode:[eventfd]"] ?? 0) + (grown["anon_inode:[timerfd]"] ?? 0), 2,
                                 "descriptors leaked: \(after) (before: \(before))")
    }

    /// How many more descriptors of each kind (`socket`, `anon_inode:[eventfd]`, ...) are open.
    private static func growth(from before: [String], to after: [String]) -> [String: Int] {
        func kind(_ entry: String) -> String {
            let target = entry.components(separatedBy: " -> ").last ?? entry
            return target.hasPrefix("socket:") ? "socket" : target.hasPrefix("pipe:") ? "pipe" : target
        }
        var counts: [String: Int] = [:]
        for entry in after { counts[kind(entry), default: 0] += 1 }
        for entry in before { counts[kind(entry), default: 0] -= 1 }
        return counts
    }

    /// Runs the pairs, `batch` at a time, on a group of two loops that it shuts down; returns weak
    /// references to the loops, so the caller can check they are gone.
    private static func runMutualDials(pairs: Int, batch: Int) async throws -> [WeakLoop] {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let timer = group.next()
        for start in stride(from: 0, to: pairs, by: batch) {
            try await within(60, on: timer, "mutual dials \(start)..<\(start + batch)") {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    for pair in start..<min(start + batch, pairs) {
                        tasks.addTask { try await mutualDial(seed: UInt64(pair), group: group) }
                    }
                    try await tasks.waitForAll()
                }
            }
        }
        try await group.shutdownGracefully()
        return group.epollLoops.map(WeakLoop.init)
    }

    /// One pair: both add each other (in an order the seed picks), both send at once, then both
    /// must settle on the same single connection.
    private static func mutualDial(seed: UInt64, group: MultiThreadedEventLoopGroup) async throws {
        var random = SplitMix(seed: seed)
        let a = try await ExampleNode.start("a\(seed)", .persistent, .native, group: group)
        let b = try await ExampleNode.start("b\(seed)", .persistent, .native, group: group)

        switch random.next() % 3 {
        case 0:
            async let first: Void = a.node.add(peer: b.name, address: b.address)
            async let second: Void = b.node.add(peer: a.name, address: a.address)
            _ = try await (first, second)
        case 1:
            async let first: Void = a.node.add(peer: b.name, address: b.address)
            await Task.yield()
            async let second: Void = b.node.add(peer: a.name, address: a.address)
            _ = try await (first, second)
        default:
            async let second: Void = b.node.add(peer: a.name, address: a.address)
            await Task.yield()
            async let first: Void = a.node.add(peer: b.name, address: b.address)
            _ = try await (first, second)
        }

        // Sent while the loser may still be draining: both must be answered.
        async let fromA = a.node.dispatch(to: b.address, Envelope(name: a.name, operation: "noticereq"))
        async let fromB = b.node.dispatch(to: a.address, Envelope(name: b.name, operation: "noticereq"))
        let replies = try await (fromA, fromB)
        XCTAssertEqual(replies.0?.operation, "noticeresp")
        XCTAssertEqual(replies.1?.operation, "noticeresp")

        // Each side saw both connections, closed one, and keeps one.
        try await a.waitForClosedConnections(1)
        try await b.waitForClosedConnections(1)
        let open = (await a.node.openConnectionCount, await b.node.openConnectionCount)
        XCTAssertEqual(open.0, 1, "pair \(seed): \(a.connections.all)")
        XCTAssertEqual(open.1, 1, "pair \(seed): \(b.connections.all)")
        XCTAssertEqual(identified(a.connections.all), 2, "pair \(seed)")
        XCTAssertEqual(identified(b.connections.all), 2, "pair \(seed)")

        // Both agree which one: the connection dialed by the smaller peer id (inside Noise, where
        // both ends have proven theirs).
        let aDrained = drained(a.connections.all)
        let bDrained = drained(b.connections.all)
        XCTAssertEqual(aDrained.count, 1, "pair \(seed)")
        XCTAssertEqual(bDrained.count, 1, "pair \(seed)")
        if let aLost = aDrained.first, let bLost = bDrained.first {
            XCTAssertNotEqual(aLost, bLost, "the same connection is outbound on one side and inbound on the other")
            let smallerDialed: ConnectionDirection = a.node.peerID.bytes.lexicographicallyPrecedes(b.node.peerID.bytes) ? .outbound : .inbound
            XCTAssertNotEqual(aLost, smallerDialed, "a keeps the connection dialed by the smaller peer id")
        }

        let afterward = try await a.node.dispatch(to: b.address, Envelope(name: a.name, operation: "noticereq"))
        XCTAssertEqual(afterward?.operation, "noticeresp")
        await a.node.shutdown()
        await b.node.shutdown()
    }

    private static func identified(_ events: [NodeEvent]) -> Int {
        events.filter { if case .connectionIdentified = $0 { return true } else { return false } }.count
    }

    private static func drained(_ events: [NodeEvent]) -> [ConnectionDirection] {
        events.compactMap { if case .connectionDraining(_, let direction) = $0 { return direction } else { return nil } }
    }
}

/// A loop the test must not keep alive.
// Unchecked: the reference is only compared with nil, after the loop's thread has exited.
struct WeakLoop: @unchecked Sendable {
    weak var loop: EpollEventLoop?

    init(_ loop: EpollEventLoop) { self.loop = loop }
}
