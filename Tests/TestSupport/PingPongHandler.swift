import PheromonesCore

/// Sends a message, waits for all of it to come back, and repeats, `roundTrips` times; all on the
/// loop (the next ping is written from `channelRead`), so that a test thread waiting for the end
/// does nothing meanwhile.
public final class PingPongHandler: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private let message: ByteBuffer
    private var context: ChannelHandlerContext?
    private var remaining = 0
    private var received = 0
    private var done: Promise<Void>?

    /// A stage that pings with `messageSize` bytes.
    public init(messageSize: Int) {
        message = ByteBuffer(repeating: 0x50, count: messageSize)
    }

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    public func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Starts `roundTrips` round trips (on the loop); the future completes after the last, or fails
    /// at once when the stage is not in a pipeline.
    public func start(roundTrips: Int, on loop: any EventLoop) -> Future<Void> {
        guard let context else { return loop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        let promise = loop.makePromise(of: Void.self)
        done = promise
        remaining = roundTrips
        received = 0
        context.writeAndFlush(message, promise: nil)
        return promise.futureResult
    }

    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        received += data.readableBytes
        guard received >= message.readableBytes else { return }
        received -= message.readableBytes
        remaining -= 1
        if remaining > 0 {
            context.writeAndFlush(message, promise: nil)
        } else {
            done?.succeed()
            done = nil
        }
    }
}
