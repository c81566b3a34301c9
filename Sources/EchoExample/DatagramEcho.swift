import Logging
import Pheromones
import ServiceLifecycle

/// `pheromones-echo --udp`: sends every datagram back to its sender, flushing once per read batch
/// (so one `sendmmsg` answers what one `recvmmsg` brought).
final class DatagramEchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: AddressedEnvelope<ByteBuffer>) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    /// A refused datagram (its sender's port closed, say) is that datagram's problem: the server goes on.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

/// The datagram echo server as a service: runs until its channel closes, and closes it on a
/// graceful shutdown (a datagram server has no connections to wait for).
struct DatagramEchoService: Service {
    let channel: DatagramChannel

    /// Binds a datagram echo channel to `host:port` on `group`.
    static func bind(host: String, port: Int, group: MultiThreadedEventLoopGroup) async throws -> DatagramEchoService {
        let channel = try await DatagramBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(DatagramEchoHandler()) }
            .bind(host: host, port: port)
        return DatagramEchoService(channel: channel)
    }

    func run() async throws {
        let channel = channel
        try await withGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onGracefulShutdown: {
            channel.close()
        }
    }
}
