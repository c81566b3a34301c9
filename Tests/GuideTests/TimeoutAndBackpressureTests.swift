import Pheromones
import XCTest

// Guide, "Timeouts" and "Backpressure". Loopback, port 0, or the embedded channel; bounded waits.

/// Closes a connection that has been quiet for the read timeout; passes everything else on.
final class CloseOnIdle: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer   // a pass-through stage: reads go on unchanged

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateEvent, idle == .read {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Echoes one message at a time: with auto-read off, the channel reads only when asked, and this
/// handler asks for the next read once the last reply has been sent.
final class OneAtATime: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        context.read()                                   // the first read
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        let sent = context.eventLoop.makePromise(of: Void.self)
        sent.futureResult.whenCompleteOnLoop { _ in context.read() }  // the next read, once sent
        context.writeAndFlush(data, promise: sent)
    }
}

final class TimeoutAndBackpressureTests: XCTestCase {
    func testAServerClosesAConnectionIdleForItsReadTimeout() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandlers([
                        ByteIdleStateHandler(readTimeout: .milliseconds(200)),  // next to the socket
                        CloseOnIdle(),
                        EchoHandler(),
                    ])
                }
                .bind(host: "127.0.0.1", port: 0)
            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("ping")
            let received = try await client.receiveUntilClosed()   // the echo, then the close
            XCTAssertEqual(received, "ping")
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }

    func testAScheduledTaskCancelledBeforeItRunsFailsItsFutureWithCancelled() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            let reminder = group.next().scheduleTask(in: .seconds(30)) { print("30 s have passed") }
            reminder.cancel()   // it had not run: its future fails with EventLoopError.cancelled

            do {
                try await reminder.futureResult.get()
                XCTFail("the task ran")
            } catch {
                XCTAssertEqual(error as? EventLoopError, .cancelled)
            }
            try await group.shutdownGracefully()
        }
    }

    func testAConnectionWithWaterMarksAndABackPressureHandlerEchoes() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            var options = SocketOptions()
            options.writeBufferWaterMark = WriteBufferWaterMark(low: 16 * 1024, high: 64 * 1024)
            let server = try await ServerBootstrap(group: group)
                .childOptions(options)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandlers([BackPressureHandler(), EchoHandler()])
                }
                .bind(host: "127.0.0.1", port: 0)

            let client = try await TestClient.connect(to: server.localAddress, group: group)
            let payload = String(repeating: "x", count: 200_000)
            try await client.send(payload)
            let echoed = try await client.receive(payload.utf8.count)
            XCTAssertEqual(echoed.utf8.count, payload.utf8.count)
            try await client.close()
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }

    func testTheBackPressureHandlerHoldsReadsWhileTheChannelIsUnwritable() throws {
        let channel = try EmbeddedChannel(handlers: [BackPressureHandler(), EchoHandler()])
        channel.setWritable(false)                // the peer stopped reading our replies
        channel.read()                            // the channel asks for more input...
        XCTAssertEqual(channel.readRequests, 0)   // ...and the handler holds the request
        channel.setWritable(true)                 // the replies drained below the low water mark
        XCTAssertEqual(channel.readRequests, 1)   // the held request goes through
    }

    func testWithAutoReadOffAHandlerReadsOnlyWhenItAsks() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            var options = SocketOptions()
            options.autoRead = false
            let server = try await ServerBootstrap(group: group)
                .childOptions(options)
                .childChannelInitializer { channel in try channel.pipeline.addHandler(OneAtATime()) }
                .bind(host: "127.0.0.1", port: 0)

            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("one")
            let received1 = try await client.receive(3)
            XCTAssertEqual(received1, "one")
            try await client.send("two")
            let received2 = try await client.receive(3)
            XCTAssertEqual(received2, "two")
            try await client.close()
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }
}
