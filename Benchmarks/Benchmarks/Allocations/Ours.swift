import Pheromones

/// Our echo server (one loop), as the echo example builds it, counting closed connections.
final class PheromonesEchoServer: LoopbackEchoServer {
    private var group: MultiThreadedEventLoopGroup?
    private var server: ServerSocketChannel?

    func start(counting closed: ClosedConnections) async throws -> Int {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoHandler(closed: closed)) }
            .bind(host: "127.0.0.1", port: 0)
        self.group = group
        self.server = server
        return server.localAddress?.port ?? 0
    }

    func stop() async throws {
        try await server?.close().get()
        try await group?.shutdownGracefully()
        server = nil
        group = nil
    }
}

private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let closed: ClosedConnections

    init(closed: ClosedConnections) { self.closed = closed }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.write(data) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        closed.increment()
        context.fireChannelInactive()
    }
}
