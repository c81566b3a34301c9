import Pheromones

/// Our server, built exactly as `Sources/EchoExample/main.swift` builds it.
enum PheromonesServer {
    static func serve(_ settings: ServerSettings) async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: settings.loops)
        let proto = settings.proto
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                switch proto {
                case .echo:
                    try channel.pipeline.addHandler(EchoHandler())
                case .framed:
                    try channel.pipeline.addHandlers(
                        LengthFieldFramer.handlers(maximumFrameLength: ServerSettings.maximumFrameLength) + [FrameEchoHandler()])
                }
            }
            .bind(host: settings.host, port: settings.port)
        ReadyLine.print(.pheromones, settings, port: server.localAddress?.port ?? settings.port)
        await Termination.wait()
        try await server.close().get()
        try await group.shutdownGracefully()
    }
}

/// Writes back every byte it reads, flushing once per read batch.
private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

/// Answers each decoded frame with a frame carrying the same payload (the framer re-encodes it).
private final class FrameEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}
