import ArgumentParser
import CEpoll

/// Runs one server until SIGINT or SIGTERM, for the harness or an outside load generator.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run only a server (ours or SwiftNIO's) until SIGINT/SIGTERM.",
        discussion: "Prints '... listening on port P ...' once it accepts connections.")

    @Option(help: "pheromones or nio.")
    var impl: Implementation

    @Option(help: "echo: write back every byte; framed: answer each 4-byte length-prefixed frame with the same payload.")
    var proto: WireProtocol = .echo

    @Option(help: "The TCP port (0: any free port).")
    var port: Int = 9000

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Event loops (threads).")
    var loops: Int = 1

    @Flag(help: "Speak TLS (echo only), with the test-only certificate for localhost (ours: PheromonesTLS; nio: NIOSSL).")
    var tls = false

    @Flag(help: "Speak Noise (echo only, ours only): a NoiseHandler responder with a fresh identity first in the pipeline.")
    var noise = false

    @Flag(help: "Ours only: the loops report their metrics (connections, bytes, lag) to a backend that records into atomics, as a production one does: for the metrics' overhead.")
    var metrics = false

    func validate() throws {
        guard !noise || (proto == .echo && impl == .pheromones && !tls) else { throw ValidationError("--noise serves ours, echo, without --tls") }
        guard !metrics || impl == .pheromones else { throw ValidationError("--metrics is ours only") }
        guard loops > 0 else { throw ValidationError("--loops must be at least 1") }
        guard !tls || proto == .echo else { throw ValidationError("--tls serves the echo protocol only") }
    }

    func run() async throws {
        _ = cepoll_raise_open_files_limit()
        var settings = ServerSettings(proto: proto, host: host, port: port, loops: loops)
        settings.tls = tls
        settings.noise = noise
        settings.metrics = metrics
        switch impl {
        case .pheromones: try await PheromonesServer.serve(settings)
        case .nio: try await NIOServer.serve(settings, backlog: Self.systemBacklog)
        }
    }

    /// `net.core.somaxconn`, the backlog our bootstrap uses by default (4096 if unreadable).
    private static var systemBacklog: Int32 {
        ProcessStats.readFile("/proc/sys/net/core/somaxconn").flatMap { Int32($0.filter(\.isNumber)) } ?? 4096
    }
}
