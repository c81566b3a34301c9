import CoreMetrics
import Logging
import MetricsTestKit
import Pheromones
import PheromonesServiceLifecycle
import ServiceLifecycle
import XCTest

// Guide, "Graceful shutdown" and "Metrics". Loopback, port 0, bounded waits.

/// Closes the connection when the server shuts down gracefully. An echo has nothing under way to
/// finish; a request handler would send the answer it is working on first.
final class CloseWhenQuiescing: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then quiesces it.
func makeServiceGroup(server: ServerSocketChannel, quiescing: ServerQuiescingHelper) -> ServiceGroup {
    ServiceGroup(configuration: .init(
        services: [ServerService(server: server, quiescing: quiescing, gracePeriod: .seconds(10))],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: Logger(label: "echo")))
}

/// Loops that report through `metrics` (the application's backend, or `MetricsSystem.factory`).
func makeGroup(metrics: any MetricsFactory) throws -> MultiThreadedEventLoopGroup {
    try MultiThreadedEventLoopGroup(numberOfThreads: 2, metricsFactory: metrics)
}

final class ShutdownAndMetricsTests: XCTestCase {
    func testQuiescingTellsEveryConnectionAndWaitsForThemToClose() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            let quiescing = ServerQuiescingHelper()
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    quiescing.track(channel)
                    try channel.pipeline.addHandlers([CloseWhenQuiescing(), EchoHandler()])
                }
                .bind(host: "127.0.0.1", port: 0)

            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("hi")
            let received1 = try await client.receive(2)
            XCTAssertEqual(received1, "hi")   // accepted and tracked by now
            XCTAssertEqual(quiescing.openConnections, 1)

            // Stop accepting, tell every connection, close those still open after 10 s:
            try await quiescing.shutdown(server: server, gracePeriod: .seconds(10)).get()

            let received2 = try await client.receiveUntilClosed()
            XCTAssertEqual(received2, "")
            XCTAssertEqual(quiescing.openConnections, 0)
            XCTAssertFalse(server.isActive)
            try await group.shutdownGracefully()
        }
    }

    func testAServiceGroupRunsTheServerUntilAGracefulShutdown() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let quiescing = ServerQuiescingHelper()
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    quiescing.track(channel)
                    try channel.pipeline.addHandlers([CloseWhenQuiescing(), EchoHandler()])
                }
                .bind(host: "127.0.0.1", port: 0)
            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("hi")
            let received3 = try await client.receive(2)
            XCTAssertEqual(received3, "hi")

            let services = makeServiceGroup(server: server, quiescing: quiescing)
            let running = Task { try await services.run() }
            await services.triggerGracefulShutdown()   // what SIGTERM does
            try await running.value
            let received4 = try await client.receiveUntilClosed()
            XCTAssertEqual(received4, "")
            XCTAssertFalse(server.isActive)
            try await group.shutdownGracefully()
        }
    }

    func testALoopGroupGivenAFactoryCountsItsConnections() async throws {
        try await bounded {
            let metrics = TestMetrics()
            let group = try makeGroup(metrics: metrics)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoHandler()) }
                .bind(host: "127.0.0.1", port: 0)
            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("hi")
            let received5 = try await client.receive(2)
            XCTAssertEqual(received5, "hi")

            let accepted = metrics.counters
                .filter { $0.label == "pheromones_connections_accepted_total" }
                .reduce(0) { $0 + $1.totalValue }
            XCTAssertEqual(accepted, 1)
            try await client.close()
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }
}
