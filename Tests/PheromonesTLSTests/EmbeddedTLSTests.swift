import Pheromones
import PheromonesTLS
import XCTest

/// Our client against our server, each on an `EmbeddedChannel` wired to the other: the handshake,
/// data both ways, closing, and each way a handshake is refused.
final class EmbeddedTLSTests: XCTestCase {
    func testAClientAndAServerCompleteATLS13HandshakeAndExchangeDataBothWays() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        XCTAssertEqual(pair.clientRecorder.handshakes.count, 1)
        XCTAssertEqual(pair.serverRecorder.handshakes.count, 1)
        let result = try XCTUnwrap(pair.clientRecorder.handshakes.first)
        XCTAssertEqual(result.version, .tlsv13)
        XCTAssertEqual(result.peerCertificate?.commonName, "localhost")
        XCTAssertFalse(result.isResumed)

        try pair.client.writeOutbound(ByteBuffer(string: "hello, server"))
        try pair.exchange()
        XCTAssertEqual(pair.serverRecorder.received, ByteBuffer(string: "hello, server"))
        try pair.server.writeOutbound(ByteBuffer(string: "hello, client"))
        try pair.exchange()
        XCTAssertEqual(pair.clientRecorder.received, ByteBuffer(string: "hello, client"))
        XCTAssertTrue(pair.clientRecorder.errors.isEmpty, "\(pair.clientRecorder.errors)")
        XCTAssertTrue(pair.serverRecorder.errors.isEmpty, "\(pair.serverRecorder.errors)")
    }

    func testWritesMadeBeforeTheHandshakeCompletesGoOutOnceItHasInOrder() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        pair.server.connect()
        pair.client.connect()
        let first = pair.loop.makePromise(of: Void.self)
        pair.client.pipeline.write(ByteBuffer(string: "one "), promise: first)
        pair.client.pipeline.writeAndFlush(ByteBuffer(string: "two"))
        XCTAssertFalse(first.futureResult.isFulfilled)
        try pair.exchange()
        XCTAssertEqual(pair.serverRecorder.received, ByteBuffer(string: "one two"))
        XCTAssertTrue(first.futureResult.isFulfilled)
    }

    func testManySmallWritesInOneFlushShareRecordsAndOneNetworkWrite() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        for index in 0..<100 { pair.client.pipeline.write(ByteBuffer(string: "message \(index);")) }
        pair.client.pipeline.flush()
        var writes: [ByteBuffer] = []
        while let bytes = try pair.client.readOutbound(as: ByteBuffer.self) { writes.append(bytes) }
        XCTAssertEqual(writes.count, 1, "one flush, one write")
        // 1,090 bytes of plaintext fit one record: its 5-byte header, 1 content-type byte and 16-byte tag.
        let plaintext = (0..<100).map { "message \($0);".utf8.count }.reduce(0, +)
        XCTAssertEqual(plaintext, 1090)
        XCTAssertEqual(writes.first?.readableBytes, plaintext + 22)
        for bytes in writes { try pair.server.writeInbound(bytes) }
        XCTAssertEqual(pair.serverRecorder.received.readableBytes, plaintext)
    }

    func testAClientThatClosesSendsCloseNotifyAndTheServerClosesCleanly() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        pair.client.pipeline.close(promise: nil)
        try pair.exchange()
        XCTAssertFalse(pair.client.isActive)
        XCTAssertFalse(pair.server.isActive, "the server answers close_notify by closing")
        XCTAssertTrue(pair.serverRecorder.errors.isEmpty, "\(pair.serverRecorder.errors)")
        XCTAssertTrue(pair.clientRecorder.errors.isEmpty, "\(pair.clientRecorder.errors)")
    }

    func testAPeerThatEndsTheStreamWithoutCloseNotifyIsReportedAsAnUncleanShutdown() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        pair.server.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(pair.serverRecorder.tlsErrors, [.uncleanShutdown])
        XCTAssertFalse(pair.server.isActive)
    }

    // MARK: Verification

    func testAClientRefusesAnExpiredCertificate() throws {
        var server = try Fixtures.server()
        server.identity = try Fixtures.identity(TestCertificates.expiredCertificate, TestCertificates.expiredKey)
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: server)
        try pair.connect()
        XCTAssertEqual(pair.clientRecorder.tlsErrors, [.certificateVerificationFailed(.expired)])
        XCTAssertFalse(pair.client.isActive)
        XCTAssertFalse(pair.server.isActive, "the client's alert ends the server's handshake too")
        XCTAssertEqual(pair.clientRecorder.handshakes.count, 0)
    }

    func testAClientRefusesACertificateFromAnUnknownAuthority() throws {
        var server = try Fixtures.server()
        server.identity = try Fixtures.identity(TestCertificates.impostorCertificate, TestCertificates.impostorKey)
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: server)
        try pair.connect()
        XCTAssertEqual(pair.clientRecorder.tlsErrors, [.certificateVerificationFailed(.unknownAuthority)])
    }

    func testAClientRefusesACertificateForAnotherHost() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server(), serverHostname: "example.com")
        try pair.connect()
        XCTAssertEqual(pair.clientRecorder.tlsErrors, [.certificateVerificationFailed(.hostnameMismatch)])
    }

    func testAClientDialingAnIPAddressChecksTheCertificatesAddress() throws {
        let matching = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server(), serverHostname: "127.0.0.1")
        try matching.connect()
        XCTAssertEqual(matching.clientRecorder.handshakes.count, 1, "\(matching.clientRecorder.errors)")
        let other = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server(), serverHostname: "127.0.0.2")
        try other.connect()
        XCTAssertEqual(other.clientRecorder.tlsErrors, [.certificateVerificationFailed(.hostnameMismatch)])
    }

    func testAServerThatRequiresAClientCertificateRefusesAClientWithoutOneAndAcceptsOneWithIt() throws {
        var server = try Fixtures.server()
        server.clientAuthentication = .required
        server.trustRoots = .certificates(try Fixtures.testCA)
        let anonymous = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: server)
        try anonymous.connect()
        XCTAssertEqual(anonymous.serverRecorder.tlsErrors, [.certificateVerificationFailed(.noCertificate)])
        XCTAssertFalse(anonymous.server.isActive)

        var client = try Fixtures.client()
        client.identity = try Fixtures.clientIdentity
        let authenticated = try EmbeddedTLSPair(clientConfiguration: client, serverConfiguration: server)
        try authenticated.connect()
        XCTAssertEqual(authenticated.serverRecorder.handshakes.first?.peerCertificate?.commonName, "client", "\(authenticated.serverRecorder.errors)")
    }

    func testAHandshakeThatDoesNotCompleteInTimeFailsWithHandshakeTimedOut() throws {
        var server = try Fixtures.server()
        server.handshakeTimeout = .seconds(2)
        let loop = EmbeddedEventLoop()
        let recorder = TLSRecorder()
        let channel = try EmbeddedChannel(handlers: [TLSHandler(serverWith: TLSContext(configuration: server)), recorder], loop: loop)
        channel.connect()
        loop.advanceTime(by: .milliseconds(1999))
        XCTAssertTrue(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(recorder.tlsErrors, [.handshakeTimedOut])
        XCTAssertFalse(channel.isActive)
    }

    func testGarbageInPlaceOfAClientHelloFailsTheHandshakeAndClosesOnlyThatConnection() throws {
        let recorder = TLSRecorder()
        let channel = try EmbeddedChannel(handlers: [TLSHandler(serverWith: TLSContext(configuration: Fixtures.server())), recorder])
        channel.connect()
        try? channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        guard case .handshakeFailed? = recorder.tlsErrors.first else {
            return XCTFail("expected a failed handshake, got \(recorder.errors)")
        }
        XCTAssertFalse(channel.isActive)
    }
}
