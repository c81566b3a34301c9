import ArgumentParser
import Pheromones

/// Writes back every byte it reads, flushing once per read batch.
final class EchoHandler: ChannelInboundHandler {
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
final class FrameEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }
}

@main
struct EchoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pheromones-echo",
        abstract: "An echo server on the Pheromones reactor: raw echo, or 4-byte length-framed request/response.")

    enum Proto: String, ExpressibleByArgument, CaseIterable {
        case echo, framed
    }

    @Option(help: "The TCP port to listen on (0: any free port).")
    var port: Int = 9000

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "echo: write back every byte; framed: answer each length-prefixed frame with the same payload.")
    var proto: Proto = .echo

    @Option(help: "The number of event loops (threads).")
    var loops: Int = 1

    @Flag(help: "With several loops: one SO_REUSEPORT listener per loop instead of one listener handing connections out round robin.")
    var listenerPerLoop = false

    @Option(help: "framed: the largest frame accepted, in bytes (larger ones close the connection).")
    var maxFrameLength: Int = 16 << 20

    mutating func run() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let proto = proto, maxFrameLength = maxFrameLength
        var serverOptions = ServerSocketOptions()
        serverOptions.listenerPerLoop = listenerPerLoop
        let server = try await ServerBootstrap(group: group)
            .serverOptions(serverOptions)
            .childChannelInitializer { channel in
                switch proto {
                case .echo:
                    try channel.pipeline.addHandler(EchoHandler())
                case .framed:
                    try channel.pipeline.addHandlers(LengthFieldFramer.handlers(maximumFrameLength: maxFrameLength) + [FrameEchoHandler()])
                }
            }
            .bind(host: host, port: port)
        print("pheromones-echo: \(proto.rawValue) on \(server.localAddress.map { "\($0)" } ?? "?") with \(loops) loop(s)")
        await TerminationSignal.wait()
        try await server.close().get()
        try await group.shutdownGracefully()
    }
}
