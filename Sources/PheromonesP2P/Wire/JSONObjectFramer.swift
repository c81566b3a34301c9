import Pheromones

/// Splits a byte stream into top-level JSON objects, each fired as a zero-copy slice.
///
/// The Go original writes each message with `json.Marshal` and one `conn.Write`, with no length
/// prefix or delimiter, and reads one `conn.Read` as one message; a stream carries objects back to
/// back, possibly with whitespace between them (Go's `json.Encoder` ends each with `\n`). The
/// framer finds where each object ends by tracking nesting, aware of strings and their backslash
/// escapes: a brace inside a string does not count, nor does a quote after a backslash.
///
/// It does not validate the object's content (the envelope parser does that); it checks only what
/// it needs to frame safely:
///
/// - between objects only JSON whitespace (space, tab, `\n`, `\r`) and `{` may appear; anything
///   else is ``WireError/malformedJSON(_:)``;
/// - a `]` must close a `[` and a `}` a `{` (else ``WireError/malformedJSON(_:)``);
/// - nesting deeper than ``maximumNestingDepth`` is ``WireError/nestingTooDeep``;
/// - an object is at most ``maximumObjectSize`` bytes: ``WireError/objectTooLarge(limit:)`` is
///   thrown as soon as one more byte of an unfinished object arrives, before more is buffered;
/// - at most ``maximumWhitespaceBetweenObjects`` bytes of whitespace may wait for the next object
///   (``WireError/malformedJSON(_:)`` past that), so whitespace cannot pile up unbounded either.
///
/// The scan is resumable: when an object is split across reads, the framer remembers how far it
/// got (and in what state), so each byte is examined once however the stream is cut. Whitespace
/// before an object is consumed together with it; whitespace at the end of input is consumed by
/// ``decodeLast(buffer:seenEOF:)``, so a stream ending in `\n` leaves nothing over.
public struct JSONObjectFramer: ByteToMessageDecoder, Sendable {
    /// Each object is fired as a slice of the input, from its `{` to its `}`.
    public typealias InboundOut = ByteBuffer

    /// The deepest nesting of objects and arrays accepted (the top-level object counts as 1).
    public static let maximumNestingDepth = 64

    /// The most whitespace accepted before an object (or at the end of input).
    ///
    /// Whitespace waiting for the next object stays buffered (a decoder consumes input only with
    /// a message), so it needs a bound of its own; Go writes at most one `\n` between objects.
    public static let maximumWhitespaceBetweenObjects = 1 << 16

    /// The largest object accepted, in bytes from `{` to `}`.
    public let maximumObjectSize: Int

    /// The most bytes a ``ByteToMessageHandler`` running this framer must be able to buffer:
    /// the longest whitespace run, a whole object, and the one byte that proves an object too large.
    public var requiredBufferSize: Int {
        let (total, overflow) = maximumObjectSize.addingReportingOverflow(Self.maximumWhitespaceBetweenObjects + 1)
        return overflow ? Int.max : total
    }

    // The scan state, relative to the buffer's reader index (the handler hands back the same
    // bytes, plus more, until an object is returned, though possibly at another index).

    /// How many bytes from the reader index have been examined.
    private var scanned = 0
    /// Where the current object's `{` is, or nil while between objects.
    private var objectStart: Int?
    /// The current nesting depth (1 inside the top-level object).
    private var depth = 0
    /// One bit per level below the top: set when that level is an array, so `]` and `}` can be
    /// matched against what they close. Bit `n - 2` describes level `n`; 63 bits cover depth 64.
    private var arrayLevels: UInt64 = 0
    /// Whether the scan is inside a string.
    private var inString = false
    /// Whether the previous byte was a backslash inside a string.
    private var afterBackslash = false

    /// Creates a framer for objects of at most `maximumObjectSize` bytes.
    ///
    /// - Precondition: `maximumObjectSize` is positive (a configuration error).
    public init(maximumObjectSize: Int = 1 << 20) {
        precondition(maximumObjectSize > 0, "JSONObjectFramer: maximumObjectSize must be positive")
        self.maximumObjectSize = maximumObjectSize
    }

    /// Whether the bytes scanned so far begin an object that has not ended (its `{` has arrived),
    /// rather than being only whitespace between objects.
    var isInsideObject: Bool { objectStart != nil }

    /// Returns the next whole object (consuming it and the whitespace before it), or nil until it
    /// has arrived.
    ///
    /// - Throws: ``WireError/malformedJSON(_:)``, ``WireError/nestingTooDeep`` or
    ///   ``WireError/objectTooLarge(limit:)``.
    public mutating func decode(buffer: inout ByteBuffer) throws(WireError) -> ByteBuffer? {
        let readable = buffer.readableBytes
        if scanned > readable {
            // The bytes we scanned are gone (not something the handler does): start over.
            reset()
        }
        let end = try buffer.withUnsafeReadableBytes { bytes in
            Result { () throws(WireError) in try scan(bytes) }
        }.get()
        guard let end, let start = objectStart else { return nil }
        let object = buffer.getSlice(at: buffer.readerIndex + start, length: end - start)
        buffer.moveReaderIndex(forwardBy: end)
        reset()
        return object
    }

    /// At end of input, returns a last whole object if there is one, and otherwise consumes
    /// trailing whitespace. An unfinished object is left for the handler to report as undecoded
    /// bytes.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws(WireError) -> ByteBuffer? {
        if let object = try decode(buffer: &buffer) { return object }
        if objectStart == nil {
            // `decode` scanned everything and found only whitespace.
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            reset()
        }
        return nil
    }

    private mutating func reset() {
        scanned = 0
        objectStart = nil
        depth = 0
        arrayLevels = 0
        inString = false
        afterBackslash = false
    }

    /// Scans from where the last call stopped. Returns the offset just past the object's closing
    /// brace, or nil (having recorded its progress) when the bytes run out first.
    private mutating func scan(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Int? {
        var index = scanned
        defer { scanned = index }
        let count = bytes.count

        while index < count {
            guard let start = objectStart else {
                // Between objects.
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                    // Everything before `index` is whitespace too (nothing else is kept between objects).
                    guard index < Self.maximumWhitespaceBetweenObjects else {
                        throw .malformedJSON("more than \(Self.maximumWhitespaceBetweenObjects) bytes of whitespace between objects")
                    }
                    index += 1
                case UInt8(ascii: "{"):
                    objectStart = index
                    depth = 1
                    index += 1
                default:
                    throw .malformedJSON("expected '{' at the start of a message, found \(Self.describe(byte))")
                }
                continue
            }

            // Inside an object: the scan may go up to the size limit, no further.
            let (sum, overflow) = start.addingReportingOverflow(maximumObjectSize)
            let limit = overflow ? Int.max : sum
            let stop = min(count, limit)
            while index < stop {
                let byte = bytes[index]
                index += 1
                if inString {
                    if afterBackslash {
                        afterBackslash = false
                    } else if byte == UInt8(ascii: "\\") {
                        afterBackslash = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                    continue
                }
                switch byte {
                case UInt8(ascii: "\""):
                    inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    guard depth < Self.maximumNestingDepth else { throw .nestingTooDeep }
                    depth += 1
                    let bit: UInt64 = 1 << UInt64(depth - 2)
                    if byte == UInt8(ascii: "[") { arrayLevels |= bit } else { arrayLevels &= ~bit }
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    let closesArray = byte == UInt8(ascii: "]")
                    let isArray = depth > 1 && arrayLevels & (1 << UInt64(depth - 2)) != 0
                    guard closesArray == isArray else {
                        throw .malformedJSON("\(Self.describe(byte)) closes \(isArray ? "an array" : "an object") at offset \(index - 1 - start)")
                    }
                    depth -= 1
                    if depth == 0 { return index }
                default:
                    break
                }
            }
            if index == limit, limit < count {
                // Byte number `maximumObjectSize + 1` of an unfinished object is here.
                throw .objectTooLarge(limit: maximumObjectSize)
            }
        }
        return nil
    }

    /// A byte as it should appear in an error message.
    static func describe(_ byte: UInt8) -> String {
        if byte >= 0x20 && byte < 0x7f {
            return "'\(Character(Unicode.Scalar(byte)))'"
        }
        let hex = String(byte, radix: 16)
        return "byte 0x\(hex.count == 1 ? "0" : "")\(hex)"
    }
}
