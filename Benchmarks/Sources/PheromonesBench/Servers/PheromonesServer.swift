import Pheromones
import PheromonesNoise
import PheromonesTLS
import PheromonesTestSupport

/// Our server, built exactly as `Sources/EchoExample/EchoProtocol.swift` builds it: back pressure
/// next to the socket, half-closure allowed, the output closed once the peer has finished sending.
/// With TLS, a `TLSHandler` after the back pressure (half-closure allowed: a client's
/// `close_notify` ends its input), as the example's `--tls-cert` does. With Noise, a `NoiseHandler`
/// (responder, one identity and static key for the server) in the same place.
enum PheromonesServer {
    static func serve(_ settings: ServerSettings) async throws {
        let group = settings.metrics
            ? try MultiThreadedEventLoopGroup(numberOfThreads: settings.loops, metricsFactory: AtomicMetricsFactory())
            : try MultiThreadedEventLoopGroup(numberOfThreads: settings.loops)
        let proto = settings.proto
        let tls = try settings.tls ? Self.tlsContext() : nil
        let noise = try settings.noise ? NoiseConfiguration(identity: NodeIdentity()) : nil
        var options = SocketOptions()
        options.allowRemoteHalfClosure = true
        let server = try await ServerBootstrap(group: group)
            .childOptions(options)
            .childChannelInitializer { channel in
                switch proto {
                case .echo:
                    if let tls {
                        try channel.pipeline.addHandlers(
                            [BackPressureHandler(), try TLSHandler(serverWith: tls, allowRemoteHalfClosure: true), EchoHandler()])
                    } else if let noise {
                        try channel.pipeline.addHandlers([BackPressureHandler(), NoiseHandler(responderWith: noise), EchoHandler()])
                    } else {
                        try channel.pipeline.addHandlers([BackPressureHandler(), EchoHandler()])
                    }
                case .framed:
                    try channel.pipeline.addHandlers(
                        [BackPressureHandler()]
                            + LengthFieldFramer.handlers(maximumFrameLength: ServerSettings.maximumFrameLength) + [EchoHandler()])
                }
            }
            .bind(host: settings.host, port: settings.port)
        ReadyLine.print(.pheromones, settings, port: server.localAddress?.port ?? settings.port)
        await Termination.wait()
        try await server.close().get()
        try await group.shutdownGracefully()
    }

    /// The server context of ``BenchCertificates``, with PheromonesTLS's defaults.
    private static func tlsContext() throws -> TLSContext {
        let identity = TLSIdentity(
            certificateChain: try TLSCertificate.chain(pem: BenchCertificates.serverCertificate),
            privateKey: try TLSPrivateKey(pem: BenchCertificates.serverKey))
        return try TLSContext(configuration: .makeServerConfiguration(identity: identity))
    }
}

/// Writes back every message it reads, flushing once per read batch; closes its output once the
/// peer has finished sending (after what is queued has gone out).
private final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(mode: .output, promise: nil)
        }
    }
}
