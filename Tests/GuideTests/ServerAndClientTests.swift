import Pheromones
import XCTest

// Guide, "A TCP server" and "A client". Loopback, port 0, bounded waits.

/// Sends back every byte it reads.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer    // what the stage before it emits: here, the socket's bytes
    typealias OutboundOut = ByteBuffer  // what it writes toward the socket

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.write(data)             // queued...
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()                 // ...and sent, one writev per batch of reads
    }
}

/// Answers each command. It reads `String`s: some stage before it must emit them.
final class CommandHandler: ChannelInboundHandler {
    typealias InboundIn = String
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: String) {
        context.writeAndFlush(ByteBuffer(string: "you said: \(data)\n"), promise: nil)
    }
}

/// Turns each line (a `ByteBuffer`) into a `String`.
final class LineToString: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = String

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.fireChannelRead(String(buffer: data))
    }
}

final class ServerAndClientTests: XCTestCase {
    func testTheEchoServerSendsBackWhatAClientWritesAndShutsDown() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    // Runs on the connection's loop, before its first byte is read.
                    try channel.pipeline.addHandler(EchoHandler())
                }
                .bind(host: "127.0.0.1", port: 0)    // port 0: any free port
            let port = server.localAddress?.port       // the port it got

            XCTAssertNotNil(port)
            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("hello")
            let echoed = try await client.receive(5)
            XCTAssertEqual(echoed, "hello")
            try await client.close()

            try await server.close().get()       // stop listening (open connections stay open)
            try await group.shutdownGracefully()  // close every channel, join the loops' threads
        }
    }

    func testAPipelineWhoseStagesDoNotFitIsRejectedWhenItIsConfigured() throws {
        // CommandHandler reads String, but the line decoder emits ByteBuffer:
        XCTAssertThrowsError(try EmbeddedChannel(handlers: [
            ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 1024)),
            CommandHandler(),
        ])) { error in
            print(error)  // pipeline type mismatch: 'CommandHandler#1' reads String but
                          // 'ByteToMessageHandler<LineBasedFrameDecoder>#0' before it emits ByteBuffer
        }
        // With a stage that turns lines into Strings in between, it fits:
        let channel = try EmbeddedChannel(handlers: [
            ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 1024)),
            LineToString(),
            CommandHandler(),
        ])

        try channel.writeInbound(ByteBuffer(string: "ls\r\n"))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "you said: ls\n"))
        XCTAssertThrowsError(try EmbeddedChannel(handlers: [
            ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 1024)), CommandHandler(),
        ])) { error in
            XCTAssertEqual(
                error as? ChannelPipelineError,
                .typeMismatch("'CommandHandler#1' reads String but 'ByteToMessageHandler<LineBasedFrameDecoder>#0' before it emits ByteBuffer"))
        }
    }

    func testAClientsAsyncChannelMadeInTheInitializerWritesAndReadsTheEchoServer() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoHandler()) }
                .bind(host: "127.0.0.1", port: 0)
            let port = try XCTUnwrap(server.localAddress?.port)

            let connection = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .connect(host: "127.0.0.1", port: port) { channel in
                    // On the channel's loop, before it connects: no byte can arrive before the bridge.
                    try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
                }
            try await connection.outbound.write(ByteBuffer(string: "hello"))
            var replies = connection.inbound.makeAsyncIterator()
            let reply = try await replies.next()    // what the echo server sent back
            try await connection.channel.close().get()

            XCTAssertEqual(reply.map { String(buffer: $0) }, "hello")
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }
}
