import Pheromones
import XCTest

// Guide, "Framing". Loopback, port 0, or the embedded channel; bounded waits.

/// Reads big-endian 32-bit numbers.
struct NumberDecoder: ByteToMessageDecoder {
    typealias InboundOut = UInt32

    mutating func decode(buffer: inout ByteBuffer) -> UInt32? {
        buffer.readInteger(as: UInt32.self)  // nil, consuming nothing, until 4 bytes are there
    }
}

/// Writes them.
struct NumberEncoder: MessageToByteEncoder {
    typealias OutboundIn = UInt32

    func encode(data: UInt32, out: inout ByteBuffer) {
        out.writeInteger(data)
    }
}

/// Answers each number with its double: typed messages in and out, no bytes in sight.
final class Doubler: ChannelInboundHandler {
    typealias InboundIn = UInt32
    typealias OutboundOut = UInt32

    func channelRead(context: ChannelHandlerContext, data: UInt32) {
        context.writeAndFlush(data &* 2, promise: nil)
    }
}

final class FramingTests: XCTestCase {
    func testALineServerAnswersEachLineWhicheverEndingItHas() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandlers([
                        ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 1024)),  // bytes -> lines
                        LineToString(),                                                        // lines -> Strings
                        CommandHandler(),
                    ])
                }
                .bind(host: "127.0.0.1", port: 0)

            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("ls\r\nquit\n")
            let answers = try await client.receive(28)
            XCTAssertEqual(answers, "you said: ls\nyou said: quit\n")
            try await client.close()
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }

    func testALineLongerThanTheMaximumClosesTheConnection() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandlers([
                        ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 8)), LineToString(), CommandHandler(),
                    ])
                }
                .bind(host: "127.0.0.1", port: 0)
            let client = try await TestClient.connect(to: server.localAddress, group: group)
            try await client.send("this line is too long\n")
            let answer = try await client.receiveUntilClosed()
            XCTAssertEqual(answer, "")
            try await server.close().get()
            try await group.shutdownGracefully()
        }
    }

    func testTheLengthFieldFramerDeliversWholeFramesAndPrefixesWhatIsWritten() throws {
        let channel = try EmbeddedChannel(handlers: LengthFieldFramer.handlers(maximumFrameLength: 1 << 20) + [EchoHandler()])
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 2, 0x68]))   // half a frame: nothing yet
        try channel.writeInbound(ByteBuffer(bytes: [0x69]))               // the frame "hi" is whole
        let reply = try channel.readOutbound(as: ByteBuffer.self)         // the echo, framed again

        XCTAssertEqual(reply, ByteBuffer(bytes: [0, 0, 0, 2, 0x68, 0x69]))
    }

    func testTheFixedLengthDecoderFiresWholeFramesOnly() throws {
        let channel = try EmbeddedChannel(handlers: [ByteToMessageHandler(FixedLengthFrameDecoder(frameLength: 4))])
        try channel.writeInbound(ByteBuffer(string: "abcdef"))
        let frame = try channel.readInbound(as: ByteBuffer.self)  // "abcd"; "ef" waits for two more bytes

        XCTAssertEqual(frame, ByteBuffer(string: "abcd"))
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
    }

    func testACustomDecoderAndEncoderCarryTypedMessagesThroughThePipeline() throws {
        let channel = try EmbeddedChannel(handlers: [
            ByteToMessageHandler(NumberDecoder()),   // ByteBuffer -> UInt32
            MessageToByteHandler(NumberEncoder()),   // UInt32 -> ByteBuffer, on the way out
            Doubler(),                               // reads and writes UInt32
        ])
        try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 21]))
        let reply = try channel.readOutbound(as: ByteBuffer.self)   // [0, 0, 0, 42]

        XCTAssertEqual(reply, ByteBuffer(bytes: [0, 0, 0, 42]))
    }

    func testTheCustomDecoderPassesTheVerifierHoweverItsInputIsSplit() throws {
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [
            (ByteBuffer(bytes: [0, 0, 0, 1]), [1]),
            (ByteBuffer(bytes: [0, 0, 1, 0, 0, 0, 0, 2]), [256, 2]),
        ]) { NumberDecoder() }
    }
}
