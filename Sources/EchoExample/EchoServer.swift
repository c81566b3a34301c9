import Glibc
import ArgumentParser
import Logging
import Pheromones
import PheromonesServiceLifecycle
import PheromonesTLS
import ServiceLifecycle

/// `pheromones-echo`: the echo server of the README, on the Pheromones reactor.
@main
struct EchoServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pheromones-echo",
        abstract: "An echo server on the Pheromones reactor: raw echo, or 4-byte length-framed request/response.")

    /// The most loops `--loops` accepts: one thread each, and far more than cores is only waste.
    static let maximumLoops = 256
    /// The largest `--max-frame-length`: a whole frame (4-byte header and payload) must fit the
    /// 4-byte length field and a ``ByteBuffer``.
    static let maximumFrameLengthLimit = Int(UInt32.max) - 4

    @Option(help: "The TCP port to listen on, 0...65535 (0: any free port).")
    var port: Int = 9000

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "echo: write back every byte; framed: answer each length-prefixed frame with the same payload.")
    var proto: EchoProtocol = .echo

    @Option(help: "The number of event loops (threads), 1...\(maximumLoops).")
    var loops: Int = 1

    @Flag(help: "With several loops: one SO_REUSEPORT listener per loop instead of one listener handing connections out round robin.")
    var listenerPerLoop = false

    @Option(help: "framed: the largest frame accepted, in bytes, 0...\(maximumFrameLengthLimit) (larger ones close the connection).")
    var maxFrameLength: Int = 16 << 20

    @Option(help: "Serve TLS with this PEM certificate chain (leaf first); needs --tls-key.")
    var tlsCert: String?

    @Option(help: "The PEM private key of --tls-cert.")
    var tlsKey: String?

    @Flag(help: "Echo UDP datagrams instead (on the same host and port): each goes back to its sender. Not with --tls-cert or --proto framed.")
    var udp = false

    @Option(help: "On SIGTERM or SIGINT: how long open connections may take to finish, in seconds (0...3600), before they are closed.")
    var gracePeriod: Int = 10

    /// Rejects out-of-range numbers as usage errors (exit status 64), before anything starts.
    func validate() throws {
        guard (0...65535).contains(port) else {
            throw ValidationError("--port must be between 0 and 65535, not \(port).")
        }
        guard (1...Self.maximumLoops).contains(loops) else {
            throw ValidationError("--loops must be between 1 and \(Self.maximumLoops), not \(loops).")
        }
        guard (0...Self.maximumFrameLengthLimit).contains(maxFrameLength) else {
            throw ValidationError("--max-frame-length must be between 0 and \(Self.maximumFrameLengthLimit), not \(maxFrameLength).")
        }
        guard (0...3600).contains(gracePeriod) else {
            throw ValidationError("--grace-period must be between 0 and 3600, not \(gracePeriod).")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together.")
        }
        guard !udp || (tlsCert == nil && proto == .echo) else {
            throw ValidationError("--udp echoes datagrams as they are: no --tls-cert, no --proto framed.")
        }
    }

    /// The TLS context of `--tls-cert` and `--tls-key`, if given; a file that cannot be used is a
    /// usage error.
    func tlsContext() throws -> TLSContext? {
        guard let tlsCert, let tlsKey else { return nil }
        do {
            let identity = try TLSIdentity(certificateChainFile: tlsCert, privateKeyFile: tlsKey)
            return try TLSContext(configuration: .makeServerConfiguration(identity: identity))
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully: stops accepting, tells every
    /// connection to finish (each closes its output once its answers are sent), and closes what is
    /// left after `--grace-period`.
    mutating func run() async throws {
        if udp { return try await runDatagramEcho() }
        let tls = try tlsContext()
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let proto = proto, maxFrameLength = maxFrameLength
        var serverOptions = ServerSocketOptions()
        serverOptions.listenerPerLoop = listenerPerLoop
        let quiescing = ServerQuiescingHelper()
        let server = try await ServerBootstrap(group: group)
            .serverOptions(serverOptions)
            .childOptions(EchoProtocol.connectionOptions)
            .childChannelInitializer { channel in
                quiescing.track(channel)
                try channel.pipeline.addHandlers(proto.handlers(maximumFrameLength: maxFrameLength, tls: tls))
            }
            .bind(host: host, port: port)
        // Written with write(2), not print: through a pipe stdout is block-buffered, and a parent
        // waiting for this ready line must see it now rather than at exit.
        let ready = "pheromones-echo: \(proto.rawValue)\(tls == nil ? "" : " over TLS") on \(server.localAddress.map { "\($0)" } ?? "?") with \(loops) loop(s)\n"
        _ = ready.utf8CString.withUnsafeBufferPointer { write(STDOUT_FILENO, $0.baseAddress, $0.count - 1) }
        let service = ServerService(server: server, quiescing: quiescing, gracePeriod: .seconds(Int64(gracePeriod)))
        let services = ServiceGroup(
            services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "pheromones-echo"))
        try await services.run()
        try await group.shutdownGracefully()
    }

    /// `--udp`: one datagram channel echoing until SIGTERM or SIGINT.
    private func runDatagramEcho() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let service = try await DatagramEchoService.bind(host: host, port: port, group: group)
        let ready = "pheromones-echo: udp echo on \(service.channel.localAddress.map { "\($0)" } ?? "?")\n"
        _ = ready.utf8CString.withUnsafeBufferPointer { write(STDOUT_FILENO, $0.baseAddress, $0.count - 1) }
        let services = ServiceGroup(
            services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "pheromones-echo"))
        try await services.run()
        try await group.shutdownGracefully()
    }
}
