import PheromonesCore

/// Sends every datagram back to its sender, flushing at the end of each read batch.
public final class DatagramEchoHandler: ChannelInboundHandler {
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>
    public typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    /// An echo stage.
    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: AddressedEnvelope<ByteBuffer>) { context.write(data, promise: nil) }
    public func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}
