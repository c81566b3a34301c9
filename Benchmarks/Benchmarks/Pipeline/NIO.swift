import NIOCore
import NIOEmbedded

/// NIO's embedded channel with `passThroughHandlers` forwarding stages and a counting sink.
final class NIOPipeline {
    private let channel: EmbeddedChannel
    private let sink = Sink()
    private let message = ByteBuffer(repeating: 0x61, count: 64)

    init(passThroughHandlers: Int) throws {
        let stages: [any ChannelHandler] = (0..<passThroughHandlers).map { _ in PassThrough() }
        channel = EmbeddedChannel(handlers: stages + [sink])
    }

    /// Fires `count` reads from the head, as NIO's own channels do; returns how many reached the sink.
    func fireReads(_ count: Int) -> Int {
        let before = sink.count
        let pipeline = channel.pipeline.syncOperations
        for _ in 0..<count { pipeline.fireChannelRead(NIOAny(message)) }
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        count &+= unwrapInboundIn(data).readableBytes > 0 ? 1 : 0
    }
}
