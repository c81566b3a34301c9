import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// Graceful shutdown: stop accepting, tell each connection, wait for it within a grace period,
/// close what is left. Loopback, port 0, bounded waits.
final class ServerQuiescingTests: XCTestCase {
    /// Closes its connection, after answering "bye", when told to quiesce; or ignores the event.
    private final class QuiesceHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let obeys: Bool
        let told: XCTestExpectation
        init(obeys: Bool, told: XCTestExpectation) { (self.obeys, self.told) = (obeys, told) }

        func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
            told.fulfill()
            guard obeys else { return }
            context.writeAndFlush(ByteBuffer(string: "bye"), promise: nil)
            context.close(promise: nil)
        }
    }

    func testShutdownStopsAcceptingTellsEveryConnectionAndClosesThoseThatIgnoreItAtTheDeadline() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let quiescing = ServerQuiescingHelper()
        let told = XCTestExpectation(description: "every connection was told")
        told.expectedFulfillmentCount = 3
        let accepted = XCTestExpectation(description: "three connections were accepted")
        accepted.expectedFulfillmentCount = 3
        let count = LockedValue(0)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                quiescing.track(channel)
                // The first two obey; the third ignores the event.
                let index = count.withLock { $0 += 1; return $0 }
                try channel.pipeline.addHandler(QuiesceHandler(obeys: index < 3, told: told))
                accepted.fulfill()
            }
            .bind(to: .loopbackV4(port: 0)).get(within: 10)
        let port = try XCTUnwrap(server.localAddress?.port)
        let clients = try (0..<3).map { _ in try RawClient.connect(port: port) }
        await fulfillment(of: [accepted], timeout: 10)
        XCTAssertEqual(quiescing.openConnections, 3)

        let started = Deadline.now()
        let done = quiescing.shutdown(server: server, gracePeriod: .milliseconds(300))
        XCTAssertTrue(done === quiescing.shutdown(server: server, gracePeriod: .seconds(60)), "a second call started another shutdown")
        await fulfillment(of: [told], timeout: 10)
        try await done.get(within: 10)
        XCTAssertGreaterThanOrEqual(Deadline.now() - started, .milliseconds(300), "the ignoring connection was not given its grace period")
        XCTAssertEqual(quiescing.openConnections, 0)

        // The obedient ones said goodbye; every client sees the end of its stream.
        let replies = clients.map { String(decoding: $0.read(3), as: UTF8.self) }
        XCTAssertEqual(replies.filter { $0 == "bye" }.count, 2)
        for client in clients { XCTAssertEqual(client.read(1, within: 10), []) }
        XCTAssertThrowsError(try RawClient.connect(port: port), "the server still accepts")
        for client in clients { client.close() }
        try await group.shutdownGracefully()
    }

    func testAConnectionTrackedAfterTheShutdownBeganIsClosedAtOnce() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let quiescing = ServerQuiescingHelper()
        let server = try await ServerBootstrap(group: group).bind(to: .loopbackV4(port: 0)).get(within: 10)
        try await quiescing.shutdown(server: server, gracePeriod: .seconds(5)).get(within: 10)

        // A second listener stands in for one still accepting while the first was closing.
        let other = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in quiescing.track(channel) }
            .bind(to: .loopbackV4(port: 0)).get(within: 10)
        let client = try RawClient.connect(port: try XCTUnwrap(other.localAddress?.port))
        XCTAssertEqual(client.read(1, within: 10), [], "the late connection was not closed")
        XCTAssertEqual(quiescing.openConnections, 0)
        client.close()
        try await other.close().get(within: 10)
        try await group.shutdownGracefully()
    }
}
