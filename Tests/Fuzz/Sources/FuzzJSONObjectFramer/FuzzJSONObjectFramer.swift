import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes the JSON wire's inbound side as a peer reaches it: `JSONWire.handlers()` (the object
// framer in its `ByteToMessageHandler`, then optionally the envelope codec), fed in reads of
// fuzzer-chosen sizes.
//
// Input: byte 0 = settings (bit 0: with the envelope codec; bits 1-2: maximum object size scale),
// byte 1 = maximum object size (1 + the byte, shifted left by 0, 2, 4 or 6 bits), byte 2 = the
// read sizes (see `ChunkPlan`), then the stream.
//
// Properties:
// - after every read the handler buffers at most the whitespace fed so far plus one object of the
//   maximum size (the framer refuses byte `maximum + 1` of an object as soon as it arrives), and
//   never more than its configured buffer;
// - the objects, and the error that ends the stream, are those of a plain, non-resumable reference
//   framer that rescans from each object's start, however the stream is cut (so the resumable
//   scan loses no state between reads);
// - every object fired starts with `{`, ends with `}` and is at most the maximum size;
// - with the codec, each object gives the envelope (or the error, the connection staying open)
//   that `JSONEnvelopeDecoder` gives for it alone.

struct Settings {
    var withCodec: Bool
    var maximumObjectSize: Int
    var plan: ChunkPlan

    init(_ input: inout FuzzInput) {
        let flags = input.byte()
        withCodec = flags & 1 != 0
        maximumObjectSize = (1 + Int(input.byte())) << (2 * Int(flags >> 1 & 3))
        plan = ChunkPlan(selector: input.byte())
    }
}

/// The framing error kinds (the malformed-JSON texts are the framer's business).
enum FramingFailure: Equatable {
    case malformedJSON
    case nestingTooDeep
    case objectTooLarge
    case leftover(Int)

    init?(_ error: any Error) {
        switch error {
        case WireError.malformedJSON: self = .malformedJSON
        case WireError.nestingTooDeep: self = .nestingTooDeep
        case WireError.objectTooLarge: self = .objectTooLarge
        case ByteToMessageDecoderError.leftoverDataAtEOF(let bytes): self = .leftover(bytes)
        default: return nil
        }
    }
}

func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d
}

/// Frames the whole stream the simple way: for each object, one scan from its `{`.
func reference(_ stream: UnsafeRawBufferPointer, maximumObjectSize: Int) -> (objects: [Range<Int>], failure: FramingFailure?) {
    var objects: [Range<Int>] = []
    var offset = 0
    let count = stream.count
    while true {
        var index = offset
        while index < count, isWhitespace(stream[index]) {
            if index - offset >= JSONObjectFramer.maximumWhitespaceBetweenObjects { return (objects, .malformedJSON) }
            index += 1
        }
        if index == count { return (objects, nil) }  // whitespace at the end is consumed
        guard stream[index] == UInt8(ascii: "{") else { return (objects, .malformedJSON) }
        let start = index
        var open: [UInt8] = [UInt8(ascii: "{")]
        var inString = false
        var escaped = false
        index += 1
        while !open.isEmpty {
            guard index < count else { return (objects, .leftover(count - offset)) }
            guard index - start < maximumObjectSize else { return (objects, .objectTooLarge) }
            let byte = stream[index]
            index += 1
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard open.count < JSONObjectFramer.maximumNestingDepth else { return (objects, .nestingTooDeep) }
                open.append(byte)
            case UInt8(ascii: "}"):
                guard open.removeLast() == UInt8(ascii: "{") else { return (objects, .malformedJSON) }
            case UInt8(ascii: "]"):
                guard open.removeLast() == UInt8(ascii: "[") else { return (objects, .malformedJSON) }
            default:
                break
            }
        }
        objects.append(start..<index)
        offset = index
    }
}

func check(_ stream: UnsafeRawBufferPointer, _ settings: Settings) {
    let stages = JSONWire.handlers(maximumObjectSize: settings.maximumObjectSize)
    guard let framer = stages.first as? ByteToMessageHandler<JSONObjectFramer> else {
        fatalError("JSONWire.handlers() no longer starts with the object framer")
    }
    let objects = Collector<ByteBuffer>()
    let envelopes = Collector<Envelope>()
    let pipeline: [any ChannelHandler] = settings.withCodec ? stages + [envelopes] : [framer, objects]
    guard let channel = try? EmbeddedChannel(handlers: pipeline) else {
        fatalError("the pipeline did not build")
    }

    var whitespaceSeen = 0
    var counted = 0
    feed(stream, to: channel, plan: settings.plan) { fed in
        while counted < fed {
            if isWhitespace(stream[counted]) { whitespaceSeen += 1 }
            counted += 1
        }
        let buffered = framer.bufferedByteCount
        fuzzCheck(buffered <= framer.maximumBufferSize, "the framer buffers \(buffered) bytes, over its limit \(framer.maximumBufferSize)")
        fuzzCheck(buffered <= settings.maximumObjectSize + whitespaceSeen,
                  "the framer buffers \(buffered) bytes: more than one object (\(settings.maximumObjectSize)) and \(whitespaceSeen) bytes of whitespace")
    }

    let expected = reference(stream, maximumObjectSize: settings.maximumObjectSize)
    let errors = settings.withCodec ? envelopes.errors : objects.errors
    let framingErrors = errors.filter { FramingFailure($0) != nil }
    fuzzCheck(framingErrors.count == (expected.failure == nil ? 0 : 1),
              "framing errors \(framingErrors), expected \(String(describing: expected.failure))")
    if let failure = framingErrors.first {
        fuzzCheck(FramingFailure(failure) == expected.failure, "framing error \(failure), expected \(String(describing: expected.failure))")
    }

    if !settings.withCodec {
        fuzzCheck(framingErrors.count == errors.count, "errors other than framing errors: \(errors)")
        let fired = objects.messages.map { Array($0.readableBytesView) }
        fuzzCheck(fired == expected.objects.map { Array(stream[$0]) },
                  "framed \(fired.count) objects, the reference \(expected.objects.count)")
        for object in fired {
            fuzzCheck(object.first == UInt8(ascii: "{") && object.last == UInt8(ascii: "}"), "an object is not braced")
            fuzzCheck(object.count <= settings.maximumObjectSize, "an object of \(object.count) bytes is over the maximum")
        }
        return
    }

    // With the codec: each object decodes on its own, errors keep the connection open.
    var expectedEnvelopes: [Envelope] = []
    var expectedErrors: [WireError] = []
    for range in expected.objects {
        do {
            expectedEnvelopes.append(try JSONEnvelopeDecoder().decode(ByteBuffer(bytes: stream[range])))
        } catch {
            expectedErrors.append(error)
        }
    }
    fuzzCheck(envelopes.messages == expectedEnvelopes,
              "decoded \(envelopes.messages.count) envelopes, expected \(expectedEnvelopes.count)")
    let envelopeErrors = errors.filter { FramingFailure($0) == nil }.map { $0 as? WireError }
    fuzzCheck(envelopeErrors == expectedErrors, "envelope errors \(envelopeErrors), expected \(expectedErrors)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let settings = Settings(&input)
    check(input.rest(), settings)
    return 0
}
