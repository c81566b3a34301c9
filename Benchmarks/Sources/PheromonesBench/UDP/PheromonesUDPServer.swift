import Pheromones

/// Our datagram echo server, built as `pheromones-echo --udp` builds it: one ``DatagramChannel``
/// with the defaults (batches of 32 datagrams per `recvmmsg`/`sendmmsg`, 2 KiB slots, runs of
/// replies to one sender leaving as one `UDP_SEGMENT` send where the kernel has it), answering
/// each datagram to its sender, flushing once per read batch. Without `segmentationOffload` (the
/// scenario's `--no-gso`), one send entry per datagram.
enum PheromonesUDPServer {
    static func serve(host: String, port: Int, segmentationOffload: Bool = true) async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var options = DatagramOptions()
        options.segmentationOffload = segmentationOffload
        let channel = try await DatagramBootstrap(group: group)
            .options(options)
            .channelInitializer { channel in try channel.pipeline.addHandler(DatagramEchoHandler()) }
            .bind(host: host, port: port)
        UDPReadyLine.print(.pheromones, host: host, port: channel.localAddress?.port ?? port)
        await Termination.wait()
        try await channel.close().get()
        try await group.shutdownGracefully()
    }
}

/// Sends every datagram back to its sender; flushes once per read batch.
private final class DatagramEchoHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    func channelRead(context: ChannelHandlerContext, data: AddressedEnvelope<ByteBuffer>) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}
