import Pheromones
@testable import PheromonesP2P
import XCTest

// MARK: - Helpers

/// Feeds `bytes` as one read, then asks for the next read as a channel reading on its own does
/// after each batch (the liveness stages count time only while reading is asked for).
private func feed(_ channel: EmbeddedChannel, _ bytes: some Sequence<UInt8>) throws {
    var buffer = ByteBuffer()
    buffer.writeBytes(bytes)
    try channel.writeInbound(buffer)
    channel.pipeline.read()
}

/// The envelopes in the native frames the channel sent, oldest first.
private func sentEnvelopes(_ channel: EmbeddedChannel) throws -> [Envelope] {
    var decoder = NativeEnvelopeFrameDecoder()
    var envelopes: [Envelope] = []
    while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
        while let envelope = try decoder.decode(buffer: &buffer) { envelopes.append(envelope) }
        XCTAssertEqual(buffer.readableBytes, 0, "the channel sent whole frames")
    }
    return envelopes
}

/// The liveness timeouts that reached the end of the pipeline.
private func timeouts(_ channel: EmbeddedChannel) -> [ConnectionTimeout] {
    channel.unhandledUserEvents.compactMap { $0 as? ConnectionTimeout }
}

/// A getreq on the native wire, as bytes.
func nativeRequest(_ operation: String = "getreq") throws -> [UInt8] {
    Array(try nativeFrame(Envelope(name: "peer", operation: operation, data: ByteBuffer(string: "0123456789"))).readableBytesView)
}

/// A getreq on the JSON wire, as Go writes it.
func jsonRequest(_ operation: String = "getreq") -> [UInt8] {
    Array(goJSON(name: "peer", operation: operation, data: "0123456789").readableBytesView)
}

// MARK: - The partial-message timer, in virtual time

/// ``PartialMessageTimer`` on an `EmbeddedChannel`: a message that has started arriving must be
/// complete within the timeout, counted from its first byte.
final class PartialMessageTimerTests: XCTestCase {
    private static let timeout = TimeAmount.seconds(10)

    private func nativeChannel() throws -> EmbeddedChannel {
        let framer = NativeWire.framer(maximumFrameLength: 1 << 20)
        let channel = try EmbeddedChannel(handlers: [PartialMessageTimer(timeout: Self.timeout, framer: framer), framer])
        channel.connect()
        return channel
    }

    private func jsonChannel() throws -> EmbeddedChannel {
        let framer = JSONWire.framer(maximumObjectSize: 1 << 20)
        let channel = try EmbeddedChannel(handlers: [
            PartialMessageTimer(timeout: Self.timeout, framer: framer), framer, JSONEnvelopeCodec(maximumObjectSize: 1 << 20),
        ])
        channel.connect()
        return channel
    }

    func testANativeFrameHalfSentClosesTheConnectionAtTheTimeout() throws {
        let channel = try nativeChannel()
        let frame = try nativeRequest()
        try feed(channel, frame.prefix(frame.count / 2))
        channel.loop.advanceTime(by: Self.timeout - .milliseconds(1))
        XCTAssertTrue(channel.isActive, "still within the timeout")
        channel.loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive, "closed at the timeout")
        XCTAssertEqual(timeouts(channel), [.partialMessage], "the reason went up the pipeline")
        XCTAssertNil(try channel.readInbound(as: Envelope.self))
    }

    func testAJSONObjectTricklingOneBytePerSecondIsClosedAtTheDeadlineNotExtendedByTheTrickle() throws {
        let channel = try jsonChannel()
        let object = jsonRequest()
        XCTAssertGreaterThan(object.count, 20, "the object would take longer than the timeout to trickle in")
        var sent = 0
        while channel.isActive, sent < object.count {
            try feed(channel, [object[sent]])
            sent += 1
            channel.loop.advanceTime(by: .seconds(1))
        }
        XCTAssertFalse(channel.isActive)
        XCTAssertEqual(sent, 10, "closed 10 s after the first byte, however many followed")
        XCTAssertEqual(channel.loop.now, Deadline(uptimeNanoseconds: 0) + Self.timeout)
        XCTAssertEqual(timeouts(channel), [.partialMessage])
        XCTAssertNil(try channel.readInbound(as: Envelope.self))
    }

    func testMessagesCompletedInTimeAreNotAffectedAndEachNewMessageGetsTheWholeTimeout() throws {
        for wire in WireFormat.allCases {
            let channel = try wire == .native ? nativeChannel() : jsonChannel()
            let first = try wire == .native ? nativeRequest("first") : jsonRequest("first")
            let second = try wire == .native ? nativeRequest("second") : jsonRequest("second")
            // The first message takes 9 s; the read that completes it brings half of the second,
            // whose deadline runs from then (t = 9 s), not from the first message's first byte.
            try feed(channel, first.prefix(5))
            channel.loop.advanceTime(by: .seconds(9))
            try feed(channel, first.dropFirst(5) + second.prefix(5))
            XCTAssertEqual(try channel.readInbound(as: Envelope.self)?.operation, "first", "\(wire)")
            channel.loop.advanceTime(by: .seconds(9))
            XCTAssertTrue(channel.isActive, "\(wire): at t = 18 s the second message is 9 s old")
            try feed(channel, second.dropFirst(5))
            XCTAssertEqual(try channel.readInbound(as: Envelope.self)?.operation, "second", "\(wire)")
            // Nothing is partly here: an idle connection stays, whatever the time.
            channel.loop.advanceTime(by: .seconds(600))
            XCTAssertTrue(channel.isActive, "\(wire): an idle connection is not the timer's business")
            XCTAssertEqual(timeouts(channel), [], "\(wire)")
        }
    }

    func testWhitespaceAfterAJSONObjectBeginsNoMessage() throws {
        // Go's json.Encoder ends each object with a newline; the framer keeps it until the next
        // object, and an idle connection must not be closed for it.
        let channel = try jsonChannel()
        try feed(channel, jsonRequest() + Array("\n".utf8))
        XCTAssertEqual(try channel.readInbound(as: Envelope.self)?.operation, "getreq")
        channel.loop.advanceTime(by: .seconds(60))
        XCTAssertTrue(channel.isActive)
    }

    func testTheDeadlineWaitsWhileThisSideHoldsReadingBack() throws {
        let channel = try nativeChannel()
        let frame = try nativeRequest()
        // The bytes arrive, and no read is asked for afterwards (a later stage holds it: the
        // protocol is behind). The rest of the frame may be waiting in the kernel.
        try channel.writeInbound(ByteBuffer(bytes: frame.prefix(3)))
        channel.loop.advanceTime(by: .seconds(60))
        XCTAssertTrue(channel.isActive, "not the peer's fault")
        // Reading resumes: the message gets the whole timeout again from now.
        channel.pipeline.read()
        channel.loop.advanceTime(by: Self.timeout - .milliseconds(1))
        XCTAssertTrue(channel.isActive)
        channel.loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive)
        XCTAssertEqual(timeouts(channel), [.partialMessage])
    }
}

// MARK: - The keepalive, in virtual time

/// ``KeepaliveStage`` on an `EmbeddedChannel` behind the native wire: pings after the interval of
/// silence, a close after the timeout, any byte from the peer resets both, pings are answered.
final class KeepaliveStageTests: XCTestCase {
    private static let interval = TimeAmount.seconds(15)
    private static let timeout = TimeAmount.seconds(45)

    private func channel() throws -> EmbeddedChannel {
        let channel = try EmbeddedChannel(
            handlers: NativeWire.handlers() + [KeepaliveStage(localName: "me", interval: Self.interval, timeout: Self.timeout)])
        channel.connect()
        return channel
    }

    private func operations(_ envelopes: [Envelope]) -> [String] { envelopes.map(\.operation) }

    func testAPingGoesOutAfterTheIntervalAndAgainEachIntervalAndTheConnectionClosesAtTheTimeout() throws {
        let channel = try channel()
        channel.loop.advanceTime(by: Self.interval - .milliseconds(1))
        XCTAssertEqual(try sentEnvelopes(channel), [], "nothing before the interval")
        channel.loop.advanceTime(by: .milliseconds(1))
        let ping = try sentEnvelopes(channel)
        XCTAssertEqual(operations(ping), ["\u{0}ping"])
        XCTAssertEqual(ping.first?.name, "me")
        channel.loop.advanceTime(by: Self.interval)
        XCTAssertEqual(operations(try sentEnvelopes(channel)), ["\u{0}ping"], "again at 30 s")
        channel.loop.advanceTime(by: Self.interval - .milliseconds(1))
        XCTAssertTrue(channel.isActive)
        channel.loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive, "closed after 45 s of silence")
        XCTAssertEqual(timeouts(channel), [.keepalive])
    }

    func testAnyBytesFromThePeerResetTheSilenceWholeMessagesOrNot() throws {
        let channel = try channel()
        channel.loop.advanceTime(by: .seconds(10))
        try feed(channel, try nativeRequest())
        XCTAssertEqual(try channel.readInbound(as: Envelope.self)?.operation, "getreq", "other messages go on")
        channel.loop.advanceTime(by: .seconds(10))
        XCTAssertEqual(try sentEnvelopes(channel), [], "20 s in, 10 s after the message: no ping")
        channel.loop.advanceTime(by: .seconds(5))
        XCTAssertEqual(operations(try sentEnvelopes(channel)), ["\u{0}ping"], "15 s after the message")

        // Three bytes of a frame are life too (its slowness is the partial-message timer's business).
        channel.loop.advanceTime(by: .seconds(29))
        XCTAssertEqual(operations(try sentEnvelopes(channel)), ["\u{0}ping"], "another at 30 s of silence")
        XCTAssertTrue(channel.isActive, "44 s after the message")
        try feed(channel, try nativeRequest().prefix(3))
        channel.loop.advanceTime(by: .seconds(44))
        XCTAssertTrue(channel.isActive, "44 s after the last bytes")
        XCTAssertEqual(operations(try sentEnvelopes(channel)), ["\u{0}ping", "\u{0}ping"], "at 15 s and 30 s of the new silence")
        channel.loop.advanceTime(by: .seconds(1))
        XCTAssertFalse(channel.isActive, "45 s after the last bytes")
        XCTAssertEqual(timeouts(channel), [.keepalive])
    }

    func testAPongIsLifeAndIsNotPassedOn() throws {
        let channel = try channel()
        channel.loop.advanceTime(by: Self.interval)
        XCTAssertEqual(operations(try sentEnvelopes(channel)), ["\u{0}ping"])
        channel.loop.advanceTime(by: .seconds(1))
        try feed(channel, Array(try nativeFrame(Envelope(name: "peer", operation: "\u{0}pong")).readableBytesView))
        XCTAssertNil(try channel.readInbound(as: Envelope.self), "the router never sees a pong")
        channel.loop.advanceTime(by: Self.timeout - .milliseconds(1))
        XCTAssertTrue(channel.isActive, "the silence counts from the pong")
        channel.loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testThePeersPingIsAnsweredWithAPongAndIsNotPassedOn() throws {
        let channel = try channel()
        try feed(channel, Array(try nativeFrame(Envelope(name: "peer", operation: "\u{0}ping")).readableBytesView))
        let answer = try sentEnvelopes(channel)
        XCTAssertEqual(operations(answer), ["\u{0}pong"])
        XCTAssertEqual(answer.first?.name, "me")
        XCTAssertNil(try channel.readInbound(as: Envelope.self), "the router never sees a ping")
    }

    func testNoPingsOnceTheOutputIsShutAndNoneAnswered() throws {
        let channel = try channel()
        channel.pipeline.close(mode: .output)
        channel.loop.advanceTime(by: Self.interval * 2)
        try feed(channel, Array(try nativeFrame(Envelope(name: "peer", operation: "\u{0}ping")).readableBytesView))
        XCTAssertEqual(try sentEnvelopes(channel), [], "nothing is written after this side shut its output")
    }

    func testTheSilenceThisSideCausesByNotReadingIsNotThePeers() throws {
        let channel = try channel()
        // A read batch, and no read asked for afterwards: the protocol is behind.
        try channel.writeInbound(try nativeFrame(Envelope(name: "peer", operation: "getreq")))
        channel.loop.advanceTime(by: Self.timeout * 3)
        XCTAssertTrue(channel.isActive, "the peer may have answered; this side did not read")
        channel.pipeline.read()
        channel.loop.advanceTime(by: Self.timeout - .milliseconds(1))
        XCTAssertTrue(channel.isActive, "the silence counts from the read request")
        channel.loop.advanceTime(by: .milliseconds(1))
        XCTAssertFalse(channel.isActive)
    }

    func testZeroSwitchesPingsAndTheCloseOff() throws {
        let channel = try EmbeddedChannel(handlers: NativeWire.handlers() + [KeepaliveStage(localName: "me", interval: .zero, timeout: .zero)])
        channel.connect()
        channel.loop.advanceTime(by: .minutes(10))
        XCTAssertTrue(channel.isActive)
        XCTAssertEqual(try sentEnvelopes(channel), [])
        XCTAssertEqual(channel.loop.pendingTimerCount, 0, "no timer at all")
        try feed(channel, Array(try nativeFrame(Envelope(name: "peer", operation: "\u{0}ping")).readableBytesView))
        XCTAssertEqual(operations(try sentEnvelopes(channel)), ["\u{0}pong"], "the peer's pings are still answered")
    }
}
