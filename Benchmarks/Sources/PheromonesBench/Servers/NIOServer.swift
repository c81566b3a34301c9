import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL

/// SwiftNIO's server, written the way NIO's own echo example writes it: NIOPosix's
/// `ServerBootstrap`, `SO_REUSEADDR`, `TCP_NODELAY`, 16 messages per read with the adaptive receive
/// allocator, and a write per read with a flush on `channelReadComplete`. Framed: NIOExtras'
/// `LengthFieldBasedFrameDecoder` (in a `ByteToMessageHandler`) and `LengthFieldPrepender`.
///
/// The one departure from the example: the listen backlog is the system's `somaxconn`, as ours
/// uses, instead of the example's 256, so that the connection scenario compares servers rather
/// than backlogs.
///
/// With TLS, an `NIOSSLServerHandler` first, as NIOSSL's documentation sets one up, with NIOSSL's
/// default server configuration.
enum NIOServer {
    static func serve(_ settings: ServerSettings, backlog: Int32) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: settings.loops)
        let proto = settings.proto
        let tls = try settings.tls ? Self.sslContext() : nil
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try installHandlers(proto, on: channel.pipeline.syncOperations)
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator())
        let server = try await bootstrap.bind(host: settings.host, port: settings.port).get()
        ReadyLine.print(.nio, settings, port: server.localAddress?.port ?? settings.port)
        await Termination.wait()
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// The server context of ``BenchCertificates``, with NIOSSL's defaults.
    private static func sslContext() throws -> NIOSSLContext {
        let certificate = try NIOSSLCertificate(bytes: Array(BenchCertificates.serverCertificate.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(BenchCertificates.serverKey.utf8), format: .pem)
        return try NIOSSLContext(
            configuration: .makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
    }

    private static func installHandlers(_ proto: WireProtocol, on pipeline: ChannelPipeline.SynchronousOperations) throws {
        switch proto {
        case .echo:
            try pipeline.addHandler(EchoHandler())
        case .framed:
            try pipeline.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldBitLength: .fourBytes)))
            try pipeline.addHandler(LengthFieldPrepender(lengthFieldBitLength: .fourBytes))
            try pipeline.addHandler(FrameEchoHandler())
        }
    }
}

/// NIO's echo example handler.
private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Writes each decoded frame back (the prepender re-frames it), flushing per read batch.
private final class FrameEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(wrapOutboundOut(unwrapInboundIn(data)), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
