import NIOCore
import NIOPosix

/// NIO's echo server (one loop), as NIO's echo example builds it, counting closed connections.
final class NIOEchoServer: LoopbackEchoServer {
    private var group: MultiThreadedEventLoopGroup?
    private var server: (any Channel)?

    func start(counting closed: ClosedConnections) async throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(EchoHandler(closed: closed))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator())
            .bind(host: "127.0.0.1", port: 0).get()
        self.group = group
        self.server = server
        return server.localAddress?.port ?? 0
    }

    func stop() async throws {
        try await server?.close()
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.write(data, promise: nil) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    func channelInactive(context: ChannelHandlerContext) {
        closed.increment()
        context.fireChannelInactive()
    }
}
