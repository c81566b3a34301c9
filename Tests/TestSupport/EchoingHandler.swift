import PheromonesCore

/// Writes back whatever it reads, flushing at the end of each read.
public final class EchoingHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// An echo stage.
    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.write(data, promise: nil) }
    public func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}
