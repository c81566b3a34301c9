import ArgumentParser
import Glibc
import Pheromones
import PheromonesTLS

/// `pheromones fetch https://host:port/path`: one HTTPS GET over the TLS stage, the response
/// printed as it came (headers, then body). A way to try TLS against any server, such as
/// `openssl s_server -www`.
struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fetch a page over HTTPS (HTTP/1.1 GET, Connection: close) and print the response.")

    /// The largest `--max-bytes`.
    static let maximumResponseLimit = 1 << 30

    @Argument(help: "The page: https://host[:port]/path (port 443 when left out).")
    var url: String

    @Option(help: "Trust only the certificates of this PEM file (default: the system's trust store).")
    var caFile: String?

    @Flag(help: "Do not check the server's certificate at all (testing only).")
    var insecure = false

    @Option(help: "The most response bytes kept, 1...\(maximumResponseLimit); more ends the fetch with an error.")
    var maxBytes = 16 << 20

    @Option(help: "Seconds the whole fetch may take, 1...3600.")
    var timeout = 30

    func validate() throws {
        _ = try target()
        guard (1...Self.maximumResponseLimit).contains(maxBytes) else {
            throw ValidationError("--max-bytes must be between 1 and \(Self.maximumResponseLimit), not \(maxBytes).")
        }
        guard (1...3600).contains(timeout) else {
            throw ValidationError("--timeout must be between 1 and 3600, not \(timeout).")
        }
    }

    /// The URL's host, port and path.
    func target() throws -> (host: String, port: Int, path: String) {
        guard url.lowercased().hasPrefix("https://") else { throw ValidationError("only https:// URLs can be fetched, not '\(url.escapedForTerminal)'.") }
        let rest = url.dropFirst("https://".count)
        let authority = rest.prefix { $0 != "/" }
        let path = rest.dropFirst(authority.count)
        var host = String(authority), port = 443
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.port(after.dropFirst()) }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            port = try Self.port(authority[authority.index(after: colon)...])
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isLetter || $0.isNumber || "-.:%".contains($0) }) else {
            throw ValidationError("'\(url.escapedForTerminal)' has no usable host.")
        }
        return (host, port, path.isEmpty ? "/" : String(path))
    }

    private static func port(_ text: Substring) throws -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw ValidationError("the port must be between 1 and 65535, not '\(String(text).escapedForTerminal)'.")
        }
        return port
    }

    func run() async throws {
        let (host, port, path) = try target()
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = ["http/1.1"]
        if let caFile { configuration.trustRoots = .file(caFile) }
        if insecure { configuration.certificateVerification = .none }
        let context = try TLSContext(configuration: configuration)
        // Resolved here, off the loop (a name lookup blocks).
        let address = try SocketAddress.resolve(host: host, port: port)
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { Task { try? await group.shutdownGracefully() } }
        let loop = group.nextLoop()
        let response = loop.makePromise(of: ByteBuffer.self)
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUser-Agent: pheromones\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        let maxBytes = maxBytes
        loop.scheduleTask(in: .seconds(Int64(timeout))) { response.tryFail(FetchError.timedOut) }
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(Int64(timeout)))
            .channelInitializer { channel in
                try channel.pipeline.addHandlers([
                    TLSHandler(clientWith: context, serverHostname: host),
                    HTTPResponseCollector(request: request, maximumBytes: maxBytes, response: response),
                ])
            }
            .connect(to: address, on: loop).get()
        do {
            var body = try await response.futureResult.get()
            let bytes = body.readBytes(length: body.readableBytes) ?? []
            if isatty(STDOUT_FILENO) == 1 {
                // A server's bytes on a terminal: control characters escaped, lines kept.
                for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
                    print(String(line).escapedForTerminal)
                }
            } else {
                try writeAll(bytes)
            }
        } catch {
            channel.close()
            throw error
        }
    }

    /// Writes `bytes` to standard output with write(2) (unbuffered, partial writes resumed).
    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { throw ExitCode(74) }
            offset += written
        }
    }
}

/// Why a fetch failed beyond what the TLS stage reports.
enum FetchError: Error, CustomStringConvertible {
    case timedOut
    case responseTooLarge(Int)

    var description: String {
        switch self {
        case .timedOut: return "the fetch did not complete in time"
        case .responseTooLarge(let limit): return "the response is larger than \(limit) bytes (--max-bytes)"
        }
    }
}

/// Sends the request once the handshake is done, and collects the response until the server ends
/// it (HTTP/1.1 with `Connection: close`: the end of the stream ends the response).
final class HTTPResponseCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let request: String
    private let maximumBytes: Int
    private let response: Promise<ByteBuffer>
    private var received = ByteBuffer()

    init(request: String, maximumBytes: Int, response: Promise<ByteBuffer>) {
        self.request = request
        self.maximumBytes = maximumBytes
        self.response = response
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSEvent {
            context.writeAndFlush(ByteBuffer(string: request), promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        guard received.readableBytes + data.readableBytes <= maximumBytes else {
            response.tryFail(FetchError.responseTooLarge(maximumBytes))
            context.close(promise: nil)
            return
        }
        var data = data
        received.writeBuffer(&data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        response.trySucceed(received)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Many servers end with a TCP close and no close_notify; with `Connection: close` that is
        // how the response ends, so it is kept, not failed (an HTTP body's own length would show
        // a cut).
        if error as? TLSError == .uncleanShutdown, received.readableBytes > 0 {
            response.trySucceed(received)
        } else {
            response.tryFail(error)
        }
        context.close(promise: nil)
    }
}
