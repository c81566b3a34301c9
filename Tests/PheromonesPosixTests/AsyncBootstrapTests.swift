import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// Bootstraps that hand out what their initializers made: a client's `AsyncChannel` set up before
/// the first byte (so a server's greeting is never lost), and a server's connections as an
/// `AsyncSequence`, bounded. Loopback, port 0, bounded waits.
final class AsyncBootstrapTests: XCTestCase {
    /// Greets each connection as soon as it is active, then echoes.
    private final class Greeter: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(ByteBuffer(string: "hello\n"), promise: nil)
            context.fireChannelActive()
        }
        func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.writeAndFlush(data, promise: nil) }
    }

    func testAClientsAsyncChannelMadeInTheInitializerSeesTheGreetingTheServerSendsAtOnce() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(Greeter()) }
            .bind(to: .loopbackV4(port: 0)).get(within: 10)
        // Many times: a wrapper added after `connect` returns would miss the greeting now and then.
        for _ in 0..<50 {
            let connection = try await ClientBootstrap(group: group).connect(to: try XCTUnwrap(server.localAddress)) { channel in
                try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
            }
            var messages = connection.inbound.makeAsyncIterator()
            let greeting = try await messages.next()
            XCTAssertEqual(greeting.map { String(buffer: $0) }, "hello\n")
            try await connection.channel.close().get(within: 10)
        }
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAServersConnectionsArriveThroughForAwaitAndEachIsServedByItsOwnTask() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await ServerBootstrap(group: group).bind(to: .loopbackV4(port: 0)) { channel in
            try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
        }
        let serving = Task {
            var served = 0
            for await connection in server {
                served += 1
                Task {
                    for try await message in connection.inbound { try await connection.outbound.write(message) }
                }
            }
            return served
        }
        let port = try XCTUnwrap(server.localAddress?.port)
        let clients = try (0..<3).map { _ in try RawClient.connect(port: port) }
        for (index, client) in clients.enumerated() {
            try client.write(Array("client \(index)".utf8))
            XCTAssertEqual(String(decoding: client.read(8), as: UTF8.self), "client \(index)")
        }
        for client in clients { client.close() }
        try await server.close()
        let served = await serving.value
        XCTAssertEqual(served, 3, "the sequence did not end with the server, or missed a connection")
        try await group.shutdownGracefully()
    }

    func testConnectionsNobodyTakesAreBoundedAndThoseBeyondTheBoundAreClosedAtOnce() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group).bind(to: .loopbackV4(port: 0), maximumPendingConnections: 2) { channel in
            channel
        }
        let port = try XCTUnwrap(server.localAddress?.port)
        let clients = try (0..<4).map { _ in try RawClient.connect(port: port) }
        // The two beyond the bound are closed: their clients see the end of the stream.
        XCTAssertEqual(clients[2].read(1, within: 10), [])
        XCTAssertEqual(clients[3].read(1, within: 10), [])
        var connections = server.makeAsyncIterator()
        // The two within it wait, open, for someone to take them.
        let first = await connections.next()
        let second = await connections.next()
        XCTAssertEqual(first?.isActive, true)
        XCTAssertEqual(second?.isActive, true)
        try await server.close()
        let end = await connections.next()
        XCTAssertNil(end, "the sequence went on after the server closed")
        for client in clients { client.close() }
        try await group.shutdownGracefully()
    }
}
