import Foundation
import Pheromones
import PheromonesTLS
import PheromonesTestSupport
import XCTest

/// Our TLS stage over real sockets against the `openssl` command: our client against
/// `openssl s_server`, `openssl s_client` against our server.
final class OpenSSLInteroperabilityTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var files: CertificateFiles!

    override func setUp() async throws {
        group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        files = try CertificateFiles()
    }

    override func tearDown() async throws {
        try await group.shutdownGracefully()
        files = nil
    }

    // MARK: Our client, openssl's server

    func testOurClientSendsSixteenMebibytesInRandomChunksToOpenSSLsServerAndClosesWithCloseNotify() async throws {
        let server = try OpenSSLCommand([
            "s_server", "-accept", "127.0.0.1:0", "-naccept", "1",
            "-cert", files.path("server.pem"), "-key", files.path("server.key"),
        ])
        let port = try await server.acceptedPort()
        let (_, payload) = try files.randomFile("payload", count: 16 << 20)
        let client = ClientTLSDriver()
        let channel = try await connect(to: port, handlers: [try TLSHandler(clientWith: TLSContext(configuration: Fixtures.client()), serverHostname: "localhost"), client])
        let handshake = try await client.handshake.futureResult.get(within: 10)
        XCTAssertEqual(handshake.version, .tlsv13)
        XCTAssertEqual(handshake.peerCertificate?.commonName, "localhost")

        // Random chunk sizes, each followed or not by a flush, chosen here and written on the loop.
        var generator = SplitMix64(seed: 16)
        var chunks: [(range: Range<Int>, flush: Bool)] = []
        var offset = 0
        while offset < payload.count {
            let size = min(payload.count - offset, Int.random(in: 1...70_000, using: &generator))
            chunks.append((offset..<(offset + size), Bool.random(using: &generator)))
            offset += size
        }
        let plan = chunks
        try await channel.eventLoop.submit {
            for chunk in plan {
                channel.pipeline.write(ByteBuffer(bytes: payload[chunk.range]))
                if chunk.flush { channel.pipeline.flush() }
            }
            channel.pipeline.flush()
        }.get(within: 30)
        try await channel.close().get(within: 30)
        try await server.waitForExit()
        let printed = server.printed
        XCTAssertGreaterThanOrEqual(printed.count, payload.count)
        XCTAssertTrue(contains(printed, payload), "openssl did not print the bytes sent, in order")
    }

    func testOurClientNegotiatesALPNAndResumesItsSessionWithOpenSSLsServer() async throws {
        let server = try OpenSSLCommand([
            "s_server", "-accept", "127.0.0.1:0", "-naccept", "2", "-alpn", "h2,http/1.1",
            "-cert", files.path("server.pem"), "-key", files.path("server.key"),
        ])
        let port = try await server.acceptedPort()
        var configuration = try Fixtures.client()
        configuration.applicationProtocols = ["http/1.1", "h2"]
        let context = try TLSContext(configuration: configuration)
        var results: [TLSHandshakeResult] = []
        for _ in 0..<2 {
            let client = ClientTLSDriver()
            let channel = try await connect(to: port, handlers: [try TLSHandler(clientWith: context, serverHostname: "localhost"), client])
            results.append(try await client.handshake.futureResult.get(within: 10))
            // The TLS 1.3 ticket comes after the handshake: one round trip of data brings it.
            try await channel.writeAndFlush(ByteBuffer(string: "ping\n")).get(within: 10)
            try await server.waitForOutput(containing: "ping\n", times: results.count)
            try await channel.close().get(within: 10)
        }
        // The server picks, by its own preference.
        XCTAssertEqual(results.map(\.negotiatedProtocol), ["h2", "h2"])
        XCTAssertEqual(results.map(\.isResumed), [false, true])
    }

    func testOurClientPicksItsCertificateBySNIAndProvesItselfToOpenSSLsServerThatRequiresACertificate() async throws {
        let server = try OpenSSLCommand([
            "s_server", "-accept", "127.0.0.1:0", "-naccept", "1",
            "-cert", files.path("server.pem"), "-key", files.path("server.key"),
            "-servername", "other.example", "-cert2", files.path("other.pem"), "-key2", files.path("other.key"),
            "-Verify", "1", "-CAfile", files.path("ca.pem"),
        ])
        let port = try await server.acceptedPort()
        var configuration = try Fixtures.client()
        configuration.identity = try Fixtures.clientIdentity
        let client = ClientTLSDriver()
        let channel = try await connect(to: port, handlers: [try TLSHandler(clientWith: TLSContext(configuration: configuration), serverHostname: "other.example"), client])
        let handshake = try await client.handshake.futureResult.get(within: 10)
        XCTAssertEqual(handshake.peerCertificate?.commonName, "other.example")
        try await channel.writeAndFlush(ByteBuffer(string: "authenticated\n")).get(within: 10)
        try await server.waitForOutput(containing: "authenticated\n")
        try await channel.close().get(within: 10)
        try await server.waitForExit()
    }

    // MARK: openssl's client, our server

    func testOpenSSLsClientGetsSixteenMebibytesEchoedByOurServer() async throws {
        let (file, payload) = try files.randomFile("payload", count: 16 << 20)
        let context = try TLSContext(configuration: Fixtures.server())
        let server = try await listen(childHandlers: { [try TLSHandler(serverWith: context), EchoThenClose(closingAfter: payload.count)] })
        let client = try OpenSSLCommand([
            "s_client", "-connect", "127.0.0.1:\(server.localAddress?.port ?? 0)", "-servername", "localhost",
            "-CAfile", files.path("ca.pem"), "-verify_return_error", "-quiet",
        ], standardInput: file)
        try await client.waitForExit()
        XCTAssertEqual(client.printed.count, payload.count)
        XCTAssertTrue(client.printed == payload, "the echoed bytes differ")
        try await server.close().get(within: 10)
    }

    func testOpenSSLsClientGetsALPNAndSNIFromOurServerAndResumesItsSession() async throws {
        var configuration = try Fixtures.server()
        configuration.applicationProtocols = ["h2", "http/1.1"]
        configuration.identitiesByServerName["other.example"] = try Fixtures.identity(TestCertificates.otherCertificate, TestCertificates.otherKey)
        let context = try TLSContext(configuration: configuration)
        let server = try await listen(childHandlers: { [try TLSHandler(serverWith: context), CloseAfterHandshake()] })
        let port = server.localAddress?.port ?? 0
        let session = files.path("session")
        var transcripts: [String] = []
        for sessionArguments in [["-sess_out", session], ["-sess_in", session]] {
            let client = try OpenSSLCommand([
                "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "other.example", "-alpn", "http/1.1,h2",
                "-CAfile", files.path("ca.pem"), "-verify_return_error", "-ign_eof",
            ] + sessionArguments)
            try await client.waitForExit()
            transcripts.append(String(decoding: client.printed, as: UTF8.self))
        }
        for transcript in transcripts {
            XCTAssertTrue(transcript.contains("ALPN protocol: h2"), transcript)
            XCTAssertTrue(transcript.contains("CN = other.example"), transcript)
        }
        XCTAssertTrue(transcripts[0].contains("New, TLSv1.3"), transcripts[0])
        XCTAssertTrue(transcripts[1].contains("Reused, TLSv1.3"), transcripts[1])
        try await server.close().get(within: 10)
    }

    func testOurServerRequiresOpenSSLsClientCertificateAndSeesItsName() async throws {
        var configuration = try Fixtures.server()
        configuration.clientAuthentication = .required
        configuration.trustRoots = .certificates(try Fixtures.testCA)
        let context = try TLSContext(configuration: configuration)
        let seen = HandshakeLog()
        let server = try await listen(childHandlers: { [try TLSHandler(serverWith: context), seen.recorder(), EchoThenClose(closingAfter: 5)] })
        let port = server.localAddress?.port ?? 0
        let input = files.directory.appendingPathComponent("hello")
        try Data("hello".utf8).write(to: input)

        let authenticated = try OpenSSLCommand([
            "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", files.path("ca.pem"),
            "-cert", files.path("client.pem"), "-key", files.path("client.key"), "-quiet",
        ], standardInput: input)
        try await authenticated.waitForExit()
        XCTAssertEqual(String(decoding: authenticated.printed, as: UTF8.self), "hello")

        let anonymous = try OpenSSLCommand([
            "s_client", "-connect", "127.0.0.1:\(port)", "-servername", "localhost", "-CAfile", files.path("ca.pem"), "-quiet",
        ], standardInput: input)
        try await anonymous.waitForExit()
        XCTAssertEqual(anonymous.printed.count, 0)
        let outcome = try await seen.outcomes(count: 2)
        XCTAssertEqual(outcome.first, "handshake: client")
        XCTAssertEqual(outcome.last, "error: \(TLSError.certificateVerificationFailed(.noCertificate))")
        try await server.close().get(within: 10)
    }

    // MARK: Helpers

    private func connect(to port: Int, handlers: [any ChannelHandler]) async throws -> SocketChannel {
        let bound = UncheckedHandlers(handlers)
        return try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandlers(bound.handlers) }
            .connect(to: SocketAddress.loopbackV4(port: port)).get(within: 10)
    }

    private func listen(childHandlers: @escaping @Sendable () throws -> [any ChannelHandler]) async throws -> ServerSocketChannel {
        try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandlers(childHandlers()) }
            .bind(host: "127.0.0.1", port: 0)
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard let start = haystack.firstIndex(of: needle[0]) else { return false }
        var index = start
        while index + needle.count <= haystack.count {
            if haystack[index..<(index + needle.count)].elementsEqual(needle) { return true }
            guard let next = haystack[(index + 1)...].firstIndex(of: needle[0]) else { return false }
            index = next
        }
        return false
    }
}

/// Handlers made on the test's thread and installed on the loop's (they are not used meanwhile).
struct UncheckedHandlers: @unchecked Sendable {
    // Unchecked: built before the connection, and only the channel initializer touches them.
    let handlers: [any ChannelHandler]
    init(_ handlers: [any ChannelHandler]) { self.handlers = handlers }
}

/// The stage after a client's TLS handler: completes `handshake` with the result (or the error).
final class ClientTLSDriver: ChannelInboundHandler, @unchecked Sendable {
    // Unchecked: the promise is thread-safe; the handler's callbacks run on its loop.
    typealias InboundIn = ByteBuffer
    let handshake = EmbeddedEventLoop().makePromise(of: TLSHandshakeResult.self)

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let result)? = event as? TLSEvent { handshake.trySucceed(result) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        handshake.tryFail(error)
    }
}

/// Echoes what it reads; closes (with close_notify) once it has echoed `count` bytes.
final class EchoThenClose: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let count: Int
    private var echoed = 0

    init(closingAfter count: Int) { self.count = count }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        echoed += data.readableBytes
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
        if echoed >= count { context.close(promise: nil) }
    }
}

/// Closes the connection (with close_notify) as soon as the handshake is done: the session
/// tickets a TLS 1.3 server sends go out first.
final class CloseAfterHandshake: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// What each server connection's handshake ended with: "handshake: CN" or "error: ...".
final class HandshakeLog: Sendable {
    private let lines = LockedLines()

    func recorder() -> Recorder { Recorder(log: lines) }

    /// The first `count` outcomes, waiting at most `seconds` for them.
    func outcomes(count: Int, within seconds: Double = 10) async throws -> [String] {
        let arrived = XCTestExpectation(description: "\(count) handshakes end")
        arrived.expectedFulfillmentCount = count
        lines.onAppend { arrived.fulfill() }
        _ = await XCTWaiter().fulfillment(of: [arrived], timeout: seconds)
        return lines.all
    }

    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        let log: LockedLines
        init(log: LockedLines) { self.log = log }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .handshakeCompleted(let result)? = event as? TLSEvent {
                log.append("handshake: \(result.peerCertificate?.commonName ?? "-")")
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            log.append("error: \(error)")
        }
    }
}

/// Lines appended from the loop and read by the test; `onAppend` hears of each one, those appended
/// before it included.
final class LockedLines: @unchecked Sendable {
    // Unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var lines: [String] = []
    private var listener: (@Sendable () -> Void)?

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        let listener = listener
        lock.unlock()
        listener?()
    }

    func onAppend(_ listener: @escaping @Sendable () -> Void) {
        lock.lock()
        self.listener = listener
        let count = lines.count
        lock.unlock()
        for _ in 0..<count { listener() }
    }

    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
