import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes the native wire: the envelope decoder on one frame's payload (and the hello and
// peer-exchange answer parsers on those control messages), and both inbound arrangements on a stream cut into fuzzer-chosen reads:
// `NativeWire.handlers()` and `LengthFieldFramer.handlers() + [NativeEnvelopeCodec()]`.
//
// Input: byte 0 = settings (bits 0-1: mode; bits 2-3: maximum frame length scale), byte 1 =
// maximum frame length (shifted left by 0, 2, 4 or 6 bits), byte 2 = the read sizes (see
// `ChunkPlan`), then the mode's bytes:
// - mode 0: one frame payload (an envelope without its length prefix);
// - mode 1 and 2: a stream of frames, through `NativeWire.handlers()` (1) or the framer and
//   `NativeEnvelopeCodec` (2);
// - mode 3: envelope fields (hop limit, ids, name, operation, data), encoded and decoded.
//
// Properties:
// - the native encoding is canonical: a payload that decodes re-encodes to the same bytes
//   (`encode(decode(x)) == x`), and `decode(encode(e)) == e` for any envelope;
// - a hello that parses is made again into a hello that parses to the same values, and so does a
//   peer-exchange answer (`\0peers`, parsed strictly and bounded);
// - a stream gives the envelopes and the one error of a reference (frames split by hand, each
//   decoded on its own), however it is cut, and the framing stage buffers at most one frame.

struct Settings {
    var mode: Int
    var maximumFrameLength: Int
    var plan: ChunkPlan

    init(_ input: inout FuzzInput) {
        let flags = input.byte()
        mode = Int(flags & 3)
        maximumFrameLength = Int(input.byte()) << (2 * Int(flags >> 2 & 3))
        plan = ChunkPlan(selector: input.byte())
    }
}

let decoder = NativeEnvelopeDecoder()
let encoder = NativeEnvelopeEncoder()

/// Decodes one payload; checks that it re-encodes to itself, and parses it if it is a hello.
func checkPayload(_ payload: UnsafeRawBufferPointer) {
    let frame = ByteBuffer(bytes: payload)
    guard let envelope = try? decoder.decode(frame) else { return }
    var encoded = ByteBuffer()
    do {
        try encoder.encode(envelope, into: &encoded)
    } catch {
        fuzzCheck(false, "a decoded envelope does not encode: \(error)")
    }
    fuzzCheck(encoded == frame, "encode(decode(x)) != x for a native envelope")
    if envelope.operation == ControlMessage.helloOperation, let hello = try? ControlMessage.parseHello(envelope) {
        let again = try? ControlMessage.parseHello(ControlMessage.hello(hello))
        fuzzCheck(again == hello, "a parsed hello, made again, parses to \(String(describing: again)), not \(hello)")
    }
    if envelope.operation == PeerExchangeWire.answerOperation,
        let entries = try? PeerExchangeWire.parseAnswer(envelope, maximumEntries: 4096)
    {
        let again = try? PeerExchangeWire.parseAnswer(PeerExchangeWire.answer(entries, from: envelope.name), maximumEntries: entries.count)
        fuzzCheck(again == entries, "a parsed peer-exchange answer, made again, parses to other entries")
    }
}

/// What a stream decodes to: frames split by hand, each payload decoded on its own.
func reference(_ stream: UnsafeRawBufferPointer, maximumFrameLength: Int) -> (envelopes: [Envelope], error: (any Error & Equatable)?) {
    var envelopes: [Envelope] = []
    var offset = 0
    while stream.count - offset >= 4 {
        let length = stream[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        guard length <= maximumFrameLength else {
            return (envelopes, LengthFieldFramerError.frameTooLarge(length: UInt64(length), maximum: maximumFrameLength))
        }
        guard stream.count - offset - 4 >= length else { break }
        let payload = ByteBuffer(bytes: stream[offset + 4..<offset + 4 + length])
        do {
            envelopes.append(try decoder.decode(payload))
        } catch {
            return (envelopes, error)
        }
        offset += 4 + length
    }
    let leftover = stream.count - offset
    return (envelopes, leftover == 0 ? nil : ByteToMessageDecoderError.leftoverDataAtEOF(bytes: leftover))
}

/// Runs a stream through one of the two inbound arrangements and compares it with the reference.
func checkStream(_ stream: UnsafeRawBufferPointer, _ settings: Settings, throughCodec: Bool) {
    let stages: [any ChannelHandler]
    let bufferedBytes: () -> Int
    if throughCodec {
        let framer = LengthFieldFramer.handlers(maximumFrameLength: settings.maximumFrameLength)
        guard let decoder = framer.first as? ByteToMessageHandler<LengthFieldBasedFrameDecoder> else {
            fatalError("LengthFieldFramer.handlers() no longer starts with its decoder")
        }
        stages = framer + [NativeEnvelopeCodec()]
        bufferedBytes = { decoder.bufferedByteCount }
    } else {
        let wire = NativeWire.handlers(maximumFrameLength: settings.maximumFrameLength)
        guard let decoder = wire.first as? ByteToMessageHandler<NativeEnvelopeFrameDecoder> else {
            fatalError("NativeWire.handlers() no longer starts with its decoder")
        }
        stages = wire
        bufferedBytes = { decoder.bufferedByteCount }
    }
    let collector = Collector<Envelope>()
    guard let channel = try? EmbeddedChannel(handlers: stages + [collector]) else {
        fatalError("the pipeline did not build")
    }
    let wholeFrame = 4 + settings.maximumFrameLength
    feed(stream, to: channel, plan: settings.plan) { _ in
        fuzzCheck(bufferedBytes() <= wholeFrame, "the decoder buffers \(bufferedBytes()) bytes, more than one frame (\(wholeFrame))")
    }

    let expected = reference(stream, maximumFrameLength: settings.maximumFrameLength)
    fuzzCheck(collector.messages == expected.envelopes,
              "decoded \(collector.messages.count) envelopes, the reference \(expected.envelopes.count)")
    fuzzCheck(collector.errors.count == (expected.error == nil ? 0 : 1),
              "errors \(collector.errors), expected \(String(describing: expected.error))")
    if let error = collector.errors.first, let expectedError = expected.error {
        fuzzCheck(fuzzErrorsMatch(error, expectedError), "error \(error), expected \(expectedError)")
    }
}

/// Envelopes from fuzzer values: each encodes, decodes to itself, and a stream of their frames
/// decodes to them all.
func checkRoundTrip(_ input: inout FuzzInput, _ settings: Settings) {
    var frames = ByteBuffer()
    var framed: [Envelope] = []
    var frameEncoder = NativeEnvelopeFrameEncoder(maximumFrameLength: settings.maximumFrameLength)
    while !input.isEmpty {
        let hopLimit = input.byte()
        let messageID = input.integer(UInt64.self)
        let correlationID = input.integer(UInt64.self)
        let name = input.shortString()
        let operation = input.shortString()
        let data = input.bool() ? ByteBuffer(bytes: input.shortBytes()) : nil
        let envelope = Envelope(
            name: name, operation: operation, data: data,
            messageID: messageID, correlationID: correlationID, hopLimit: hopLimit)

        var payload = ByteBuffer()
        do {
            try encoder.encode(envelope, into: &payload)
        } catch {
            fuzzCheck(false, "an envelope with short fields does not encode: \(error)")
        }
        let decoded = try? decoder.decode(payload)
        fuzzCheck(decoded == envelope, "decode(encode(e)) != e for \(envelope)")

        let before = frames.writerIndex
        do {
            try frameEncoder.encode(data: envelope, out: &frames)
            fuzzCheck(payload.readableBytes <= settings.maximumFrameLength, "an envelope larger than a frame was framed")
            framed.append(envelope)
        } catch {
            fuzzCheck(payload.readableBytes > settings.maximumFrameLength, "an envelope that fits a frame was refused: \(error)")
            fuzzCheck(frames.writerIndex == before, "a refused envelope left bytes behind")
        }
    }
    let wire = NativeWire.handlers(maximumFrameLength: settings.maximumFrameLength)
    let collector = Collector<Envelope>()
    guard let channel = try? EmbeddedChannel(handlers: wire + [collector]) else {
        fatalError("the pipeline did not build")
    }
    _ = frames.withUnsafeReadableBytes { feed($0, to: channel, plan: settings.plan) { _ in } }
    fuzzCheck(collector.messages == framed, "a stream of \(framed.count) frames decoded to \(collector.messages.count) envelopes")
    fuzzCheck(collector.errors.isEmpty, "errors decoding encoded envelopes: \(collector.errors)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let settings = Settings(&input)
    switch settings.mode {
    case 0: checkPayload(input.rest())
    case 1: checkStream(input.rest(), settings, throughCodec: false)
    case 2: checkStream(input.rest(), settings, throughCodec: true)
    default: checkRoundTrip(&input, settings)
    }
    return 0
}
