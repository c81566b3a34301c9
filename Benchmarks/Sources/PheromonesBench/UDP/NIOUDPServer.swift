import NIOCore
import NIOPosix

/// SwiftNIO's datagram echo server, written as NIO's own UDP echo example is, and given NIO's
/// batched I/O at its best: vector reads of 32 datagrams (`datagramVectorReadMessageCount`, which
/// uses `recvmmsg`) into a 64 KiB buffer split in 2 KiB slots, as ours; NIO sends flushed
/// datagrams with `sendmmsg` by itself.
enum NIOUDPServer {
    static func serve(host: String, port: Int) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let channel = try await DatagramBootstrap(group: group)
            .channelOption(.datagramVectorReadMessageCount, value: 32)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 32 * 2048))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DatagramEchoHandler()) }
            }
            .bind(host: host, port: port)
            .get()
        UDPReadyLine.print(.nio, host: host, port: channel.localAddress?.port ?? port)
        await Termination.wait()
        try await channel.close()
        try await group.shutdownGracefully()
    }
}

/// Sends every datagram back to its sender; flushes once per read batch.
private final class DatagramEchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}
