/// The size of a frame's length prefix.
public enum LengthFieldLength: Int, Sendable {
    /// A `UInt8` length: frames up to 255 bytes.
    case one = 1
    /// A `UInt16` length: frames up to 65,535 bytes.
    case two = 2
    /// A `UInt32` length: frames up to 4 GiB - 1.
    case four = 4
    /// A `UInt64` length (values above `Int.max` are rejected as too large).
    case eight = 8

    /// The largest length the field can express, capped at `Int.max`.
    var largestLength: Int {
        switch self {
        case .one: return Int(UInt8.max)
        case .two: return Int(UInt16.max)
        case .four: return Int(exactly: UInt32.max) ?? Int.max
        case .eight: return Int.max
        }
    }
}

/// Errors from length-prefixed framing.
public enum LengthFieldFramerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A frame's length is above the maximum (or, when encoding, above what the length field can
    /// express). `length` is a `UInt64` so that any 8-byte length read off the wire is reported
    /// exactly, even one above `Int.max`; `maximum` is the limit that was exceeded.
    case frameTooLarge(length: UInt64, maximum: Int)

    /// A sentence describing the failure, for logs.
    public var description: String {
        switch self {
        case .frameTooLarge(let length, let maximum):
            return "a frame of \(length) bytes exceeds the maximum of \(maximum) bytes"
        }
    }
}

/// Splits a byte stream into frames that each start with their payload's length.
///
/// The wire format is `length` (an unsigned integer of ``LengthFieldLength`` bytes, in the chosen
/// byte order) followed by `length` payload bytes. Each frame's payload is fired as a zero-copy
/// slice of the input.
///
/// The maximum frame length is mandatory: the length is checked as soon as the header has arrived,
/// before any of the payload is awaited or buffered, so a hostile peer announcing a 4 GiB frame
/// makes the decoder throw ``LengthFieldFramerError/frameTooLarge(length:maximum:)`` at once (and
/// the ``ByteToMessageHandler`` close the connection) instead of making it buffer 4 GiB.
public struct LengthFieldBasedFrameDecoder: ByteToMessageDecoder {
    /// Frames are fired as their payload.
    public typealias InboundOut = ByteBuffer

    /// The size of the length prefix.
    public let lengthFieldLength: LengthFieldLength
    /// The largest payload accepted, in bytes.
    public let maximumFrameLength: Int
    /// The byte order of the length prefix.
    public let endianness: Endianness

    /// Creates a decoder for `lengthFieldLength`-byte length prefixes in `endianness` byte order,
    /// accepting payloads of at most `maximumFrameLength` bytes.
    ///
    /// - Precondition: `maximumFrameLength` is not negative.
    public init(lengthFieldLength: LengthFieldLength = .four, maximumFrameLength: Int = 1 << 20, endianness: Endianness = .big) {
        precondition(maximumFrameLength >= 0, "LengthFieldBasedFrameDecoder: maximumFrameLength must not be negative")
        self.lengthFieldLength = lengthFieldLength
        self.maximumFrameLength = maximumFrameLength
        self.endianness = endianness
    }

    /// Returns the next frame's payload, or nil until it has arrived whole.
    ///
    /// - Throws: ``LengthFieldFramerError/frameTooLarge(length:maximum:)`` as soon as a header
    ///   announces a payload above ``maximumFrameLength``.
    public mutating func decode(buffer: inout ByteBuffer) throws(LengthFieldFramerError) -> ByteBuffer? {
        let headerStart = buffer.readerIndex
        let announced: UInt64
        switch lengthFieldLength {
        case .one:
            guard let value = buffer.getInteger(at: headerStart, endianness: endianness, as: UInt8.self) else { return nil }
            announced = UInt64(value)
        case .two:
            guard let value = buffer.getInteger(at: headerStart, endianness: endianness, as: UInt16.self) else { return nil }
            announced = UInt64(value)
        case .four:
            guard let value = buffer.getInteger(at: headerStart, endianness: endianness, as: UInt32.self) else { return nil }
            announced = UInt64(value)
        case .eight:
            guard let value = buffer.getInteger(at: headerStart, endianness: endianness, as: UInt64.self) else { return nil }
            announced = value
        }
        // Checked before waiting for (and so before buffering) a single payload byte.
        guard let length = Int(exactly: announced), length <= maximumFrameLength else {
            throw .frameTooLarge(length: announced, maximum: maximumFrameLength)
        }
        let headerLength = lengthFieldLength.rawValue
        // `getSlice` checks the range without overflowing, so no arithmetic on `length` can trap here.
        guard let payload = buffer.getSlice(at: headerStart + headerLength, length: length) else { return nil }
        buffer.moveReaderIndex(forwardBy: headerLength + length)
        return payload
    }
}

/// Prefixes each outgoing payload with its length: the encoding side of
/// ``LengthFieldBasedFrameDecoder``.
public struct LengthFieldPrepender: MessageToByteEncoder {
    /// The encoder takes payloads.
    public typealias OutboundIn = ByteBuffer

    /// The size of the length prefix.
    public let lengthFieldLength: LengthFieldLength
    /// The largest payload accepted, in bytes; should match the peer's decoder.
    public let maximumFrameLength: Int
    /// The byte order of the length prefix.
    public let endianness: Endianness

    /// Creates an encoder writing `lengthFieldLength`-byte length prefixes in `endianness` byte
    /// order, refusing payloads above `maximumFrameLength` bytes.
    ///
    /// - Precondition: `maximumFrameLength` is not negative.
    public init(lengthFieldLength: LengthFieldLength = .four, maximumFrameLength: Int = 1 << 20, endianness: Endianness = .big) {
        precondition(maximumFrameLength >= 0, "LengthFieldPrepender: maximumFrameLength must not be negative")
        self.lengthFieldLength = lengthFieldLength
        self.maximumFrameLength = maximumFrameLength
        self.endianness = endianness
    }

    /// Appends the length of `data` and then its bytes to `out`.
    ///
    /// - Throws: ``LengthFieldFramerError/frameTooLarge(length:maximum:)`` when the payload is longer
    ///   than ``maximumFrameLength`` or than the length field can express (then `maximum` is the
    ///   smaller of the two); nothing is written.
    public mutating func encode(data: ByteBuffer, out: inout ByteBuffer) throws(LengthFieldFramerError) {
        let length = data.readableBytes
        let limit = min(maximumFrameLength, lengthFieldLength.largestLength)
        guard length <= limit else {
            throw .frameTooLarge(length: UInt64(length), maximum: limit)
        }
        out.reserveCapacity(minimumWritableBytes: lengthFieldLength.rawValue + length)
        switch lengthFieldLength {
        case .one: out.writeInteger(UInt8(truncatingIfNeeded: length), endianness: endianness)
        case .two: out.writeInteger(UInt16(truncatingIfNeeded: length), endianness: endianness)
        case .four: out.writeInteger(UInt32(truncatingIfNeeded: length), endianness: endianness)
        case .eight: out.writeInteger(UInt64(truncatingIfNeeded: length), endianness: endianness)
        }
        out.writeImmutableBuffer(data)
    }
}

/// Length-prefixed framing as a ready-made pair of pipeline stages.
public enum LengthFieldFramer {
    /// A frame decoder and a length prepender with matching settings, decoder first:
    /// `try pipeline.addHandlers(LengthFieldFramer.handlers() + [MyHandler()])`.
    ///
    /// The decoder's buffer limit is set to one whole frame (header plus `maximumFrameLength`), the
    /// most it ever needs to hold, so a frame of exactly the maximum size passes however it is split
    /// across reads.
    public static func handlers(
        lengthFieldLength: LengthFieldLength = .four,
        maximumFrameLength: Int = 1 << 20,
        endianness: Endianness = .big
    ) -> [any ChannelHandler] {
        let decoder = LengthFieldBasedFrameDecoder(
            lengthFieldLength: lengthFieldLength, maximumFrameLength: maximumFrameLength, endianness: endianness)
        let encoder = LengthFieldPrepender(
            lengthFieldLength: lengthFieldLength, maximumFrameLength: maximumFrameLength, endianness: endianness)
        let (wholeFrame, overflow) = maximumFrameLength.addingReportingOverflow(lengthFieldLength.rawValue)
        return [
            ByteToMessageHandler(decoder, maximumBufferSize: overflow ? Int.max : wholeFrame),
            MessageToByteHandler(encoder),
        ]
    }
}
