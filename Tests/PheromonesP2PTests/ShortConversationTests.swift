import Pheromones
import PheromonesP2P
import XCTest

/// A short-mode conversation runs on the driving node's loop: each reply goes to the node's own
/// protocol (on the loop, or in a task for an async one) and its answer is dialed out next, until
/// either side answers nothing, or something fails.
final class ShortConversationTests: XCTestCase {
    private struct Failure: Error, Equatable {}

    /// Answers `count` with `count - 1` until 0, which it answers with nothing; `fails` makes it
    /// throw on 1 instead.
    private final class Countdown: PeerProtocol {
        let fails: Bool
        init(fails: Bool) { self.fails = fails }
        func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
            try Self.answer(message, context: context, fails: fails)
        }

        static func answer(_ message: Envelope, context: PeerContext, fails: Bool) throws -> Envelope? {
            guard let count = Int(message.operation), count > 0 else { return nil }
            if fails, count == 1 { throw Failure() }
            return Envelope(name: context.localName, operation: "\(count - 1)")
        }
    }

    private struct AsyncCountdown: AsyncPeerProtocol {
        let fails: Bool
        func handle(_ message: Envelope, context: PeerContext) async throws -> Envelope? {
            await Task.yield()
            return try Countdown.answer(message, context: context, fails: fails)
        }
    }

    private func pair(
        _ wire: WireFormat, driverFails: Bool, async: Bool, group: MultiThreadedEventLoopGroup
    ) async throws -> (driver: Node, responder: Node, address: SocketAddress) {
        let responder = try Node(
            configuration: .init(name: "responder", connectionType: .short, wire: wire, logger: testLogger("responder")),
            protocol: Countdown(fails: false), group: group)
        let address = try await responder.listen(on: .loopbackV4(port: 0))
        let configuration = Node.Configuration(name: "driver", connectionType: .short, wire: wire, logger: testLogger("driver"))
        let driver = async
            ? try Node(configuration: configuration, protocol: AsyncCountdown(fails: driverFails), group: group)
            : try Node(configuration: configuration, protocol: Countdown(fails: driverFails), group: group)
        try await driver.add(peer: "responder", address: address)
        return (driver, responder, address)
    }

    func testAShortConversationAlternatesUntilASideAnswersNothingAndSaysWhichSide() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        for wire in WireFormat.allCases {
            for async in [false, true] {
                let label = "\(wire) \(async ? "async" : "on-loop")"
                let (driver, responder, _) = try await pair(wire, driverFails: false, async: async, group: group)
                // 6 → 5 (responder) → 4 (driver) → 3 → 2 → 1 → 0 (driver), which the responder answers with nothing.
                let even = try await within(10, on: driver.eventLoop) { try await driver.converse(with: "responder", starting: Envelope(name: "driver", operation: "6")) }
                XCTAssertEqual(even.sent.map(\.operation), ["6", "4", "2", "0"], label)
                XCTAssertEqual(even.received.map(\.operation), ["5", "3", "1"], label)
                XCTAssertEqual(even.ending, .completedByPeer, label)
                // 3 → 2 → 1 → 0 (responder), which the driver answers with nothing.
                let odd = try await within(10, on: driver.eventLoop) { try await driver.converse(with: "responder", starting: Envelope(name: "driver", operation: "3")) }
                XCTAssertEqual(odd.sent.map(\.operation), ["3", "1"], label)
                XCTAssertEqual(odd.received.map(\.operation), ["2", "0"], label)
                XCTAssertEqual(odd.ending, .completedHere, label)
                await driver.shutdown()
                await responder.shutdown()
            }
        }
        try await group.shutdownGracefully()
    }

    func testAShortConversationWhoseOwnProtocolThrowsFailsWithThatErrorAndTheNodeGoesOn() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        for wire in WireFormat.allCases {
            for async in [false, true] {
                let label = "\(wire) \(async ? "async" : "on-loop")"
                let (driver, responder, _) = try await pair(wire, driverFails: true, async: async, group: group)
                // 4 → 3 → 2 → 1: the driver's protocol throws on 1.
                do {
                    _ = try await within(10, on: driver.eventLoop) { try await driver.converse(with: "responder", starting: Envelope(name: "driver", operation: "4")) }
                    XCTFail("the conversation did not fail (\(label))")
                } catch {
                    XCTAssertEqual(error as? Failure, Failure(), "\(label): \(error)")
                }
                let reply = try await driver.dispatch(to: "responder", Envelope(name: "driver", operation: "9"))
                XCTAssertEqual(reply?.operation, "8", label)
                await driver.shutdown()
                await responder.shutdown()
            }
        }
        try await group.shutdownGracefully()
    }

    func testAShortConversationWithAPeerThatIsGoneFailsWithConnectFailed() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let (driver, responder, _) = try await pair(.native, driverFails: false, async: false, group: group)
        await responder.shutdown()
        do {
            _ = try await within(10, on: driver.eventLoop) { try await driver.converse(with: "responder", starting: Envelope(name: "driver", operation: "4")) }
            XCTFail("the conversation did not fail")
        } catch P2PError.connectFailed {
        }
        await driver.shutdown()
        try await group.shutdownGracefully()
    }
}
