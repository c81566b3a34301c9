import Pheromones

/// The native wire: length-prefixed frames, each holding one versioned binary envelope.
///
/// A frame is a 4-byte big-endian payload length followed by the payload, which is:
///
/// | field           | encoding                                       |
/// |-----------------|------------------------------------------------|
/// | version         | `UInt8`, ``version`` (1)                       |
/// | flags           | `UInt8`, bit 0 = ``dataPresentFlag``, others 0 |
/// | hop limit       | `UInt8`                                        |
/// | message id      | `UInt64`, big-endian                           |
/// | correlation id  | `UInt64`, big-endian                           |
/// | name            | `UInt16` length, then that many UTF-8 bytes    |
/// | operation       | `UInt16` length, then that many UTF-8 bytes    |
/// | data            | `UInt32` length, then the bytes; only if flagged |
///
/// Unlike the JSON wire it carries every ``Envelope`` field, and a payload needs no base64.
public enum NativeWire {
    /// The envelope version this implementation writes and accepts.
    public static let version: UInt8 = 1
    /// The flag bit that says a data field follows (nil data is sent without one).
    public static let dataPresentFlag: UInt8 = 0b0000_0001
    /// The size of an envelope with empty strings and no data: version, flags, hop limit, two ids
    /// and two string lengths.
    public static let minimumEnvelopeLength = 3 + 8 + 8 + 2 + 2

    /// The stages of the native wire, decoder first:
    /// `try pipeline.addHandlers(NativeWire.handlers() + [MyProtocolHandler()])`.
    ///
    /// The pair reads frames of at most `maximumFrameLength` payload bytes and fires ``Envelope``s,
    /// and takes ``Envelope``s and writes frames. Malformed input is fired as an error (a
    /// ``WireError``, or ``LengthFieldFramerError/frameTooLarge(length:maximum:)`` as soon as a
    /// header announces too long a frame, before any of it is buffered) and the connection closed.
    ///
    /// ### Why two stages and not framer + ``NativeEnvelopeCodec``
    /// Each stage does framing and envelope coding in one step. Outbound,
    /// ``NativeEnvelopeFrameEncoder`` writes the length and then the envelope straight into the
    /// ``MessageToByteHandler``'s batch buffer, whose memory is reused flush after flush: no buffer
    /// per message and the payload copied once. (The framer + codec arrangement encodes each
    /// envelope into a buffer of its own that the length prepender then copies into its batch: one
    /// more copy, and an allocation whenever that buffer cannot be reused.) Inbound,
    /// ``NativeEnvelopeFrameDecoder`` decodes each envelope from the frame in place, its `data` a
    /// slice of the bytes read from the socket, and saves a pipeline hop per message. Either way the
    /// only per-message allocations left are the `name` and `operation` strings (none for strings
    /// of up to 15 bytes, which Swift stores inline).
    public static func handlers(maximumFrameLength: Int = 1 << 20) -> [any ChannelHandler] {
        [framer(maximumFrameLength: maximumFrameLength), encoder(maximumFrameLength: maximumFrameLength)]
    }

    /// The inbound stage of ``handlers(maximumFrameLength:)``.
    static func framer(maximumFrameLength: Int) -> ByteToMessageHandler<NativeEnvelopeFrameDecoder> {
        let (wholeFrame, overflow) = maximumFrameLength.addingReportingOverflow(4)
        return ByteToMessageHandler(
            NativeEnvelopeFrameDecoder(maximumFrameLength: maximumFrameLength),
            maximumBufferSize: overflow ? Int.max : wholeFrame)
    }

    /// The outbound stage of ``handlers(maximumFrameLength:)``.
    static func encoder(maximumFrameLength: Int) -> MessageToByteHandler<NativeEnvelopeFrameEncoder> {
        MessageToByteHandler(NativeEnvelopeFrameEncoder(maximumFrameLength: maximumFrameLength))
    }
}

// MARK: - Envelope payloads

/// Decodes one native envelope from a frame's payload.
public struct NativeEnvelopeDecoder: Sendable {
    /// Creates a decoder (it holds no state).
    public init() {}

    /// Decodes the envelope that makes up `frame`'s readable bytes.
    ///
    /// Every length is checked against the bytes present before anything is read or allocated,
    /// so a hostile length costs nothing. `data` is a slice of `frame` (no copy).
    ///
    /// - Throws: ``WireError/unsupportedVersion(_:)``, ``WireError/truncatedEnvelope`` (the frame
    ///   ends inside the header or a field), ``WireError/malformedEnvelope(_:)`` (unknown flag
    ///   bits), ``WireError/invalidUTF8`` (name or operation), ``WireError/trailingBytes(_:)``.
    public func decode(_ frame: ByteBuffer) throws(WireError) -> Envelope {
        var reader = frame
        guard let version = reader.readInteger(as: UInt8.self) else { throw .truncatedEnvelope }
        // The version comes first so a peer speaking a future version is told so, whatever follows.
        guard version == NativeWire.version else { throw .unsupportedVersion(version) }
        guard let flags = reader.readInteger(as: UInt8.self),
              let hopLimit = reader.readInteger(as: UInt8.self),
              let messageID = reader.readInteger(as: UInt64.self),
              let correlationID = reader.readInteger(as: UInt64.self)
        else { throw .truncatedEnvelope }
        // Unknown flags would change how the rest is read, so they cannot be skipped safely.
        let unknownFlags = flags & ~NativeWire.dataPresentFlag
        guard unknownFlags == 0 else {
            throw .malformedEnvelope("unknown flag bits 0b\(String(unknownFlags, radix: 2)) are set")
        }
        let name = try Self.readString(&reader)
        let operation = try Self.readString(&reader)
        var data: ByteBuffer?
        if flags & NativeWire.dataPresentFlag != 0 {
            guard let length = reader.readInteger(as: UInt32.self),
                  let count = Int(exactly: length),
                  let slice = reader.readSlice(length: count)
            else { throw .truncatedEnvelope }
            data = slice
        }
        guard reader.readableBytes == 0 else { throw .trailingBytes(reader.readableBytes) }
        return Envelope(
            name: name, operation: operation, data: data,
            messageID: messageID, correlationID: correlationID, hopLimit: hopLimit)
    }

    /// Reads a `UInt16`-length-prefixed UTF-8 string, checking the length before touching the bytes.
    private static func readString(_ reader: inout ByteBuffer) throws(WireError) -> String {
        guard let length = reader.readInteger(as: UInt16.self) else { throw .truncatedEnvelope }
        let count = Int(length)
        guard count <= reader.readableBytes else { throw .truncatedEnvelope }
        let string: String?
        do {
            string = try reader.readUTF8ValidatedString(length: count)
        } catch {
            throw .invalidUTF8
        }
        // Cannot be nil (the length was checked), but a missing string is still an input error.
        guard let string else { throw .truncatedEnvelope }
        return string
    }
}

/// Encodes envelopes in the native format (without the frame's length prefix).
public struct NativeEnvelopeEncoder: Sendable {
    /// The longest name or operation, in UTF-8 bytes: what a `UInt16` length can express.
    public static let maximumStringLength = Int(UInt16.max)

    /// Creates an encoder (it holds no state).
    public init() {}

    /// The number of bytes ``encode(_:into:)`` writes for `envelope`.
    ///
    /// - Throws: ``WireError/fieldTooLong(field:length:limit:)`` when the name or operation is
    ///   longer than ``maximumStringLength`` bytes.
    public func encodedLength(of envelope: Envelope) throws(WireError) -> Int {
        let nameLength = envelope.name.utf8.count
        guard nameLength <= Self.maximumStringLength else {
            throw .fieldTooLong(field: "name", length: nameLength, limit: Self.maximumStringLength)
        }
        let operationLength = envelope.operation.utf8.count
        guard operationLength <= Self.maximumStringLength else {
            throw .fieldTooLong(field: "operation", length: operationLength, limit: Self.maximumStringLength)
        }
        // A ByteBuffer holds at most UInt32.max bytes, so the data length always fits its field.
        let dataLength = envelope.data.map { 4 + $0.readableBytes } ?? 0
        return NativeWire.minimumEnvelopeLength + nameLength + operationLength + dataLength
    }

    /// Appends `envelope` to `buffer`, reserving the exact space first so the buffer grows at most once.
    ///
    /// - Throws: ``WireError/fieldTooLong(field:length:limit:)``; nothing is written then.
    public func encode(_ envelope: Envelope, into buffer: inout ByteBuffer) throws(WireError) {
        let length = try encodedLength(of: envelope)
        buffer.reserveCapacity(minimumWritableBytes: length)
        write(envelope, into: &buffer)
    }

    /// Writes an envelope whose field lengths were checked by ``encodedLength(of:)``.
    func write(_ envelope: Envelope, into buffer: inout ByteBuffer) {
        buffer.writeInteger(NativeWire.version)
        buffer.writeInteger(envelope.data == nil ? 0 : NativeWire.dataPresentFlag)
        buffer.writeInteger(envelope.hopLimit)
        buffer.writeInteger(envelope.messageID)
        buffer.writeInteger(envelope.correlationID)
        buffer.writeInteger(UInt16(truncatingIfNeeded: envelope.name.utf8.count))
        buffer.writeString(envelope.name)
        buffer.writeInteger(UInt16(truncatingIfNeeded: envelope.operation.utf8.count))
        buffer.writeString(envelope.operation)
        if let data = envelope.data {
            buffer.writeInteger(UInt32(truncatingIfNeeded: data.readableBytes))
            buffer.writeImmutableBuffer(data)
        }
    }
}

// MARK: - Framing and coding in one step

/// Splits a byte stream into native frames and decodes each one's envelope: the inbound half of
/// ``NativeWire/handlers(maximumFrameLength:)``, run by a ``ByteToMessageHandler``.
///
/// A frame's length is checked as soon as its 4-byte header arrives, before any of the payload is
/// buffered; `data` is a slice of the input.
public struct NativeEnvelopeFrameDecoder: ByteToMessageDecoder {
    /// The decoder fires envelopes.
    public typealias InboundOut = Envelope

    private var framer: LengthFieldBasedFrameDecoder
    private let envelopeDecoder = NativeEnvelopeDecoder()

    /// The largest frame payload accepted, in bytes.
    public var maximumFrameLength: Int { framer.maximumFrameLength }

    /// Creates a decoder for frames of at most `maximumFrameLength` payload bytes.
    ///
    /// - Precondition: `maximumFrameLength` is not negative (a configuration error).
    public init(maximumFrameLength: Int = 1 << 20) {
        framer = LengthFieldBasedFrameDecoder(lengthFieldLength: .four, maximumFrameLength: maximumFrameLength, endianness: .big)
    }

    /// Decodes the next envelope once its whole frame has arrived.
    ///
    /// - Throws: ``LengthFieldFramerError/frameTooLarge(length:maximum:)`` or a ``WireError`` from
    ///   ``NativeEnvelopeDecoder/decode(_:)``.
    public mutating func decode(buffer: inout ByteBuffer) throws -> Envelope? {
        guard let frame = try framer.decode(buffer: &buffer) else { return nil }
        return try envelopeDecoder.decode(frame)
    }
}

/// Writes each envelope as a whole native frame (length prefix and envelope) straight into the
/// output: the outbound half of ``NativeWire/handlers(maximumFrameLength:)``, run by a
/// ``MessageToByteHandler``.
public struct NativeEnvelopeFrameEncoder: MessageToByteEncoder {
    /// The encoder takes envelopes.
    public typealias OutboundIn = Envelope

    /// The largest frame payload written; should match the peer's decoder.
    public let maximumFrameLength: Int
    private let envelopeEncoder = NativeEnvelopeEncoder()

    /// Creates an encoder refusing envelopes whose encoding exceeds `maximumFrameLength` bytes.
    ///
    /// - Precondition: `maximumFrameLength` is not negative (a configuration error).
    public init(maximumFrameLength: Int = 1 << 20) {
        precondition(maximumFrameLength >= 0, "NativeEnvelopeFrameEncoder: maximumFrameLength must not be negative")
        self.maximumFrameLength = maximumFrameLength
    }

    /// Appends the frame of `data` to `out`: its length is known up front, so the prefix is
    /// written first and the envelope after it, with no intermediate buffer.
    ///
    /// - Throws: ``WireError/fieldTooLong(field:length:limit:)``, or
    ///   ``LengthFieldFramerError/frameTooLarge(length:maximum:)`` when the envelope would not fit
    ///   a frame the peer accepts; nothing is written.
    public mutating func encode(data: Envelope, out: inout ByteBuffer) throws {
        let length = try envelopeEncoder.encodedLength(of: data)
        let limit = min(maximumFrameLength, Int(UInt32.max))
        guard length <= limit else {
            throw LengthFieldFramerError.frameTooLarge(length: UInt64(length), maximum: limit)
        }
        out.reserveCapacity(minimumWritableBytes: 4 + length)
        out.writeInteger(UInt32(truncatingIfNeeded: length))
        envelopeEncoder.write(data, into: &out)
    }
}

// MARK: - The codec stage

/// Turns native frame payloads into ``Envelope``s and back: a stage for after
/// `LengthFieldFramer.handlers()` (`LengthFieldFramer.handlers() + [NativeEnvelopeCodec()]`), for
/// pipelines that frame with settings of their own. ``NativeWire/handlers(maximumFrameLength:)``
/// is the faster arrangement (see there).
///
/// Inbound, each frame is decoded into an envelope whose `data` is a slice of the frame. A frame
/// that does not hold a valid envelope is fired as a ``WireError`` and the connection closed (a
/// peer that sends one cannot be trusted to be in step); frames after it are dropped.
///
/// Outbound, each envelope is written as one payload buffer (the length prepender frames each
/// buffer it gets, so envelopes cannot be batched here). The buffer is reused from message to
/// message while the next stage lets go of it, as the length prepender does by copying it into its
/// batch, so in steady state this allocates nothing.
public final class NativeEnvelopeCodec: ChannelDuplexHandler {
    /// Frame payloads from the framer.
    public typealias InboundIn = ByteBuffer
    /// Decoded envelopes.
    public typealias InboundOut = Envelope
    /// Envelopes to send.
    public typealias OutboundIn = Envelope
    /// One frame payload per envelope, for the length prepender.
    public typealias OutboundOut = ByteBuffer

    private let decoder = NativeEnvelopeDecoder()
    private let encoder = NativeEnvelopeEncoder()
    /// The buffer envelopes are encoded into; recycled when nobody else holds it.
    private var scratch = ByteBuffer()
    /// Set once malformed input was seen: the connection is closing and later frames are ignored.
    private var failed = false

    /// Creates a codec.
    public init() {}

    /// Decodes `data` and fires its envelope; on malformed input fires the error and closes.
    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        guard !failed else { return }
        let envelope: Envelope
        do {
            envelope = try decoder.decode(data)
        } catch {
            failed = true
            context.fireErrorCaught(error)
            context.close()
            return
        }
        context.fireChannelRead(envelope)
    }

    /// Encodes `data` into one payload buffer and writes it on.
    ///
    /// An envelope that cannot be encoded fails `promise` and is fired as an error.
    public func write(context: ChannelHandlerContext, data: Envelope, promise: Promise<Void>?) {
        let length: Int
        do {
            length = try encoder.encodedLength(of: data)
        } catch {
            promise?.fail(error)
            context.fireErrorCaught(error)
            return
        }
        // Keeps the memory when the last payload was copied and released downstream; otherwise
        // (still queued somewhere, or too small) takes fresh memory of the right size, never a copy.
        scratch.clear(minimumCapacity: length)
        encoder.write(data, into: &scratch)
        context.write(scratch, promise: promise)
    }
}
