import Crypto
import Pheromones
import PheromonesNoise
import XCTest

/// Every way a connection fails: each is a typed error through `errorCaught`, then that
/// connection closes, and no plaintext goes past the stage.
final class NoiseFailureTests: XCTestCase {
    // MARK: Tampering

    func testFlippingAByteOfAnyHandshakeMessageFailsTheHandshake() throws {
        for (target, length) in [(1, 34), (2, 195), (3, 163)] {
            for offset in [2, 20, 33, 40, 100, 162] where offset < length {
                let pair = try EmbeddedNoisePair()
                // With no data written, each buffer relayed is one handshake message, in order.
                var count = 0
                try connect(pair) { bytes, _ in
                    count += 1
                    XCTAssertEqual(bytes.readableBytes, [34, 195, 163][min(count, 3) - 1])
                    return count == target ? Self.flipping(bytes, at: offset) : bytes
                }
                let errors = pair.initiatorRecorder.noiseErrors + pair.responderRecorder.noiseErrors
                let context = "message \(target), offset \(offset): \(errors)"
                XCTAssertTrue(errors.contains(.decryptionFailed) || errors.contains { if case .invalidKey = $0 { true } else { false } }, context)
                XCTAssertTrue(pair.responderRecorder.handshakes.isEmpty, context)
                XCTAssertTrue(pair.responderRecorder.received.readableBytes == 0, context)
                XCTAssertFalse(pair.initiator.isActive && pair.responder.isActive, context)
                if target == 3 { XCTAssertFalse(pair.responder.isActive, context) }
            }
        }
    }

    func testFlippingAByteOfATransportMessageClosesTheConnectionAndDeliversNothing() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        try pair.initiator.writeOutbound(ByteBuffer(string: "attack at dawn"))
        try pair.exchange { bytes, _ in Self.flipping(bytes, at: 5) }
        XCTAssertEqual(pair.responderRecorder.noiseErrors, [.decryptionFailed])
        XCTAssertEqual(pair.responderRecorder.received.readableBytes, 0)
        XCTAssertFalse(pair.responder.isActive)
    }

    func testAReplayedOrReorderedTransportMessageIsNotSkippedButFailsTheConnection() throws {
        for mode in ["replay", "reorder", "drop"] {
            let pair = try EmbeddedNoisePair()
            try pair.connect()
            try pair.initiator.writeOutbound(ByteBuffer(string: "first"))
            let first = try EmbeddedNoisePair.drain(pair.initiator)
            try pair.initiator.writeOutbound(ByteBuffer(string: "second"))
            let second = try EmbeddedNoisePair.drain(pair.initiator)
            let delivered: [ByteBuffer] = switch mode {
            case "replay": [first, first]
            case "reorder": [second, first]
            default: [second]
            }
            for bytes in delivered { try? pair.responder.writeInbound(bytes) }
            XCTAssertEqual(pair.responderRecorder.noiseErrors, [.decryptionFailed], mode)
            XCTAssertEqual(pair.responderRecorder.received, mode == "replay" ? ByteBuffer(string: "first") : ByteBuffer(), mode)
            XCTAssertFalse(pair.responder.isActive, mode)
        }
    }

    // MARK: Payloads

    func testAPayloadOfAnUnknownVersionIsRefused() throws {
        let (channel, recorder) = try responderAgainstScriptedInitiator { peer in
            var payload = try peer.honestPayload()
            payload[0] = 2
            return payload
        }
        XCTAssertEqual(recorder.noiseErrors, [.unsupportedPayloadVersion(2)])
        XCTAssertFalse(channel.isActive)
    }

    func testAPayloadOfTheWrongLengthIsRefused() throws {
        for mutate in [{ (payload: inout [UInt8]) in payload.removeLast() }, { $0.append(0) }, { $0 = [] }] {
            let (_, recorder) = try responderAgainstScriptedInitiator { peer in
                var payload = try peer.honestPayload()
                mutate(&payload)
                return payload
            }
            guard case .malformedPayload? = recorder.noiseErrors.first else { return XCTFail("\(recorder.errors)") }
        }
    }

    func testABadSignatureIsRefused() throws {
        let (channel, recorder) = try responderAgainstScriptedInitiator { peer in
            var payload = try peer.honestPayload()
            payload[60] ^= 0x01
            return payload
        }
        XCTAssertEqual(recorder.noiseErrors, [.invalidSignature])
        XCTAssertTrue(recorder.handshakes.isEmpty)
        XCTAssertFalse(channel.isActive)
    }

    func testAPeerPresentingAnothersIdentityKeyWithoutItsPrivateKeyIsRefused() throws {
        // Mallory sends Bob's identity key and a signature she can make: her own.
        let (_, recorder) = try responderAgainstScriptedInitiator(identity: Identities.mallory) { peer in
            let own = try peer.honestPayload()
            return [1] + Array(Identities.bob.publicKey.rawRepresentation) + Array(own[33...])
        }
        XCTAssertEqual(recorder.noiseErrors, [.invalidSignature])
        XCTAssertTrue(recorder.handshakes.isEmpty)
    }

    func testAPeerReplayingAnothersPayloadWithItsOwnStaticKeyIsRefused() throws {
        // Bob's genuine payload signs Bob's static key, not the one Mallory's handshake proves.
        let bobsPayload = try HandshakePayload(identity: Identities.bob, staticKey: Curve25519.KeyAgreement.PrivateKey().publicKey).encoded
        let (_, recorder) = try responderAgainstScriptedInitiator(identity: Identities.mallory) { _ in bobsPayload }
        XCTAssertEqual(recorder.noiseErrors, [.invalidSignature])
    }

    func testAnInitiatorRefusesABadResponderPayloadAndNeverSendsItsOwnIdentity() throws {
        let loop = EmbeddedEventLoop()
        let recorder = NoiseRecorder()
        let channel = try EmbeddedChannel(handlers: [NoiseHandler(initiatorWith: NoiseConfiguration(identity: Identities.alice)), recorder], loop: loop)
        channel.connect()
        var responder = ScriptedNoisePeer(role: .responder, identity: Identities.bob)
        _ = try responder.read(try EmbeddedNoisePair.drain(channel))
        var payload = try responder.honestPayload()
        payload[0] = 9
        try? channel.writeInbound(try responder.write(payload: payload))
        XCTAssertEqual(recorder.noiseErrors, [.unsupportedPayloadVersion(9)])
        XCTAssertEqual(try EmbeddedNoisePair.drain(channel).readableBytes, 0, "no message 3")
        XCTAssertFalse(channel.isActive)
    }

    func testAFirstMessageWithAPayloadIsRefused() throws {
        let (channel, recorder) = try scriptedResponderChannel()
        var initiator = ScriptedNoisePeer(role: .initiator, identity: Identities.alice)
        try? channel.writeInbound(try initiator.write(payload: [1, 2, 3]))
        guard case .malformedHandshakeMessage? = recorder.noiseErrors.first else { return XCTFail("\(recorder.errors)") }
        XCTAssertFalse(channel.isActive)
    }

    // MARK: Malformed streams

    func testAnOversizedHandshakeLengthIsRefusedAsSoonAsItsHeaderArrives() throws {
        let (channel, recorder) = try scriptedResponderChannel()
        try? channel.writeInbound(ByteBuffer(bytes: [0xFF, 0xFF]))
        XCTAssertEqual(recorder.noiseErrors, [.handshakeMessageTooLarge(length: 65_535, limit: 1024)])
        XCTAssertFalse(channel.isActive)
    }

    func testGarbageInPlaceOfAHandshakeFailsAndClosesOnlyThatConnection() throws {
        let (http, httpRecorder) = try scriptedResponderChannel()
        try? http.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
        XCTAssertEqual(httpRecorder.noiseErrors, [.handshakeMessageTooLarge(length: 0x4745, limit: 1024)])
        XCTAssertFalse(http.isActive)

        let (short, shortRecorder) = try scriptedResponderChannel()
        try? short.writeInbound(ByteBuffer(bytes: [0, 5, 1, 2, 3, 4, 5]))
        guard case .malformedHandshakeMessage? = shortRecorder.noiseErrors.first else { return XCTFail("\(shortRecorder.errors)") }

        let (zero, zeroRecorder) = try scriptedResponderChannel()
        try? zero.writeInbound(ByteBuffer(bytes: [0, 32] + [UInt8](repeating: 0, count: 32)))
        guard case .invalidKey? = zeroRecorder.noiseErrors.first else { return XCTFail("a low-order key: \(zeroRecorder.errors)") }

        var random = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let (channel, recorder) = try scriptedResponderChannel()
            let length = Int.random(in: 0...300, using: &random)
            try? channel.writeInbound(ByteBuffer(bytes: [UInt8(length >> 8), UInt8(length & 0xFF)] + (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }))
            channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
            XCTAssertEqual(recorder.noiseErrors.count, 1, "\(recorder.errors)")
            XCTAssertFalse(channel.isActive)
        }
    }

    func testAPeerThatClosesMidHandshakeIsReported() throws {
        let (channel, recorder) = try scriptedResponderChannel()
        var initiator = ScriptedNoisePeer(role: .initiator, identity: Identities.alice)
        var first = try initiator.write(payload: [])
        try channel.writeInbound(try XCTUnwrap(first.readSlice(length: 10)))
        XCTAssertEqual(recorder.noiseErrors, [])
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(recorder.noiseErrors, [.closedDuringHandshake])
        XCTAssertFalse(channel.isActive)

        let (other, otherRecorder) = try scriptedResponderChannel()
        other.pipeline.fireChannelInactive()
        XCTAssertEqual(otherRecorder.noiseErrors, [.closedDuringHandshake])
    }

    func testAStreamEndingInTheMiddleOfATransportMessageIsReportedAsTruncated() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        try pair.initiator.writeOutbound(ByteBuffer(string: "cut short"))
        var bytes = try EmbeddedNoisePair.drain(pair.initiator)
        try pair.responder.writeInbound(try XCTUnwrap(bytes.readSlice(length: bytes.readableBytes - 1)))
        pair.responder.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(pair.responderRecorder.noiseErrors, [.truncatedMessage])
        XCTAssertEqual(pair.responderRecorder.received.readableBytes, 0)
        XCTAssertFalse(pair.responder.isActive)
    }

    func testATransportMessageShorterThanATagFailsToDecrypt() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        try? pair.responder.writeInbound(ByteBuffer(bytes: [0, 3, 1, 2, 3]))
        XCTAssertEqual(pair.responderRecorder.noiseErrors, [.decryptionFailed])
    }

    // MARK: Nonces

    func testTheSenderClosesRatherThanUseTheLastNonce() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        pair.initiatorHandler.setNoncesForTesting(send: UInt64.max - 1, receive: nil)
        pair.responderHandler.setNoncesForTesting(send: nil, receive: UInt64.max - 1)
        try pair.initiator.writeOutbound(ByteBuffer(string: "the last message"))
        try pair.exchange()
        XCTAssertEqual(pair.responderRecorder.received, ByteBuffer(string: "the last message"))
        let refused = pair.loop.makePromise(of: Void.self)
        pair.initiator.pipeline.writeAndFlush(ByteBuffer(string: "one too many"), promise: refused)
        guard case .failure(let error)? = refused.futureResult.resultIfAvailable else { return XCTFail("the write was not refused") }
        XCTAssertEqual(error as? NoiseError, .nonceExhausted)
        XCTAssertEqual(pair.initiatorRecorder.noiseErrors, [.nonceExhausted])
        XCTAssertFalse(pair.initiator.isActive)
        XCTAssertEqual(try EmbeddedNoisePair.drain(pair.initiator).readableBytes, 0)
    }

    func testTheReceiverClosesRatherThanAcceptAMessageAtTheLastNonce() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        pair.responderHandler.setNoncesForTesting(send: nil, receive: UInt64.max)
        try pair.initiator.writeOutbound(ByteBuffer(string: "x"))
        try pair.exchange()
        XCTAssertEqual(pair.responderRecorder.noiseErrors, [.nonceExhausted])
        XCTAssertFalse(pair.responder.isActive)
    }

    // MARK: Helpers

    private func connect(_ pair: EmbeddedNoisePair, relay: (ByteBuffer, Bool) -> ByteBuffer?) throws {
        pair.responder.connect()
        pair.initiator.connect()
        try pair.exchange(through: relay)
    }

    private static func flipping(_ bytes: ByteBuffer, at offset: Int) -> ByteBuffer {
        var bytes = bytes
        let index = bytes.readerIndex + offset
        if let byte = bytes.getInteger(at: index, as: UInt8.self) { bytes.setInteger(byte ^ 0x40, at: index) }
        return bytes
    }

    /// A responder stage on its own channel, active and waiting for message 1.
    private func scriptedResponderChannel() throws -> (EmbeddedChannel, NoiseRecorder) {
        let recorder = NoiseRecorder()
        let channel = try EmbeddedChannel(handlers: [NoiseHandler(responderWith: NoiseConfiguration(identity: Identities.bob)), recorder])
        channel.connect()
        return (channel, recorder)
    }

    /// A responder stage against a scripted initiator whose message 3 carries `payload(peer)`.
    private func responderAgainstScriptedInitiator(
        identity: NodeIdentity = Identities.alice, payload: (ScriptedNoisePeer) throws -> [UInt8]
    ) throws -> (EmbeddedChannel, NoiseRecorder) {
        let (channel, recorder) = try scriptedResponderChannel()
        var initiator = ScriptedNoisePeer(role: .initiator, identity: identity)
        try channel.writeInbound(try initiator.write(payload: []))
        let responderPayload = try initiator.read(try EmbeddedNoisePair.drain(channel))
        XCTAssertEqual(try HandshakePayload(decoding: responderPayload).peerID, Identities.bob.peerID)
        try? channel.writeInbound(try initiator.write(payload: try payload(initiator)))
        return (channel, recorder)
    }
}
