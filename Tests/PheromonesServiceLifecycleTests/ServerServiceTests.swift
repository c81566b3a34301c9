import Logging
import Pheromones
import PheromonesP2P
import PheromonesServiceLifecycle
import ServiceLifecycle
import XCTest

/// A server run by a `ServiceGroup`: a graceful shutdown quiesces it (connections are told and
/// finish), a cancellation closes everything at once, and `run` returns in both cases.
final class ServerServiceTests: XCTestCase {
    /// Answers "bye" and closes when told to quiesce; records that it was told.
    private final class Goodbye: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let told: XCTestExpectation?
        init(told: XCTestExpectation?) { self.told = told }

        func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
            told?.fulfill()
            context.writeAndFlush(ByteBuffer(string: "bye"), promise: nil)
            context.close(promise: nil)
        }
    }

    /// Collects what a client receives, and fulfils `closed` when its connection ends.
    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = LockedBytes()
        let closed = XCTestExpectation(description: "the client's connection closed")

        func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { received.append(data) }
        func channelInactive(context: ChannelHandlerContext) { closed.fulfill() }
    }

    private final class LockedBytes: Sendable {
        private let bytes = LockedValue<[UInt8]>([])
        func append(_ buffer: ByteBuffer) { bytes.withLock { $0 += buffer.readableBytesView } }
        var text: String { bytes.withLock { String(decoding: $0, as: UTF8.self) } }
    }

    /// A server whose connections say goodbye when told to quiesce; `accepted` is fulfilled once
    /// one is tracked.
    private func startServer(group: MultiThreadedEventLoopGroup, told: XCTestExpectation?, accepted: XCTestExpectation) async throws
        -> (ServerSocketChannel, ServerQuiescingHelper)
    {
        let quiescing = ServerQuiescingHelper()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                quiescing.track(channel)
                try channel.pipeline.addHandler(Goodbye(told: told))
                accepted.fulfill()
            }
            .bind(host: "127.0.0.1", port: 0)
        return (server, quiescing)
    }

    private func connect(to server: ServerSocketChannel, group: MultiThreadedEventLoopGroup) async throws -> Collector {
        let collector = Collector()
        _ = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(collector) }
            .connect(to: try XCTUnwrap(server.localAddress)).get()
        return collector
    }

    func testAGracefulShutdownOfTheGroupTellsTheConnectionsWaitsForThemAndStopsTheServer() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let told = XCTestExpectation(description: "the connection was told to quiesce")
        let accepted = XCTestExpectation(description: "the connection was accepted")
        let (server, quiescing) = try await startServer(group: group, told: told, accepted: accepted)
        let client = try await connect(to: server, group: group)
        await fulfillment(of: [accepted], timeout: 10)
        let services = ServiceGroup(services: [ServerService(server: server, quiescing: quiescing, gracePeriod: .seconds(10))],
                                    logger: Logger(label: "test"))
        let running = Task { try await services.run() }

        await services.triggerGracefulShutdown()
        await fulfillment(of: [told, client.closed], timeout: 10)
        await finishes(running)
        XCTAssertEqual(client.received.text, "bye")
        XCTAssertFalse(server.isActive, "the server still listens")
        try await group.shutdownGracefully()
    }

    func testCancellingTheServiceClosesEveryConnectionAtOnceWithoutWaitingForTheGracePeriod() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let accepted = XCTestExpectation(description: "the connection was accepted")
        let (server, quiescing) = try await startServer(group: group, told: nil, accepted: accepted)
        let client = try await connect(to: server, group: group)
        await fulfillment(of: [accepted], timeout: 10)
        let service = ServerService(server: server, quiescing: quiescing, gracePeriod: .seconds(600))
        let running = Task { try await service.run() }
        running.cancel()
        await fulfillment(of: [client.closed], timeout: 10)
        await finishes(running)
        XCTAssertEqual(quiescing.openConnections, 0)
        try await group.shutdownGracefully()
    }

    /// Waits, for at most 10 s, for `task` to return (a test that fails must not hang).
    private func finishes(_ task: Task<Void, any Error>) async {
        let returned = XCTestExpectation(description: "run returned")
        Task {
            _ = try? await task.value
            returned.fulfill()
        }
        await fulfillment(of: [returned], timeout: 10)
    }
}

/// A P2P node run by a `ServiceGroup` shuts down with the group.
final class NodeServiceTests: XCTestCase {
    /// Answers nothing.
    private final class Silent: PeerProtocol {
        func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? { nil }
    }

    func testANodeInAServiceGroupShutsDownWhenTheGroupShutsDownGracefully() async throws {
        let node = try Node(configuration: Node.Configuration(name: "served"), protocol: Silent())
        _ = try await node.listen(on: .loopbackV4(port: 0))
        let services = ServiceGroup(services: [NodeService(node: node)], logger: Logger(label: "test"))
        let running = Task { try await services.run() }
        await services.triggerGracefulShutdown()
        let returned = XCTestExpectation(description: "the group returned")
        Task {
            _ = try? await running.value
            returned.fulfill()
        }
        await fulfillment(of: [returned], timeout: 10)
        do {
            _ = try await node.dispatch(to: "anyone", Envelope(name: "served", operation: "ping"))
            XCTFail("the node still runs")
        } catch {
            XCTAssertEqual(error as? P2PError, .nodeShutDown)
        }
    }
}
