import NIOCore
import NIOEmbedded
import NIOExtras

/// NIOExtras' `LengthFieldBasedFrameDecoder` in NIO's `ByteToMessageHandler`, fed one buffer of many frames.
final class NIOFrameDecoding {
    private let input: ByteBuffer
    private let expected: Int

    init(frames: Int, payloadLength: Int) {
        var input = ByteBuffer()
        input.reserveCapacity(frames * (4 + payloadLength))
        for _ in 0..<frames {
            input.writeInteger(UInt32(payloadLength))
            input.writeRepeatingByte(0x61, count: payloadLength)
        }
        self.input = input
        expected = frames
    }

    /// Decodes every frame through a fresh pipeline; returns how many reached the sink.
    func decodeAll() -> Int {
        let sink = FrameCounter()
        let decoder = ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes))
        let channel = EmbeddedChannel(handlers: [decoder, sink])
        guard (try? channel.writeInbound(input)) != nil, sink.frames == expected else {
            fatalError("NIO's decoder did not deliver \(expected) frames")
        }
        return sink.frames
    }
}

private final class FrameCounter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var frames = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        frames &+= unwrapInboundIn(data).readableBytes > 0 ? 1 : 0
    }
}
