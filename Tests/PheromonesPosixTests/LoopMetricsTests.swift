import CoreMetrics
import MetricsTestKit
import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

/// The core's metrics, through swift-metrics: connections accepted, active and closed (with a
/// reason), bytes in and out, and the loop's lag. Loopback, port 0, bounded waits.
final class LoopMetricsTests: XCTestCase {
    private let loop0 = [("loop", "0")]

    func testConnectionsBytesAndClosesAreCountedPerLoopWithTheirReason() async throws {
        let metrics = TestMetrics()
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1, metricsFactory: metrics, lagSamplingInterval: .milliseconds(5))
        let closed = XCTestExpectation(description: "both server connections closed")
        closed.expectedFulfillmentCount = 2
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.closeFuture.whenComplete { _ in closed.fulfill() }
                try channel.pipeline.addHandler(EchoingHandler())
            }
            .bind(to: .loopbackV4(port: 0)).get(within: 10)
        let port = try XCTUnwrap(server.localAddress?.port)

        // One client sends 100 bytes, reads them back and closes; another resets.
        let polite = try RawClient.connect(port: port)
        try polite.write(Array(repeating: 7, count: 100))
        XCTAssertEqual(polite.read(100).count, 100)
        let rude = try RawClient.connect(port: port)
        try rude.write([1])
        XCTAssertEqual(rude.read(1).count, 1)
        polite.close()
        rude.reset()
        await fulfillment(of: [closed], timeout: 10)
        try await server.close().get(within: 10)
        // A turn of the loop, for the close to be counted before reading the figures.
        try await group.nextLoop().submit {}.get(within: 10)

        XCTAssertEqual(try metrics.expectCounter("pheromones_connections_accepted_total", loop0).totalValue, 2)
        XCTAssertEqual(try metrics.expectMeter("pheromones_connections_active", loop0).lastValue, 0)
        XCTAssertEqual(try metrics.expectCounter("pheromones_connections_closed_total", loop0 + [("reason", "closed")]).totalValue, 1)
        XCTAssertEqual(try metrics.expectCounter("pheromones_connections_closed_total", loop0 + [("reason", "reset")]).totalValue, 1)
        XCTAssertEqual(try metrics.expectCounter("pheromones_bytes_received_total", loop0).totalValue, 101)
        XCTAssertEqual(try metrics.expectCounter("pheromones_bytes_sent_total", loop0).totalValue, 101)
        // The lag is sampled every 5 ms here (every second by default).
        let lag = XCTestExpectation(description: "the loop measured its lag")
        for _ in 0..<200 {
            if let timer = try? metrics.expectTimer("pheromones_loop_lag_seconds", loop0), !timer.values.isEmpty {
                lag.fulfill()
                break
            }
            try await group.nextLoop().scheduleTask(in: .milliseconds(5)) {}.futureResult.get(within: 10)
        }
        await fulfillment(of: [lag], timeout: 1)
        try await group.shutdownGracefully()
    }

    func testWithoutAFactoryNothingIsCounted() throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.syncShutdownGracefully() }
        XCTAssertNil(group.nextLoop().metrics)
    }
}
