import Pheromones
import PheromonesTLS
import PheromonesTestSupport
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

/// ALPN, SNI, resumption, half-closure and hostile records, on the embedded pair.
final class EmbeddedTLSFeatureTests: XCTestCase {
    func testALPNPicksTheServersPreferredProtocolThatTheClientOffers() throws {
        var server = try Fixtures.server()
        server.applicationProtocols = ["h2", "http/1.1"]
        var client = try Fixtures.client()
        client.applicationProtocols = ["http/1.1", "h2"]
        let pair = try EmbeddedTLSPair(clientConfiguration: client, serverConfiguration: server)
        try pair.connect()
        XCTAssertEqual(pair.clientRecorder.handshakes.first?.negotiatedProtocol, "h2")
        XCTAssertEqual(pair.serverRecorder.handshakes.first?.negotiatedProtocol, "h2")

        client.applicationProtocols = ["spdy/3"]
        let disjoint = try EmbeddedTLSPair(clientConfiguration: client, serverConfiguration: server)
        try disjoint.connect()
        XCTAssertEqual(disjoint.clientRecorder.handshakes.count, 1, "no common protocol is no ALPN, not a failure")
        XCTAssertNil(disjoint.clientRecorder.handshakes.first?.negotiatedProtocol)
    }

    func testAServerPicksItsCertificateByTheServerNameTheClientSends() throws {
        var server = try Fixtures.server()
        server.identitiesByServerName["Other.Example"] = try Fixtures.identity(TestCertificates.otherCertificate, TestCertificates.otherKey)
        let other = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: server, serverHostname: "other.example")
        try other.connect()
        XCTAssertEqual(other.clientRecorder.handshakes.first?.peerCertificate?.commonName, "other.example", "\(other.clientRecorder.errors)")
        let fallback = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: server, serverHostname: "localhost")
        try fallback.connect()
        XCTAssertEqual(fallback.clientRecorder.handshakes.first?.peerCertificate?.commonName, "localhost")
    }

    func testASecondConnectionToTheSameServerNameResumesTheSessionWithATicket() throws {
        for version in [TLSConfiguration.Version.tlsv13, .tlsv12] {
            var server = try Fixtures.server()
            server.maximumVersion = version
            let clientContext = try TLSContext(configuration: Fixtures.client())
            let serverContext = try TLSContext(configuration: server)
            var resumed: [Bool] = []
            for _ in 0..<3 {
                let pair = try EmbeddedTLSPair(
                    client: TLSHandler(clientWith: clientContext, serverHostname: "localhost"),
                    server: TLSHandler(serverWith: serverContext))
                try pair.connect()
                // TLS 1.3 tickets arrive after the handshake, with the first data.
                try pair.server.writeOutbound(ByteBuffer(string: "x"))
                try pair.exchange()
                resumed.append(pair.clientRecorder.handshakes.first?.isResumed ?? false)
                XCTAssertEqual(pair.serverRecorder.handshakes.first?.isResumed, resumed.last)
            }
            XCTAssertEqual(resumed, [false, true, true], "\(version)")
        }
    }

    func testWithResumptionOffEveryHandshakeIsAFullOne() throws {
        var client = try Fixtures.client()
        client.sessionResumption = false
        let clientContext = try TLSContext(configuration: client)
        let serverContext = try TLSContext(configuration: Fixtures.server())
        for _ in 0..<2 {
            let pair = try EmbeddedTLSPair(client: TLSHandler(clientWith: clientContext, serverHostname: "localhost"), server: TLSHandler(serverWith: serverContext))
            try pair.connect()
            try pair.server.writeOutbound(ByteBuffer(string: "x"))
            try pair.exchange()
            XCTAssertEqual(pair.clientRecorder.handshakes.first?.isResumed, false)
        }
    }

    func testHalfClosureTheClientShutsItsOutputAndStillReadsTheServersReply() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server(), serverAllowsRemoteHalfClosure: true)
        try pair.connect()
        try pair.client.writeOutbound(ByteBuffer(string: "request"))
        pair.client.pipeline.close(mode: .output, promise: nil)
        try pair.exchange()
        XCTAssertEqual(pair.serverRecorder.received, ByteBuffer(string: "request"))
        XCTAssertTrue(pair.serverRecorder.inputClosed, "the server sees the client's close_notify as the end of its input")
        let refused = pair.loop.makePromise(of: Void.self)
        pair.client.pipeline.writeAndFlush(ByteBuffer(string: "too late"), promise: refused)
        guard case .failure(let error)? = refused.futureResult.resultIfAvailable else { return XCTFail("a write after close(mode: .output) was not refused") }
        XCTAssertEqual(error as? ChannelError, .outputClosed)
        try pair.server.writeOutbound(ByteBuffer(string: "reply"))
        try pair.exchange()
        XCTAssertEqual(pair.clientRecorder.received, ByteBuffer(string: "reply"))
        XCTAssertTrue(pair.serverRecorder.errors.isEmpty, "\(pair.serverRecorder.errors)")
    }

    func testClosingTheOutputSendsTheWritesQueuedBeforeItFlushedOrNotThenCloseNotify() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server(), serverAllowsRemoteHalfClosure: true)
        try pair.connect()
        let written = pair.loop.makePromise(of: Void.self)
        pair.client.pipeline.write(ByteBuffer(string: "queued, never flushed"), promise: written)
        pair.client.pipeline.close(mode: .output, promise: nil)
        try pair.exchange()
        XCTAssertEqual(pair.serverRecorder.received, ByteBuffer(string: "queued, never flushed"))
        XCTAssertTrue(pair.serverRecorder.inputClosed)
        XCTAssertNotNil(try written.futureResult.resultIfAvailable?.get())
    }

    func testATamperedRecordFailsWithAProtocolErrorAndClosesTheConnection() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        pair.client.pipeline.writeAndFlush(ByteBuffer(string: "secret"))
        var record = try XCTUnwrap(pair.client.readOutbound(as: ByteBuffer.self))
        record.withUnsafeMutableReadableBytes { $0[$0.count - 1] ^= 0xFF }
        try? pair.server.writeInbound(record)
        guard case .protocolError? = pair.serverRecorder.tlsErrors.first else {
            return XCTFail("expected a protocol error, got \(pair.serverRecorder.errors)")
        }
        XCTAssertEqual(pair.serverRecorder.received.readableBytes, 0)
        XCTAssertFalse(pair.server.isActive)
    }

    func testARecordThatClaimsMoreThanTheLargestRecordFailsWithoutWaitingForItsBytes() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        // An application-data record header claiming 65,535 bytes (the most a record may hold is 16 KiB + 256).
        try? pair.server.writeInbound(ByteBuffer(bytes: [0x17, 0x03, 0x03, 0xFF, 0xFF]))
        guard case .protocolError? = pair.serverRecorder.tlsErrors.first else {
            return XCTFail("expected a protocol error, got \(pair.serverRecorder.errors)")
        }
        XCTAssertFalse(pair.server.isActive)
    }

    func testATruncatedRecordFollowedByTheEndOfTheStreamIsAnUncleanShutdown() throws {
        let pair = try EmbeddedTLSPair(clientConfiguration: Fixtures.client(), serverConfiguration: Fixtures.server())
        try pair.connect()
        pair.client.pipeline.writeAndFlush(ByteBuffer(string: "cut short"))
        let record = try XCTUnwrap(pair.client.readOutbound(as: ByteBuffer.self))
        try pair.server.writeInbound(try XCTUnwrap(record.getSlice(at: record.readerIndex, length: record.readableBytes - 3)))
        XCTAssertEqual(pair.serverRecorder.received.readableBytes, 0)
        pair.server.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(pair.serverRecorder.tlsErrors, [.uncleanShutdown])
    }

    func testAPlaintextClientTalkingToATLSServerIsRefused() throws {
        let recorder = TLSRecorder()
        let channel = try EmbeddedChannel(handlers: [TLSHandler(serverWith: TLSContext(configuration: Fixtures.server())), recorder])
        channel.connect()
        try? channel.writeInbound(ByteBuffer(string: "hello? is this thing on?\n"))
        XCTAssertEqual(recorder.received.readableBytes, 0)
        guard case .handshakeFailed? = recorder.tlsErrors.first else {
            return XCTFail("expected a failed handshake, got \(recorder.errors)")
        }
        XCTAssertFalse(channel.isActive)
    }

    func testConfigurationsThatCannotWorkAreRefusedWithReadableErrors() throws {
        XCTAssertThrowsError(try TLSCertificate(pem: "not a certificate")) { error in
            guard case .invalidConfiguration? = error as? TLSError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try TLSPrivateKey(pem: TestCertificates.serverCertificate))
        var mismatched = try Fixtures.server()
        mismatched.identity = try Fixtures.identity(TestCertificates.serverCertificate, TestCertificates.clientKey)
        XCTAssertThrowsError(try TLSContext(configuration: mismatched)) { error in
            XCTAssertEqual(error as? TLSError, .invalidConfiguration("the private key does not match the certificate"))
        }
        var inverted = try Fixtures.client()
        inverted.minimumVersion = .tlsv13
        inverted.maximumVersion = .tlsv12
        XCTAssertThrowsError(try TLSContext(configuration: inverted))
        var ciphers = try Fixtures.client()
        ciphers.cipherList = "NO-SUCH-CIPHER"
        XCTAssertThrowsError(try TLSContext(configuration: ciphers))
    }
}
