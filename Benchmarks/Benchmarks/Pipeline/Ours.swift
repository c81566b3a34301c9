import Pheromones

/// An embedded channel with `passThroughHandlers` forwarding stages and a counting sink.
final class PheromonesPipeline {
    private let channel: EmbeddedChannel
    private let sink = Sink()
    private let message = ByteBuffer(repeating: 0x61, count: 64)

    init(passThroughHandlers: Int) throws {
        let stages: [any ChannelHandler] = (0..<passThroughHandlers).map { _ in PassThrough() }
        channel = try EmbeddedChannel(handlers: stages + [sink])
    }

    /// Fires `count` reads from the head; returns how many reached the sink.
    func fireReads(_ count: Int) -> Int {
        let before = sink.count
        for _ in 0..<count { channel.pipeline.fireChannelRead(message) }
        return sink.count - before
    }
}

private final class PassThrough: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
}

private final class Sink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var count = 0

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        count &+= data.readableBytes > 0 ? 1 : 0
    }
}
