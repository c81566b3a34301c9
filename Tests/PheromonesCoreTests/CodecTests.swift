import Pheromones
import XCTest

// MARK: - Test doubles

/// Splits input at `\n` and fires each line without its newline; at end of input, fires what is
/// left as a last line (so `decodeLast` has something to do).
private struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    var emitRemainderAtEOF = false

    mutating func decode(buffer: inout ByteBuffer) -> ByteBuffer? {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = buffer.readSlice(length: newline - buffer.readerIndex)
        buffer.moveReaderIndex(forwardBy: 1)
        return line
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) -> ByteBuffer? {
        if let line = decode(buffer: &buffer) { return line }
        guard emitRemainderAtEOF, buffer.readableBytes > 0 else { return nil }
        return buffer.readSlice(length: buffer.readableBytes)
    }
}

/// Encodes strings as their UTF-8 bytes; refuses "bad" (after writing part of it, to check rollback).
private struct StringEncoder: MessageToByteEncoder {
    typealias OutboundIn = String
    struct Refused: Error, Equatable {}

    mutating func encode(data: String, out: inout ByteBuffer) throws {
        out.writeString(data)
        if data == "bad" { throw Refused() }
    }
}

/// Passes bytes on and runs `onRead` for each message (after passing it on).
private final class ReadHook: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var seen: [ByteBuffer] = []
    let onRead: (ReadHook, ChannelHandlerContext, ByteBuffer) -> Void

    init(onRead: @escaping (ReadHook, ChannelHandlerContext, ByteBuffer) -> Void) {
        self.onRead = onRead
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        seen.append(data)
        context.fireChannelRead(data)
        onRead(self, context, data)
    }
}

/// Records idle events with the virtual time (in milliseconds) at which they arrived.
private final class IdleEventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var events: [(event: IdleStateEvent, atMilliseconds: Int64)] = []

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateEvent {
            events.append((idle, Int64(context.eventLoop.now.uptimeNanoseconds / 1_000_000)))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

// MARK: - Helpers

private func bytes(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

/// A frame built by hand (not by the prepender), so decoder tests do not depend on the encoder.
private func frame(_ payload: [UInt8], _ lengthFieldLength: LengthFieldLength, _ endianness: Endianness = .big) -> ByteBuffer {
    var buffer = ByteBuffer()
    switch lengthFieldLength {
    case .one: buffer.writeInteger(UInt8(payload.count), endianness: endianness)
    case .two: buffer.writeInteger(UInt16(payload.count), endianness: endianness)
    case .four: buffer.writeInteger(UInt32(payload.count), endianness: endianness)
    case .eight: buffer.writeInteger(UInt64(payload.count), endianness: endianness)
    }
    buffer.writeBytes(payload)
    return buffer
}

private func concatenated(_ buffers: [ByteBuffer]) -> ByteBuffer {
    var all = ByteBuffer()
    for buffer in buffers { all.writeImmutableBuffer(buffer) }
    return all
}

private func readAllInbound(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
    var messages: [ByteBuffer] = []
    while let message = try channel.readInbound(as: ByteBuffer.self) { messages.append(message) }
    return messages
}

private func baseAddress(_ buffer: ByteBuffer) -> UnsafeRawPointer? {
    buffer.withUnsafeReadableBytes { $0.baseAddress }
}

// MARK: - Tests

final class CodecTests: XCTestCase {
    // MARK: Length-field framing

    func testTheLengthFieldDecoderPassesTheVerifierForEveryLengthFieldSizeAndByteOrder() throws {
        for lengthFieldLength in [LengthFieldLength.one, .two, .four, .eight] {
            for endianness in [Endianness.big, .little] {
                let payloads: [[UInt8]] = [[], [0x01], [0x01, 0x02, 0x03], Array(repeating: 0xab, count: 200), Array(0..<255)]
                var pairs: [(ByteBuffer, [ByteBuffer])] = payloads.map {
                    (frame($0, lengthFieldLength, endianness), [ByteBuffer(bytes: $0)])
                }
                // One input holding two frames must produce both.
                pairs.append((
                    concatenated([frame([7, 7], lengthFieldLength, endianness), frame([], lengthFieldLength, endianness)]),
                    [ByteBuffer(bytes: [7, 7]), ByteBuffer()]
                ))
                XCTAssertNoThrow(
                    try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
                        LengthFieldBasedFrameDecoder(
                            lengthFieldLength: lengthFieldLength, maximumFrameLength: 1000, endianness: endianness)
                    },
                    "\(lengthFieldLength) \(endianness)")
            }
        }
    }

    func testTheVerifierReportsADecoderThatOnlyWorksOnWholeInput() {
        // Decodes a "frame" only when it is the whole buffer: fine fed whole, wrong when split.
        struct WholeBufferDecoder: ByteToMessageDecoder {
            mutating func decode(buffer: inout ByteBuffer) -> ByteBuffer? {
                guard buffer.readableBytes >= 2 else { return nil }
                return buffer.readSlice(length: buffer.readableBytes)
            }
        }
        XCTAssertThrowsError(
            try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: [(bytes("abc"), [bytes("abc")])]) {
                WholeBufferDecoder()
            }
        ) { error in
            guard let failure = error as? ByteToMessageDecoderVerifier.VerificationError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertEqual(failure.mode, .byteByByte)
            XCTAssertEqual(failure.inputIndex, 0)
            XCTAssertTrue(failure.description.contains("byte by byte"), failure.description)
        }
    }

    func testAHostile4GiBLengthHeaderIsRejectedBeforeAnyAllocationAndTheChannelIsClosed() throws {
        let decoder = ByteToMessageHandler(LengthFieldBasedFrameDecoder())
        let channel = try EmbeddedChannel(handler: decoder)
        channel.connect()

        // Half the header: buffered (two bytes), nothing else.
        try channel.writeInbound(ByteBuffer(bytes: [0xff, 0xff]))
        XCTAssertEqual(decoder.bufferedByteCount, 2)
        XCTAssertLessThanOrEqual(decoder.bufferCapacity, 8)

        // The rest of the header: rejected at once, without waiting for (or buffering) the payload.
        XCTAssertThrowsError(try channel.writeInbound(ByteBuffer(bytes: [0xff, 0xff, 0x00, 0x01]))) { error in
            XCTAssertEqual(error as? LengthFieldFramerError, .frameTooLarge(length: 0xffff_ffff, maximum: 1 << 20))
        }
        XCTAssertEqual(decoder.bufferCapacity, 0, "the buffer is released, never grown toward the announced size")
        XCTAssertFalse(channel.isActive)
        XCTAssertTrue(channel.closeFuture.isFulfilled)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
    }

    func testAfterAnErrorTheDecoderDecodesNothingMore() throws {
        /// Keeps the channel open by not passing close on, so the decoder sees input after its error.
        final class CloseSwallower: ChannelOutboundHandler {
            typealias OutboundIn = ByteBuffer
            typealias OutboundOut = ByteBuffer
            var closeRequests = 0
            func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
                closeRequests += 1
                promise?.succeed()
            }
        }
        let swallower = CloseSwallower()
        let channel = try EmbeddedChannel(handlers: [swallower, ByteToMessageHandler(LengthFieldBasedFrameDecoder(maximumFrameLength: 4))])
        channel.connect()
        XCTAssertThrowsError(try channel.writeInbound(concatenated([frame([1], .four), frame([1, 2, 3, 4, 5], .four)])))
        XCTAssertEqual(swallower.closeRequests, 1, "the decoder asked to close the connection")
        XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(bytes: [1])])

        XCTAssertNoThrow(try channel.writeInbound(frame([2], .four)))
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self), "input after the error is dropped")
        XCTAssertEqual(swallower.closeRequests, 1)
    }

    func testAnEightByteLengthAboveIntMaxIsRejectedAsTooLarge() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: .eight)))
        channel.connect()
        var header = ByteBuffer()
        header.writeInteger(UInt64.max)
        XCTAssertThrowsError(try channel.writeInbound(header)) { error in
            XCTAssertEqual(error as? LengthFieldFramerError, .frameTooLarge(length: .max, maximum: 1 << 20))
        }
        XCTAssertFalse(channel.isActive)
    }

    func testAFrameExactlyAtTheMaximumPassesAndOneByteMoreDoesNot() throws {
        let maximum = 1000
        let payload = (0..<maximum).map { UInt8(truncatingIfNeeded: $0) }

        // Whole, and split across many reads (so the whole frame has to be buffered).
        for chunkSize in [maximum + 4, 7, 1] {
            let channel = try EmbeddedChannel(handlers: LengthFieldFramer.handlers(maximumFrameLength: maximum))
            channel.connect()
            let input = frame(payload, .four).readableBytesView.map { $0 }
            for start in stride(from: 0, to: input.count, by: chunkSize) {
                try channel.writeInbound(ByteBuffer(bytes: input[start..<min(start + chunkSize, input.count)]))
            }
            XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(bytes: payload)], "chunks of \(chunkSize)")
            XCTAssertTrue(try channel.finish().isClean)
        }

        let channel = try EmbeddedChannel(handlers: LengthFieldFramer.handlers(maximumFrameLength: maximum))
        channel.connect()
        XCTAssertThrowsError(try channel.writeInbound(frame(payload + [0], .four))) { error in
            XCTAssertEqual(error as? LengthFieldFramerError, .frameTooLarge(length: 1001, maximum: 1000))
        }
        XCTAssertFalse(channel.isActive)
    }

    func testZeroLengthFramesDecodeAsEmptyPayloads() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: .two)))
        channel.connect()
        try channel.writeInbound(concatenated([frame([], .two), frame([9], .two), frame([], .two)]))
        XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(), ByteBuffer(bytes: [9]), ByteBuffer()])
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testDecodedFramesAreSlicesOfTheReadBufferWhenNothingIsBuffered() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder()))
        channel.connect()
        let input = concatenated([frame([1, 2, 3], .four), frame([4, 5], .four)])
        try channel.writeInbound(input)
        let frames = try readAllInbound(channel)
        XCTAssertEqual(frames, [ByteBuffer(bytes: [1, 2, 3]), ByteBuffer(bytes: [4, 5])])
        // Zero copy: the payloads point into the buffer that was read.
        XCTAssertEqual(baseAddress(frames[0]), baseAddress(input).map { $0 + 4 })
        XCTAssertEqual(baseAddress(frames[1]), baseAddress(input).map { $0 + 11 })
    }

    func testThePrependerRoundTripsThroughTheDecoderForEveryLengthFieldSize() throws {
        for lengthFieldLength in [LengthFieldLength.one, .two, .four, .eight] {
            let sender = try EmbeddedChannel(handler: MessageToByteHandler(LengthFieldPrepender(lengthFieldLength: lengthFieldLength)))
            let receiver = try EmbeddedChannel(
                handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: lengthFieldLength)))
            receiver.connect()
            let payloads = [bytes("hello"), ByteBuffer(), ByteBuffer(repeating: 0x5a, count: 255)]
            for payload in payloads { sender.pipeline.write(payload) }
            sender.pipeline.flush()
            while let wire = try sender.readOutbound(as: ByteBuffer.self) { try receiver.writeInbound(wire) }
            XCTAssertEqual(try readAllInbound(receiver), payloads, "\(lengthFieldLength)")
            XCTAssertTrue(try receiver.finish().isClean)
        }
    }

    func testThePrependerRefusesPayloadsItsFieldOrMaximumCannotCarry() throws {
        let narrow = try EmbeddedChannel(handler: MessageToByteHandler(LengthFieldPrepender(lengthFieldLength: .one)))
        XCTAssertThrowsError(try narrow.writeOutbound(ByteBuffer(repeating: 0, count: 256))) { error in
            XCTAssertEqual(error as? LengthFieldFramerError, .frameTooLarge(length: 256, maximum: 255))
        }
        XCTAssertNil(try narrow.readOutbound(as: ByteBuffer.self))

        let capped = try EmbeddedChannel(handler: MessageToByteHandler(LengthFieldPrepender(maximumFrameLength: 10)))
        let promise = capped.loop.makePromise(of: Void.self)
        capped.pipeline.write(ByteBuffer(repeating: 0, count: 11), promise: promise)
        capped.pipeline.write(ByteBuffer(repeating: 1, count: 10))
        capped.pipeline.flush()
        XCTAssertThrowsError(try capped.throwIfErrorCaught()) { error in
            XCTAssertEqual(error as? LengthFieldFramerError, .frameTooLarge(length: 11, maximum: 10))
        }
        XCTAssertThrowsError(try promise.futureResult.resultIfAvailable?.get())
        // The refused payload left nothing behind; the next one went out alone.
        XCTAssertEqual(try capped.readOutbound(as: ByteBuffer.self), frame(Array(repeating: 1, count: 10), .four))
    }

    // MARK: The decoder driver

    func testTheBufferLimitClosesTheConnectionWhenADecoderNeedsMoreBytes() throws {
        // Split across reads: the cumulation fills to the limit, then the decoder still needs more.
        let decoder = ByteToMessageHandler(LineDecoder(), maximumBufferSize: 16)
        let channel = try EmbeddedChannel(handler: decoder)
        channel.connect()
        try channel.writeInbound(bytes("0123456789"))
        XCTAssertThrowsError(try channel.writeInbound(bytes("0123456789"))) { error in
            XCTAssertEqual(error as? ByteToMessageDecoderError, .bufferLimitExceeded(limit: 16))
        }
        XCTAssertFalse(channel.isActive)
        XCTAssertEqual(decoder.bufferCapacity, 0)

        // In one read: the undecoded tail alone is over the limit.
        let single = try EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder(), maximumBufferSize: 16))
        single.connect()
        XCTAssertThrowsError(try single.writeInbound(bytes("ok\n01234567890123456"))) { error in
            XCTAssertEqual(error as? ByteToMessageDecoderError, .bufferLimitExceeded(limit: 16))
        }
        XCTAssertEqual(try readAllInbound(single), [bytes("ok")])
    }

    func testAMessageAsLargeAsTheBufferLimitStillPassesWhenSplit() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder(), maximumBufferSize: 16))
        channel.connect()
        // 15 bytes + newline = exactly the limit, arriving with the next line's start in the same read.
        try channel.writeInbound(bytes("0123456789"))
        try channel.writeInbound(bytes("abcde\nxy"))
        try channel.writeInbound(bytes("z\n"))
        XCTAssertEqual(try readAllInbound(channel), [bytes("0123456789abcde"), bytes("xyz")])
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testLeftoverBytesAtEndOfInputAreReported() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder()))
        channel.connect()
        var partial = frame([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], .four)
        partial.moveWriterIndex(to: 7)
        try channel.writeInbound(concatenated([frame([42], .four), partial]))
        XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(bytes: [42])])
        XCTAssertThrowsError(try channel.finish()) { error in
            XCTAssertEqual(error as? ByteToMessageDecoderError, .leftoverDataAtEOF(bytes: 7))
        }
    }

    func testDecodeLastRunsAtEndOfInputAndItsMessagesArriveBeforeInactive() throws {
        var order: [String] = []
        final class InactiveWatcher: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            typealias InboundOut = ByteBuffer
            let note: (String) -> Void
            init(note: @escaping (String) -> Void) { self.note = note }
            func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
                note(data.getString(at: data.readerIndex, length: data.readableBytes) ?? "?")
                context.fireChannelRead(data)
            }
            func channelInactive(context: ChannelHandlerContext) {
                note("inactive")
                context.fireChannelInactive()
            }
        }
        let channel = try EmbeddedChannel(handlers: [
            ByteToMessageHandler(LineDecoder(emitRemainderAtEOF: true)),
            InactiveWatcher { order.append($0) },
        ])
        channel.connect()
        try channel.writeInbound(bytes("one\ntwo"))
        XCTAssertTrue(try channel.finish().inbound.count == 2)
        XCTAssertEqual(order, ["one", "two", "inactive"])
    }

    func testInputClosedDecodesTheRestAndReportsLeftoverBytes() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: .one)))
        channel.connect()
        try channel.writeInbound(ByteBuffer(bytes: [1, 0xaa, 5, 0xbb]))  // a frame, then 2 of 6 bytes of the next
        channel.pipeline.close(mode: .input)
        XCTAssertThrowsError(try channel.throwIfErrorCaught()) { error in
            XCTAssertEqual(error as? ByteToMessageDecoderError, .leftoverDataAtEOF(bytes: 2))
        }
        XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(bytes: [0xaa])])
        XCTAssertFalse(channel.isActive, "a truncated stream is bad input: the connection is closed")
        XCTAssertTrue(channel.unhandledUserEvents.isEmpty, "inputClosed is superseded by channelInactive")
    }

    func testInputClosedAfterCompleteFramesIsPassedOn() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LengthFieldBasedFrameDecoder(lengthFieldLength: .one)))
        channel.connect()
        try channel.writeInbound(ByteBuffer(bytes: [1, 0xaa]))
        channel.pipeline.close(mode: .input)
        XCTAssertNoThrow(try channel.throwIfErrorCaught())
        XCTAssertTrue(channel.isActive, "half-closed: still open for writing")
        XCTAssertEqual(channel.unhandledUserEvents.compactMap { $0 as? ChannelEvent }, [.inputClosed])
        XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(bytes: [0xaa])])
    }

    func testAHandlerAfterTheDecoderClosingTheChannelMidBatchStopsDecoding() throws {
        let closer = ReadHook { _, context, _ in context.close() }
        let channel = try EmbeddedChannel(handlers: [ByteToMessageHandler(LengthFieldBasedFrameDecoder()), closer])
        channel.connect()
        try channel.writeInbound(concatenated([frame([1], .four), frame([2], .four), frame([3], .four)]))
        XCTAssertEqual(closer.seen, [ByteBuffer(bytes: [1])])
        XCTAssertEqual(try readAllInbound(channel), [ByteBuffer(bytes: [1])])
        XCTAssertFalse(channel.isActive)
        XCTAssertNoThrow(try channel.throwIfErrorCaught())
    }

    func testRemovingTheDecoderMidBatchStopsDecodingAndLaterBytesPassRaw() throws {
        let remover = ReadHook { hook, context, _ in
            guard hook.seen.count == 1 else { return }
            do { try context.pipeline.removeHandler(name: "decoder") } catch { XCTFail("\(error)") }
        }
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(ByteToMessageHandler(LengthFieldBasedFrameDecoder()), name: "decoder")
        try channel.pipeline.addHandler(remover)
        channel.connect()
        try channel.writeInbound(concatenated([frame([1], .four), frame([2], .four)]))
        XCTAssertEqual(remover.seen, [ByteBuffer(bytes: [1])])
        try channel.writeInbound(bytes("raw"))
        XCTAssertEqual(remover.seen, [ByteBuffer(bytes: [1]), bytes("raw")])
    }

    func testInputFedReentrantlyIsDecodedAfterTheCurrentBatchInOrder() throws {
        let injector = ReadHook { hook, context, _ in
            // On the first frame, feed more input through the pipeline from the head while the decoder
            // is still inside its loop: half a frame, then the rest of it.
            if hook.seen.count == 1 {
                let injected = frame([3], .four)
                context.pipeline.fireChannelRead(injected.getSlice(at: 0, length: 2)!)
                context.pipeline.fireChannelRead(injected.getSlice(at: 2, length: 3)!)
            }
        }
        let channel = try EmbeddedChannel(handlers: [ByteToMessageHandler(LengthFieldBasedFrameDecoder()), injector])
        channel.connect()
        try channel.writeInbound(concatenated([frame([1], .four), frame([2], .four)]))
        XCTAssertEqual(injector.seen, [ByteBuffer(bytes: [1]), ByteBuffer(bytes: [2]), ByteBuffer(bytes: [3])])
        XCTAssertTrue(try channel.finish().inbound.count == 3)
    }

    func testTheCumulationKeepsItsMemoryFromReadToRead() throws {
        let decoder = ByteToMessageHandler(LineDecoder())
        let channel = try EmbeddedChannel(handler: decoder)
        channel.connect()
        try channel.writeInbound(bytes("first li"))
        try channel.writeInbound(bytes("ne\nnext li"))  // grows the buffer to its working size
        XCTAssertEqual(try readAllInbound(channel).count, 1)
        let capacity = decoder.bufferCapacity
        XCTAssertGreaterThan(capacity, 0)
        for _ in 0..<100 {
            try channel.writeInbound(bytes("ne\nnext li"))
            XCTAssertEqual(try readAllInbound(channel).count, 1)
        }
        XCTAssertEqual(decoder.bufferCapacity, capacity, "no growth: consumed bytes are reclaimed in place")
        XCTAssertEqual(decoder.bufferedByteCount, 7)
    }

    // MARK: The encoder driver

    func testTheEncoderCoalescesWritesIntoOneBufferPerFlush() throws {
        let channel = try EmbeddedChannel(handler: MessageToByteHandler(StringEncoder()))
        for word in ["one", "two", "three", "four"] { channel.pipeline.write(word) }
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "nothing is sent before the flush")
        channel.pipeline.flush()
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), bytes("onetwothreefour"))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "one buffer for the whole flush")

        channel.pipeline.flush()
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "an empty flush sends nothing, not the old batch")
    }

    func testTheEncoderReusesItsBufferStorageAcrossFlushes() throws {
        let channel = try EmbeddedChannel(handler: MessageToByteHandler(StringEncoder()))
        var addresses: [UnsafeRawPointer?] = []
        for round in 0..<5 {
            for _ in 0..<10 { channel.pipeline.write("round \(round);") }
            channel.pipeline.flush()
            // Read the flushed buffer and drop it, as a transport does once it has sent it.
            let sent = try XCTUnwrap(try channel.readOutbound(as: ByteBuffer.self))
            XCTAssertEqual(sent, bytes(String(repeating: "round \(round);", count: 10)))
            addresses.append(baseAddress(sent))
        }
        XCTAssertEqual(Set(addresses).count, 1, "the same memory every flush")
    }

    func testTheEncoderDoesNotOverwriteABatchTheTransportStillHolds() throws {
        let channel = try EmbeddedChannel(handler: MessageToByteHandler(StringEncoder()))
        channel.pipeline.writeAndFlush("first")
        channel.pipeline.writeAndFlush("second")
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), bytes("first"))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), bytes("second"))
    }

    func testPromisesOfCoalescedWritesAllSucceed() throws {
        let channel = try EmbeddedChannel(handler: MessageToByteHandler(StringEncoder()))
        let promises = (0..<3).map { _ in channel.loop.makePromise(of: Void.self) }
        channel.pipeline.write("a", promise: promises[0])
        channel.pipeline.write("b")
        channel.pipeline.write("c", promise: promises[1])
        channel.pipeline.write("d", promise: promises[2])
        XCTAssertFalse(promises.contains { $0.futureResult.isFulfilled })
        channel.pipeline.flush()
        channel.loop.run()
        for promise in promises {
            XCTAssertNoThrow(try XCTUnwrap(promise.futureResult.resultIfAvailable).get())
        }
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), bytes("abcd"))

        let single = channel.loop.makePromise(of: Void.self)
        channel.pipeline.write("e", promise: single)
        channel.pipeline.flush()
        XCTAssertNoThrow(try XCTUnwrap(single.futureResult.resultIfAvailable).get())
    }

    func testAnEncodingErrorFailsOnlyThatWriteAndIsFired() throws {
        let channel = try EmbeddedChannel(handler: MessageToByteHandler(StringEncoder()))
        let good = channel.loop.makePromise(of: Void.self)
        let bad = channel.loop.makePromise(of: Void.self)
        channel.pipeline.write("good", promise: good)
        channel.pipeline.write("bad", promise: bad)
        channel.pipeline.write("!")
        channel.pipeline.flush()
        XCTAssertThrowsError(try channel.throwIfErrorCaught()) { XCTAssertTrue($0 is StringEncoder.Refused) }
        XCTAssertThrowsError(try XCTUnwrap(bad.futureResult.resultIfAvailable).get())
        XCTAssertNoThrow(try XCTUnwrap(good.futureResult.resultIfAvailable).get())
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), bytes("good!"), "the partial encoding is rolled back")
    }

    func testClosingWithUnflushedWritesFailsTheirPromises() throws {
        let channel = try EmbeddedChannel(handler: MessageToByteHandler(StringEncoder()))
        channel.connect()
        let first = channel.loop.makePromise(of: Void.self)
        let second = channel.loop.makePromise(of: Void.self)
        channel.pipeline.write("never", promise: first)
        channel.pipeline.write("sent", promise: second)
        channel.pipeline.close()
        for promise in [first, second] {
            XCTAssertThrowsError(try XCTUnwrap(promise.futureResult.resultIfAvailable).get()) { error in
                XCTAssertEqual(error as? ChannelError, .closedBeforeWriteCompleted)
            }
        }
        XCTAssertTrue(try channel.finish().isClean)
    }

    // MARK: Idle detection

    func testTheIdleHandlerFiresReadEventsAtTheRightVirtualTimes() throws {
        let recorder = IdleEventRecorder()
        let channel = try EmbeddedChannel(handlers: [ByteIdleStateHandler(readTimeout: .seconds(10)), recorder])
        channel.connect()
        channel.loop.advanceTime(by: .seconds(9))
        try channel.writeInbound(bytes("ping"))  // at 9 s: the next read event is due at 19 s
        channel.loop.advanceTime(by: .milliseconds(9_999))
        XCTAssertTrue(recorder.events.isEmpty)
        channel.loop.advanceTime(by: .milliseconds(1))
        XCTAssertEqual(recorder.events.map(\.event), [.read])
        XCTAssertEqual(recorder.events.map(\.atMilliseconds), [19_000])
        channel.loop.advanceTime(by: .seconds(10))  // still idle: it repeats every timeout
        XCTAssertEqual(recorder.events.map(\.atMilliseconds), [19_000, 29_000])
    }

    func testTheIdleHandlerFiresWriteAndAllEventsAtTheRightVirtualTimes() throws {
        let recorder = IdleEventRecorder()
        let channel = try EmbeddedChannel(handlers: [
            ByteIdleStateHandler(writeTimeout: .seconds(5), allTimeout: .seconds(4)), recorder,
        ])
        channel.connect()
        channel.loop.advanceTime(by: .seconds(1))
        try channel.writeInbound(bytes("in"))  // read at 1 s
        channel.loop.advanceTime(by: .seconds(2))
        try channel.writeOutbound(bytes("out"))  // write at 3 s
        channel.loop.advanceTime(by: .seconds(6))  // to 9 s
        XCTAssertEqual(recorder.events.map(\.event), [.all, .write])
        XCTAssertEqual(recorder.events.map(\.atMilliseconds), [7_000, 8_000])
    }

    func testTheIdleHandlerStaysQuietWhileTrafficContinuesAndKeepsOneTimerPerTimeout() throws {
        let recorder = IdleEventRecorder()
        let channel = try EmbeddedChannel(handlers: [
            ByteIdleStateHandler(readTimeout: .seconds(5), writeTimeout: .seconds(5), allTimeout: .seconds(5)), recorder,
        ])
        channel.connect()
        for _ in 0..<30 {
            channel.loop.advanceTime(by: .seconds(1))
            for _ in 0..<10 {
                try channel.writeInbound(bytes("in"))
                try channel.writeOutbound(bytes("out"))
            }
            XCTAssertLessThanOrEqual(channel.loop.pendingTimerCount, 3, "traffic does not schedule timers")
        }
        XCTAssertTrue(recorder.events.isEmpty)
        channel.loop.advanceTime(by: .seconds(5))  // traffic stopped at 30 s
        XCTAssertEqual(Set(recorder.events.map(\.event)), [.read, .write, .all])
        XCTAssertEqual(Set(recorder.events.map(\.atMilliseconds)), [35_000])
    }

    func testTheIdleHandlerStartsOnAnActiveChannelAndStopsWhenItCloses() throws {
        let recorder = IdleEventRecorder()
        let channel = try EmbeddedChannel(handler: recorder)
        channel.connect()
        channel.loop.advanceTime(by: .seconds(100))
        try channel.pipeline.addHandler(ByteIdleStateHandler(readTimeout: .seconds(3)), position: .first)
        channel.loop.advanceTime(by: .seconds(3))
        XCTAssertEqual(recorder.events.map(\.atMilliseconds), [103_000])

        channel.pipeline.close()
        XCTAssertEqual(channel.loop.pendingTimerCount, 0)
        channel.loop.advanceTime(by: .seconds(30))
        XCTAssertEqual(recorder.events.count, 1)
    }
}
