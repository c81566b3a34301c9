import Pheromones
import PheromonesTLS
import PheromonesTestSupport
import XCTest

/// What the stage after a ``TLSHandler`` saw: plaintext, events, errors.
final class TLSRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var received = ByteBuffer()
    var handshakes: [TLSHandshakeResult] = []
    var errors: [any Error] = []
    var inputClosed = false

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        var data = data
        received.writeBuffer(&data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let result)? = event as? TLSEvent { handshakes.append(result) }
        if let event = event as? ChannelEvent, event == .inputClosed { inputClosed = true }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }

    var tlsErrors: [TLSError] { errors.compactMap { $0 as? TLSError } }
}

/// A client and a server, each an `EmbeddedChannel` with a ``TLSHandler`` and a recorder, wired to
/// each other by ``exchange()``: no sockets, virtual time.
struct EmbeddedTLSPair {
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientRecorder = TLSRecorder()
    let serverRecorder = TLSRecorder()
    let loop = EmbeddedEventLoop()

    init(client clientHandler: TLSHandler, server serverHandler: TLSHandler) throws {
        client = try EmbeddedChannel(handlers: [clientHandler, clientRecorder], loop: loop)
        server = try EmbeddedChannel(handlers: [serverHandler, serverRecorder], loop: loop)
    }

    init(
        clientConfiguration: TLSConfiguration, serverConfiguration: TLSConfiguration, serverHostname: String? = "localhost",
        serverAllowsRemoteHalfClosure: Bool = false
    ) throws {
        try self.init(
            client: TLSHandler(clientWith: TLSContext(configuration: clientConfiguration), serverHostname: serverHostname),
            server: TLSHandler(serverWith: TLSContext(configuration: serverConfiguration), allowRemoteHalfClosure: serverAllowsRemoteHalfClosure))
    }

    /// Connects both (the client's hello goes out) and runs the handshake.
    func connect() throws {
        server.connect()
        client.connect()
        try exchange()
    }

    /// Carries the bytes each side flushed to the other until neither has more.
    func exchange() throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                moved = true
                guard server.isActive else { continue }
                try? server.writeInbound(bytes)
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                moved = true
                guard client.isActive else { continue }
                try? client.writeInbound(bytes)
            }
        }
    }
}

enum Fixtures {
    static func identity(_ certificate: String, _ key: String) throws -> TLSIdentity {
        TLSIdentity(certificateChain: try TLSCertificate.chain(pem: certificate), privateKey: try TLSPrivateKey(pem: key))
    }

    static var serverIdentity: TLSIdentity { get throws { try identity(TestCertificates.serverCertificate, TestCertificates.serverKey) } }
    static var clientIdentity: TLSIdentity { get throws { try identity(TestCertificates.clientCertificate, TestCertificates.clientKey) } }
    static var testCA: [TLSCertificate] { get throws { try TLSCertificate.chain(pem: TestCertificates.caCertificate) } }

    /// A server proving itself with the test CA's `localhost` certificate.
    static func server() throws -> TLSConfiguration {
        TLSConfiguration.makeServerConfiguration(identity: try serverIdentity)
    }

    /// A client trusting the test CA only.
    static func client() throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try testCA)
        return configuration
    }
}

/// Thrown by the bounded waits after they have reported the timeout as a test failure.
struct TestTimeout: Error {}

extension Future where Value: Sendable {
    /// Waits at most `seconds` for the result; a timeout fails the test and throws ``TestTimeout``.
    func get(within seconds: Double, file: StaticString = #filePath, line: UInt = #line) async throws -> Value {
        let completed = XCTestExpectation(description: "the future completes")
        Task { _ = try? await self.get(); completed.fulfill() }
        let outcome = await XCTWaiter().fulfillment(of: [completed], timeout: seconds)
        guard outcome == .completed, let result = resultIfAvailable else {
            XCTFail("the future did not complete within \(seconds) s", file: file, line: line)
            throw TestTimeout()
        }
        return try result.get()
    }
}
