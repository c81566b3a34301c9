import Pheromones
import PheromonesNoise
import XCTest

/// Our initiator against our responder, each on an `EmbeddedChannel` wired to the other: the
/// handshake, data both ways, queued writes, the timeout, and the expected peer.
final class EmbeddedNoiseTests: XCTestCase {
    func testAnInitiatorAndAResponderCompleteTheHandshakeAndLearnEachOthersPeerID() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        XCTAssertEqual(pair.initiatorRecorder.handshakes.map(\.remotePeerID), [Identities.bob.peerID])
        XCTAssertEqual(pair.responderRecorder.handshakes.map(\.remotePeerID), [Identities.alice.peerID])
        XCTAssertEqual(pair.initiatorRecorder.handshakes.first?.remoteIdentityKey.rawRepresentation, Identities.bob.publicKey.rawRepresentation)
        XCTAssertEqual(pair.initiatorRecorder.handshakes.first?.handshakeHash, pair.responderRecorder.handshakes.first?.handshakeHash)
        XCTAssertFalse(pair.initiatorHandler.holdsHandshakeState, "the handshake state is dropped once it completes")
        XCTAssertFalse(pair.responderHandler.holdsHandshakeState)
        XCTAssertTrue(pair.initiatorRecorder.errors.isEmpty, "\(pair.initiatorRecorder.errors)")
        XCTAssertTrue(pair.responderRecorder.errors.isEmpty, "\(pair.responderRecorder.errors)")
    }

    func testDataGoesBothWaysAfterTheHandshake() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        try pair.initiator.writeOutbound(ByteBuffer(string: "hello, responder"))
        try pair.exchange()
        XCTAssertEqual(pair.responderRecorder.received, ByteBuffer(string: "hello, responder"))
        try pair.responder.writeOutbound(ByteBuffer(string: "hello, initiator"))
        try pair.exchange()
        XCTAssertEqual(pair.initiatorRecorder.received, ByteBuffer(string: "hello, initiator"))
    }
}

/// How plaintext is cut into transport messages and rejoined, whatever the sizes and split points.
final class NoiseStreamTests: XCTestCase {
    func testSeveralMebibytesInRandomWritesArriveWholeThroughRandomSplitsWithAtMostOneFrameBuffered() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        var random = SeededGenerator(seed: 42)
        var sent = ByteBuffer()
        for direction in [true, false] {
            let (writer, readerChannel, readerHandler) = direction
                ? (pair.initiator, pair.responder, pair.responderHandler) : (pair.responder, pair.initiator, pair.initiatorHandler)
            sent.clear()
            while sent.readableBytes < 3 << 20 {
                let size = [1, 100, 65_519, 65_520, 200_000, Int.random(in: 1...300_000, using: &random)].randomElement(using: &random) ?? 1
                let chunk = ByteBuffer(bytes: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ sent.readableBytes) })
                sent.writeImmutableBuffer(chunk)
                writer.pipeline.write(chunk)
                if Bool.random(using: &random) { writer.pipeline.flush() }
            }
            writer.pipeline.flush()
            var ciphertext = try EmbeddedNoisePair.drain(writer)
            try assertFramesAreAtMostTheMaximum(ciphertext)
            while ciphertext.readableBytes > 0 {
                let cut = min(ciphertext.readableBytes, Int.random(in: 1...150_000, using: &random))
                try readerChannel.writeInbound(try XCTUnwrap(ciphertext.readSlice(length: cut)))
                XCTAssertLessThanOrEqual(readerHandler.bufferedInboundBytes, 2 + 65_535)
            }
            XCTAssertEqual(readerHandler.bufferedInboundBytes, 0)
        }
        XCTAssertEqual(pair.initiatorRecorder.received, sent)
        XCTAssertTrue(pair.responderRecorder.errors.isEmpty && pair.initiatorRecorder.errors.isEmpty)
    }

    func testManySmallWritesInOneFlushShareOneTransportMessageAndOneNetworkWrite() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        for index in 0..<100 { pair.initiator.pipeline.write(ByteBuffer(string: "message \(index);")) }
        pair.initiator.pipeline.flush()
        var writes: [ByteBuffer] = []
        while let bytes = try pair.initiator.readOutbound(as: ByteBuffer.self) { writes.append(bytes) }
        XCTAssertEqual(writes.count, 1, "one flush, one write")
        XCTAssertEqual(writes.first?.readableBytes, 1090 + 16 + 2, "one message: 2-byte length, ciphertext, tag")
        for bytes in writes { try pair.responder.writeInbound(bytes) }
        XCTAssertEqual(pair.responderRecorder.reads, 1)
        XCTAssertEqual(pair.responderRecorder.received.readableBytes, 1090)
    }

    func testALargeWriteIsSplitIntoMessagesOfAtMost65535BytesOnTheWire() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        let promise = pair.loop.makePromise(of: Void.self)
        pair.initiator.pipeline.writeAndFlush(ByteBuffer(repeating: 7, count: 200_000), promise: promise)
        let ciphertext = try EmbeddedNoisePair.drain(pair.initiator)
        let lengths = try assertFramesAreAtMostTheMaximum(ciphertext)
        XCTAssertEqual(lengths, [65_535, 65_535, 65_535, 200_000 - 3 * 65_519 + 16])
        XCTAssertTrue(promise.futureResult.isFulfilled)
        try pair.responder.writeInbound(ciphertext)
        XCTAssertEqual(pair.responderRecorder.received, ByteBuffer(repeating: 7, count: 200_000))
    }

    /// The lengths of the frames in `stream`, each checked to be at most 65,535.
    @discardableResult
    private func assertFramesAreAtMostTheMaximum(_ stream: ByteBuffer, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        var stream = stream
        var lengths: [Int] = []
        while let length = stream.readInteger(as: UInt16.self) {
            lengths.append(Int(length))
            XCTAssertNotNil(stream.readSlice(length: Int(length)), "a whole frame", file: file, line: line)
        }
        XCTAssertEqual(stream.readableBytes, 0, file: file, line: line)
        return lengths
    }
}

/// Writes before the handshake, the timeout, and the expected peer.
final class NoiseHandshakeTests: XCTestCase {
    func testWritesMadeBeforeTheHandshakeCompletesGoOutOnceItHasInOrder() throws {
        let pair = try EmbeddedNoisePair()
        pair.responder.connect()
        pair.initiator.connect()
        let first = pair.loop.makePromise(of: Void.self)
        pair.initiator.pipeline.write(ByteBuffer(string: "one "), promise: first)
        pair.initiator.pipeline.writeAndFlush(ByteBuffer(string: "two"))
        pair.responder.pipeline.writeAndFlush(ByteBuffer(string: "early reply"))
        XCTAssertFalse(first.futureResult.isFulfilled)
        try pair.exchange()
        XCTAssertEqual(pair.responderRecorder.received, ByteBuffer(string: "one two"))
        XCTAssertEqual(pair.initiatorRecorder.received, ByteBuffer(string: "early reply"))
        XCTAssertTrue(first.futureResult.isFulfilled)
    }

    func testWritesBeyondTheQueueLimitBeforeTheHandshakeFailWithWriteQueueFull() throws {
        let pair = try EmbeddedNoisePair { initiator, _ in initiator.maximumQueuedBytes = 10 }
        pair.responder.connect()
        pair.initiator.connect()
        let fits = pair.loop.makePromise(of: Void.self)
        let tooMuch = pair.loop.makePromise(of: Void.self)
        pair.initiator.pipeline.write(ByteBuffer(string: "12345678"), promise: fits)
        pair.initiator.pipeline.writeAndFlush(ByteBuffer(string: "abc"), promise: tooMuch)
        guard case .failure(let error)? = tooMuch.futureResult.resultIfAvailable else { return XCTFail("the write over the limit was not refused") }
        XCTAssertEqual(error as? NoiseError, .writeQueueFull(limit: 10))
        try pair.exchange()
        XCTAssertEqual(pair.responderRecorder.received, ByteBuffer(string: "12345678"))
        XCTAssertNotNil(try fits.futureResult.resultIfAvailable?.get())
    }

    func testAHandshakeThatDoesNotCompleteInTimeFailsWithHandshakeTimedOut() throws {
        let loop = EmbeddedEventLoop()
        let recorder = NoiseRecorder()
        var configuration = try NoiseConfiguration(identity: Identities.bob)
        configuration.handshakeTimeout = .seconds(2)
        let channel = try EmbeddedChannel(handlers: [NoiseHandler(responderWith: configuration), recorder], loop: loop)
        channel.connect()
        loop.advanceTime(by: .milliseconds(1999))
        XCTAssertTrue(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(recorder.noiseErrors, [.handshakeTimedOut])
        XCTAssertFalse(channel.isActive)
    }

    func testTheDefaultHandshakeTimeoutIsTenSecondsAndACompletedHandshakeIsNotTimedOut() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        pair.loop.advanceTime(by: .seconds(60))
        XCTAssertTrue(pair.initiator.isActive && pair.responder.isActive)
        let lone = try EmbeddedNoisePair()
        lone.initiator.connect()
        lone.loop.advanceTime(by: .milliseconds(9999))
        XCTAssertTrue(lone.initiator.isActive)
        lone.loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(lone.initiatorRecorder.noiseErrors, [.handshakeTimedOut])
    }

    func testAnInitiatorExpectingAnotherPeerRefusesTheResponderWithAnErrorNamingBothIDs() throws {
        let pair = try EmbeddedNoisePair { initiator, _ in initiator.expectedPeer = Identities.mallory.peerID }
        try pair.connect()
        let expected = NoiseError.unexpectedPeer(expected: Identities.mallory.peerID, actual: Identities.bob.peerID)
        XCTAssertEqual(pair.initiatorRecorder.noiseErrors, [expected])
        XCTAssertTrue(expected.description.contains(Identities.mallory.peerID.description))
        XCTAssertTrue(expected.description.contains(Identities.bob.peerID.description))
        XCTAssertFalse(pair.initiator.isActive)
        XCTAssertTrue(pair.initiatorRecorder.handshakes.isEmpty)
        XCTAssertTrue(pair.responderRecorder.handshakes.isEmpty, "message 3 (our identity) was never sent")

        let matching = try EmbeddedNoisePair { initiator, _ in initiator.expectedPeer = Identities.bob.peerID }
        try matching.connect()
        XCTAssertEqual(matching.initiatorRecorder.handshakes.map(\.remotePeerID), [Identities.bob.peerID])
    }
}
