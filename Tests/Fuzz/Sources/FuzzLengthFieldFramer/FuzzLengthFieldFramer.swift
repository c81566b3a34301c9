import FuzzSupport
import Pheromones

// Fuzzes the length-prefixed framer as a peer reaches it: `LengthFieldFramer.handlers()`'s decoder
// stage, fed in reads of fuzzer-chosen sizes.
//
// Input: byte 0 = settings (bits 0-1: length field of 1/2/4/8 bytes; bit 2: little endian; bit 3:
// round-trip mode; bits 4-5: maximum frame length scale), byte 1 = maximum frame length (shifted
// left by 0, 2, 4 or 8 bits), byte 2 = the read sizes (see `ChunkPlan`), then the stream (or, in
// round-trip mode, payloads, each a length byte and that many bytes).
//
// Properties:
// - after every read the handler buffers at most one whole frame (header plus maximum);
// - the frames, and the error that ends the stream, are those of a plain reference decoder,
//   however the stream is cut: `frameTooLarge` with the announced length as soon as a header is
//   over the maximum, `leftoverDataAtEOF` with the exact count for a stream that stops mid-frame;
// - encoding the decoded frames gives back the bytes they were decoded from, and decoding
//   `LengthFieldPrepender`'s output gives back the payloads (`decode(encode(x)) == x`).

struct Settings {
    var fieldLength: LengthFieldLength
    var endianness: Endianness
    var roundTrip: Bool
    var maximumFrameLength: Int
    var plan: ChunkPlan

    init(_ input: inout FuzzInput) {
        let flags = input.byte()
        fieldLength = [LengthFieldLength.one, .two, .four, .eight][Int(flags & 3)]
        endianness = flags & 4 == 0 ? .big : .little
        roundTrip = flags & 8 != 0
        maximumFrameLength = Int(input.byte()) << [0, 2, 4, 8][Int(flags >> 4 & 3)]
        plan = ChunkPlan(selector: input.byte())
    }
}

/// What a stream decodes to, by the simplest possible reading of the format.
struct Reference {
    var frames: [[UInt8]] = []
    var consumed = 0
    var tooLarge: UInt64?

    init(_ stream: UnsafeRawBufferPointer, _ settings: Settings) {
        let header = settings.fieldLength.rawValue
        while stream.count - consumed >= header {
            var announced: UInt64 = 0
            for index in 0..<header {
                let byte = UInt64(stream[consumed + index])
                switch settings.endianness {
                case .big: announced = announced << 8 | byte
                case .little: announced |= byte << (8 * UInt64(index))
                }
            }
            guard announced <= UInt64(settings.maximumFrameLength) else {
                tooLarge = announced
                return
            }
            let length = Int(announced)
            guard stream.count - consumed - header >= length else { return }
            frames.append(Array(stream[(consumed + header)..<(consumed + header + length)]))
            consumed += header + length
        }
    }
}

/// Runs `stream` through the shipped decoder stage, checking the buffering bound after each read.
func decode(_ stream: UnsafeRawBufferPointer, _ settings: Settings) -> Collector<ByteBuffer> {
    let stages = LengthFieldFramer.handlers(
        lengthFieldLength: settings.fieldLength, maximumFrameLength: settings.maximumFrameLength,
        endianness: settings.endianness)
    guard let decoder = stages.first as? ByteToMessageHandler<LengthFieldBasedFrameDecoder> else {
        fatalError("LengthFieldFramer.handlers() no longer starts with its decoder")
    }
    let wholeFrame = settings.fieldLength.rawValue + settings.maximumFrameLength
    fuzzCheck(decoder.maximumBufferSize == wholeFrame, "buffer limit \(decoder.maximumBufferSize), expected \(wholeFrame)")
    let collector = Collector<ByteBuffer>()
    guard let channel = try? EmbeddedChannel(handlers: [decoder, collector]) else {
        fatalError("the pipeline did not build")
    }
    feed(stream, to: channel, plan: settings.plan) { _ in
        fuzzCheck(decoder.bufferedByteCount <= wholeFrame,
                  "the decoder buffers \(decoder.bufferedByteCount) bytes, more than one whole frame (\(wholeFrame))")
    }
    return collector
}

func checkDecoding(_ stream: UnsafeRawBufferPointer, _ settings: Settings) {
    let reference = Reference(stream, settings)
    let collector = decode(stream, settings)
    let frames = collector.messages.map { Array($0.readableBytesView) }
    fuzzCheck(frames == reference.frames, "decoded \(frames.count) frames, the reference \(reference.frames.count)")
    let expectedError: (any Error & Equatable)?
    if let announced = reference.tooLarge {
        expectedError = LengthFieldFramerError.frameTooLarge(length: announced, maximum: settings.maximumFrameLength)
    } else if stream.count > reference.consumed {
        expectedError = ByteToMessageDecoderError.leftoverDataAtEOF(bytes: stream.count - reference.consumed)
    } else {
        expectedError = nil
    }
    fuzzCheck(collector.errors.count == (expectedError == nil ? 0 : 1),
              "errors \(collector.errors), expected \(String(describing: expectedError))")
    if let expectedError, let error = collector.errors.first {
        fuzzCheck(fuzzErrorsMatch(error, expectedError), "error \(error), expected \(expectedError)")
    }

    // encode(decode(x)) == x: the frames re-encoded are the bytes they came from.
    var encoder = LengthFieldPrepender(
        lengthFieldLength: settings.fieldLength, maximumFrameLength: settings.maximumFrameLength,
        endianness: settings.endianness)
    var encoded = ByteBuffer()
    for frame in collector.messages {
        do {
            try encoder.encode(data: frame, out: &encoded)
        } catch {
            fuzzCheck(false, "a decoded frame of \(frame.readableBytes) bytes does not encode: \(error)")
        }
    }
    fuzzCheck(Array(encoded.readableBytesView) == Array(stream[..<reference.consumed]),
              "re-encoded frames differ from the bytes they were decoded from")
}

func checkRoundTrip(_ input: inout FuzzInput, _ settings: Settings) {
    var encoder = LengthFieldPrepender(
        lengthFieldLength: settings.fieldLength, maximumFrameLength: settings.maximumFrameLength,
        endianness: settings.endianness)
    let limit = min(settings.maximumFrameLength, settings.fieldLength.largestLengthForFuzzing)
    var stream = ByteBuffer()
    var accepted: [[UInt8]] = []
    while !input.isEmpty {
        let payload = input.shortBytes()
        let before = stream.writerIndex
        do {
            try encoder.encode(data: ByteBuffer(bytes: payload), out: &stream)
            fuzzCheck(payload.count <= limit, "a payload of \(payload.count) bytes was encoded, over the limit \(limit)")
            accepted.append(payload)
        } catch {
            fuzzCheck(payload.count > limit, "a payload of \(payload.count) bytes was refused (limit \(limit)): \(error)")
            fuzzCheck(stream.writerIndex == before, "a refused payload left bytes behind")
        }
    }
    let collector = stream.withUnsafeReadableBytes { decode($0, settings) }
    let frames = collector.messages.map { Array($0.readableBytesView) }
    fuzzCheck(frames == accepted, "decode(encode(x)) != x: \(frames.count) frames for \(accepted.count) payloads")
    fuzzCheck(collector.errors.isEmpty, "errors decoding encoded payloads: \(collector.errors)")
}

extension LengthFieldLength {
    /// The largest length the field expresses (the decoder's own `largestLength` is internal).
    var largestLengthForFuzzing: Int {
        switch self {
        case .one: return Int(UInt8.max)
        case .two: return Int(UInt16.max)
        case .four: return Int(UInt32.max)
        case .eight: return Int.max
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let settings = Settings(&input)
    if settings.roundTrip {
        checkRoundTrip(&input, settings)
    } else {
        checkDecoding(input.rest(), settings)
    }
    return 0
}
