import Dispatch
import Glibc

/// The two servers under comparison.
enum Implementation: String, Codable, Sendable, CaseIterable {
    case pheromones
    case nio
}

/// How a benchmark server is configured; the same for both implementations.
struct ServerSettings: Sendable {
    var proto: WireProtocol
    var host: String
    var port: Int
    var loops: Int
    /// Whether connections speak TLS (echo only), with ``BenchCertificates``' identity.
    var tls = false
    /// Whether connections speak Noise (echo, ours only): a `NoiseHandler` responder first.
    var noise = false
    /// Whether our loops report metrics (to `AtomicMetricsFactory`, which records into atomics).
    var metrics = false
    /// The largest frame the framed servers accept (ours: enforced; NIO's decoder has no limit).
    static let maximumFrameLength = 16 << 20
}

/// What a server prints once it listens; the harness reads the port from it.
enum ReadyLine {
    static let marker = "listening on port "

    static func print(_ implementation: Implementation, _ settings: ServerSettings, port: Int) {
        let server = "\(implementation.rawValue) \(settings.proto.rawValue)\(settings.tls ? " TLS" : "")\(settings.noise ? " Noise" : "") server"
        Swift.print("\(server) \(marker)\(port) (\(settings.host), \(settings.loops) loop(s))")
        fflush(nil)  // all streams: stdout is a pipe when the harness reads it
    }

    static func port(in line: String) -> Int? {
        guard let range = line.range(of: marker) else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }
}

/// Waiting for SIGINT or SIGTERM, the same way for both servers (neither library's own helper).
enum Termination {
    /// Returns once the process receives SIGINT or SIGTERM.
    static func wait() async {
        let (signals, continuation) = AsyncStream<Void>.makeStream()
        let sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            return source
        }
        for await _ in signals { break }
        for source in sources { source.cancel() }
    }
}
