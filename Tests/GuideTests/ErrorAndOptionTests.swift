import Glibc
import Pheromones
import XCTest

// Guide, "Errors" and "Socket options". Loopback, port 0, or the embedded channel; bounded waits.

/// Says why a connection could not be made, from the error's case.
func explain(_ error: any Error) -> String {
    switch error {
    case ChannelError.connectionRefused(let address): return "nothing listens on \(address)"
    case ChannelError.connectTimeout(let address, let timeout): return "\(address) did not answer within \(timeout)"
    case ChannelError.unreachable(let address): return "no route to \(address)"
    default: return "\(error)"
    }
}

/// The last stage: logs what no stage before it handled, and closes the connection.
final class CloseOnError: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        print("closing \(context.channel.remoteAddress.map { "\($0)" } ?? "?"): \(error)")
        context.close(promise: nil)
    }
}

/// Keeps its context, as a handler that writes later (from a timer, say) does.
final class LateWriter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
}

final class ErrorAndOptionTests: XCTestCase {
    func testARefusedConnectionFailsWithATypedError() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let port = try await closedPort(group: group)

            do {
                _ = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port)
                XCTFail("connected to a closed port")
            } catch {
                XCTAssertTrue(explain(error).hasPrefix("nothing listens on 127.0.0.1:"), explain(error))
            }
            try await group.shutdownGracefully()
        }
    }

    func testAnErrorAHandlerFiresReachesTheLastStageWhichClosesTheConnection() throws {
        struct Oops: Error {}
        let channel = try EmbeddedChannel(handlers: [CloseOnError()])
        channel.connect()
        channel.pipeline.fireErrorCaught(Oops())
        XCTAssertFalse(channel.isActive)
    }

    func testAWriteThroughAContextKeptPastTheCloseFailsWithATypedError() throws {
        let writer = LateWriter()
        let channel = try EmbeddedChannel(handler: writer)
        channel.connect()
        _ = channel.close()
        channel.loop.run()

        let late = channel.eventLoop.makePromise(of: Void.self)
        writer.context?.write(ByteBuffer(string: "too late"), promise: late)  // fails, never traps

        XCTAssertThrowsError(try late.futureResult.resultIfAvailable?.get()) { error in
            XCTAssertEqual(error as? ChannelError, .ioOnClosedChannel)
        }
    }

    func testOptionsSetByTheBootstrapAndOnALiveChannelReadBack() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await ServerBootstrap(group: group)
                .childSocketOption(.keepAlive, true)
                .childSocketOption(.keepAliveIdle, .seconds(60))
                .childSocketOption(.tcpUserTimeout, .seconds(30))
                .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoHandler()) }
                .bind(host: "127.0.0.1", port: 0)
            let port = try XCTUnwrap(server.localAddress?.port)

            let channel = try await ClientBootstrap(group: group)
                .socketOption(.keepAlive, true)
                .connect(host: "127.0.0.1", port: port)
            try await channel.setSocketOption(.keepAliveIdle, to: .seconds(120)).get()
            let idle = try await channel.socketOption(.keepAliveIdle).get()          // 120 s
            let raw = try await channel.socketOption(.raw(level: SOL_SOCKET, name: SO_KEEPALIVE)).get()  // a C int's bytes
            try await channel.setSocketOption(.linger, to: Linger(timeout: .zero)).get()  // close will reset

            XCTAssertEqual(idle, .seconds(120))
            XCTAssertEqual(raw.count, MemoryLayout<CInt>.size)
            XCTAssertNotEqual(raw, [0, 0, 0, 0])
            try await channel.close().get()
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }
}
