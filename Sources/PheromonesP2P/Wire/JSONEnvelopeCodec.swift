import Pheromones

/// The JSON wire: the Go original's messages, byte for byte.
///
/// The original (`Blockchain-CN/pheromones`, `protocal.go`) sends each message as
/// `json.Marshal(&MsgPto{...})` of
///
///     type MsgPto struct {
///         Name      string `json:"name"`
///         Operation string `json:"operation"`
///         Data      []byte `json:"data"`   // base64 in JSON, null when nil
///     }
///
/// written with one `conn.Write`: no length prefix, no newline. Objects are therefore framed by
/// their own braces (``JSONObjectFramer``).
public enum JSONWire {
    /// The stages of the JSON wire, framer first:
    /// `try pipeline.addHandlers(JSONWire.handlers() + [MyProtocolHandler()])`.
    ///
    /// The framer splits the stream into objects of at most `maximumObjectSize` bytes; stream
    /// errors (not JSON, too large, too deep) are fired and the connection closed. The
    /// ``JSONEnvelopeCodec`` turns each object into an ``Envelope``, firing an object that is not
    /// one as an error without closing, and encodes outgoing envelopes Go's way, batched per flush.
    public static func handlers(maximumObjectSize: Int = 1 << 20) -> [any ChannelHandler] {
        [framer(maximumObjectSize: maximumObjectSize), JSONEnvelopeCodec(maximumObjectSize: maximumObjectSize)]
    }

    /// The first stage of ``handlers(maximumObjectSize:)``.
    static func framer(maximumObjectSize: Int) -> ByteToMessageHandler<JSONObjectFramer> {
        let framer = JSONObjectFramer(maximumObjectSize: maximumObjectSize)
        return ByteToMessageHandler(framer, maximumBufferSize: framer.requiredBufferSize)
    }
}

// MARK: - The codec stage

/// Turns JSON objects (from a ``JSONObjectFramer``) into ``Envelope``s, and envelopes into JSON
/// exactly as Go's `json.Marshal` writes them.
///
/// ### Inbound
/// An object that is not an envelope (a syntax error inside it, a field of the wrong type, bad
/// UTF-8, bad base64) is fired as ``WireError/malformedEnvelope(_:)``, ``WireError/invalidUTF8``
/// or ``WireError/invalidBase64`` and the connection stays open: the object was framed, so the
/// stream is still in step, and the Go original answers such a message with `unknownop` rather
/// than hanging up. That answer is the protocol stage's to give.
///
/// ### Outbound
/// Envelopes are encoded into one buffer per flush, whose memory is reused from flush to flush
/// (the stage runs a ``MessageToByteHandler`` of ``JSONEnvelopeEncoder`` inside itself), so the
/// per-message path allocates nothing in steady state. The Go original reads one `conn.Read` as
/// one message, so when talking to it, flush after each envelope: a Go peer handed two objects in
/// one read fails to parse both.
public final class JSONEnvelopeCodec: ChannelDuplexHandler {
    /// One JSON object per message, from the framer.
    public typealias InboundIn = ByteBuffer
    /// Decoded envelopes.
    public typealias InboundOut = Envelope
    /// Envelopes to send.
    public typealias OutboundIn = Envelope
    /// The JSON of the envelopes written since the last flush.
    public typealias OutboundOut = ByteBuffer

    private let decoder = JSONEnvelopeDecoder()
    /// Does the batching, buffer reuse and promise bookkeeping; driven with this stage's context,
    /// so its output goes to the stage before this one.
    private let encoderStage: MessageToByteHandler<JSONEnvelopeEncoder>

    /// Creates a codec that refuses to send an envelope whose JSON exceeds `maximumObjectSize`
    /// bytes (the peer's framer would drop the connection over it).
    public init(maximumObjectSize: Int = 1 << 20) {
        encoderStage = MessageToByteHandler(JSONEnvelopeEncoder(maximumObjectSize: maximumObjectSize))
    }

    /// Decodes one object and fires its envelope, or fires the error and keeps reading.
    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        let envelope: Envelope
        do {
            envelope = try decoder.decode(data)
        } catch {
            context.fireErrorCaught(error)
            return
        }
        context.fireChannelRead(envelope)
    }

    /// Encodes `data` into the pending batch; it is sent at the next flush.
    public func write(context: ChannelHandlerContext, data: Envelope, promise: Promise<Void>?) {
        encoderStage.write(context: context, data: data, promise: promise)
    }

    /// Sends the pending batch as one buffer, then flushes.
    public func flush(context: ChannelHandlerContext) {
        encoderStage.flush(context: context)
    }

    /// Drops (`.all`) or hands on (`.output`) the unflushed batch, then passes the close on.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        encoderStage.close(context: context, mode: mode, promise: promise)
    }

    /// Hands an unflushed batch on, so no accepted write is lost.
    public func handlerRemoved(context: ChannelHandlerContext) {
        encoderStage.handlerRemoved(context: context)
    }
}

// MARK: - Encoding

/// Encodes envelopes exactly as Go's `json.Marshal` encodes the original's `MsgPto`:
/// `{"name":"…","operation":"…","data":"<base64>"}`, or `"data":null` for nil data, with no
/// whitespace and no newline.
///
/// Strings are escaped as Go escapes them (see ``writeQuoted(_:into:)``).
public struct JSONEnvelopeEncoder: MessageToByteEncoder, Sendable {
    /// The encoder takes envelopes.
    public typealias OutboundIn = Envelope

    /// The largest encoding ``encode(data:out:)`` accepts, in bytes.
    public let maximumObjectSize: Int

    /// Creates an encoder whose pipeline form refuses encodings above `maximumObjectSize` bytes.
    public init(maximumObjectSize: Int = 1 << 20) {
        self.maximumObjectSize = maximumObjectSize
    }

    /// Appends the JSON of `envelope` to `buffer` (no size limit).
    public func encode(_ envelope: Envelope, into buffer: inout ByteBuffer) {
        // The fixed text is 34 bytes; escapes may need more, which the writes then grow into.
        let dataLength = envelope.data.map { Base64.encodedLength(of: $0.readableBytes) + 2 } ?? 4
        buffer.reserveCapacity(minimumWritableBytes: 34 + envelope.name.utf8.count + envelope.operation.utf8.count + dataLength)
        buffer.writeString("{\"name\":")
        Self.writeQuoted(envelope.name, into: &buffer)
        buffer.writeString(",\"operation\":")
        Self.writeQuoted(envelope.operation, into: &buffer)
        buffer.writeString(",\"data\":")
        if let data = envelope.data {
            buffer.writeInteger(UInt8(ascii: "\""))
            Base64.encode(data, into: &buffer)
            buffer.writeInteger(UInt8(ascii: "\""))
        } else {
            buffer.writeString("null")
        }
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// Appends the JSON of `data` to `out`, as a pipeline encoder.
    ///
    /// - Throws: ``WireError/objectTooLarge(limit:)`` when the JSON exceeds ``maximumObjectSize``
    ///   (the ``MessageToByteHandler`` then removes what was appended).
    public mutating func encode(data: Envelope, out: inout ByteBuffer) throws {
        let start = out.writerIndex
        encode(data, into: &out)
        guard out.writerIndex - start <= maximumObjectSize else {
            throw WireError.objectTooLarge(limit: maximumObjectSize)
        }
    }

    /// Appends `string` as a JSON string literal, escaped exactly as Go's `encoding/json` does
    /// (with its default HTML escaping, as `json.Marshal` uses):
    ///
    /// - `"` and `\` as `\"` and `\\`; backspace, form feed, newline, carriage return and tab as
    ///   `\b`, `\f`, `\n`, `\r`, `\t` (Go 1.22 and later; earlier versions wrote `\u0008` and `\u000c`);
    /// - other control characters, and `<`, `>`, `&`, as `\u00XX` (lowercase hex);
    /// - U+2028 and U+2029 as `\u2028` and `\u2029`;
    /// - every other character, DEL and non-ASCII included, as its UTF-8.
    public static func writeQuoted(_ string: String, into buffer: inout ByteBuffer) {
        var string = string
        string.withUTF8 { writeQuoted(utf8: UnsafeRawBufferPointer($0), into: &buffer) }
    }

    /// Appends UTF-8 bytes as a JSON string literal like ``writeQuoted(_:into:)``, replacing each
    /// byte that is not part of valid UTF-8 with `\ufffd`, as Go does for a string holding invalid
    /// UTF-8 (a Swift `String` never does).
    public static func writeQuoted(utf8 bytes: some Sequence<UInt8>, into buffer: inout ByteBuffer) {
        Array(bytes).withUnsafeBytes { writeQuoted(utf8: $0, into: &buffer) }
    }

    /// The escaping loop: copies runs of bytes that need no escape in one go.
    static func writeQuoted(utf8 bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        let count = bytes.count
        var runStart = 0
        var index = 0
        func flushRun(upTo end: Int) {
            if end > runStart { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[runStart..<end])) }
        }
        while index < count {
            let byte = bytes[index]
            if byte < 0x80 {
                if byte >= 0x20, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\"),
                   byte != UInt8(ascii: "<"), byte != UInt8(ascii: ">"), byte != UInt8(ascii: "&") {
                    index += 1
                    continue
                }
                flushRun(upTo: index)
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    buffer.writeInteger(UInt8(ascii: "\\"))
                    buffer.writeInteger(byte)
                case 0x08: buffer.writeString("\\b")
                case 0x0c: buffer.writeString("\\f")
                case UInt8(ascii: "\n"): buffer.writeString("\\n")
                case UInt8(ascii: "\r"): buffer.writeString("\\r")
                case UInt8(ascii: "\t"): buffer.writeString("\\t")
                default:
                    buffer.writeString("\\u00")
                    buffer.writeInteger(hexDigit(byte >> 4))
                    buffer.writeInteger(hexDigit(byte & 0x0f))
                }
                index += 1
                runStart = index
                continue
            }
            guard let length = UTF8Validation.sequenceLength(bytes, at: index) else {
                flushRun(upTo: index)
                buffer.writeString("\\ufffd")
                index += 1
                runStart = index
                continue
            }
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            if length == 3, byte == 0xe2, bytes[index + 1] == 0x80, bytes[index + 2] & 0xfe == 0xa8 {
                flushRun(upTo: index)
                buffer.writeString(bytes[index + 2] == 0xa8 ? "\\u2028" : "\\u2029")
                index += 3
                runStart = index
                continue
            }
            index += length
        }
        flushRun(upTo: count)
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }
}

// MARK: - Decoding

/// Decodes one JSON envelope, accepting what Go's `json.Unmarshal` into the original's `MsgPto`
/// accepts, with one deliberate exception: strings must be valid UTF-8 (Go silently replaces bad
/// bytes with U+FFFD; a peer that sends them is broken or hostile).
///
/// As in Go:
/// - the input is one JSON value with optional whitespace around it; a top-level `null` decodes
///   to an empty envelope (Go leaves the struct untouched), any other non-object is an error;
/// - keys match the fields `name`, `operation` and `data` exactly or without regard to case
///   (`NAME`, `Operation`; Go's folding also lets U+212A KELVIN SIGN match `k` and U+017F LONG S
///   match `s`), escapes in keys included;
/// - fields may come in any order; when a field appears twice the last value wins, except that
///   `null` leaves a string field as it was (and sets `data` to nil);
/// - unknown fields are skipped whatever their value, after checking its syntax;
/// - `data` is a base64 string (see ``Base64``), `null`, or an array of integers 0...255 (which Go
///   also decodes into a `[]byte`; `null` elements are 0);
/// - string escapes include `\uXXXX` with surrogate pairs; a lone surrogate becomes U+FFFD.
///
/// The message-id fields are not part of the JSON wire and decode as 0.
public struct JSONEnvelopeDecoder: Sendable {
    /// Creates a decoder (it holds no state).
    public init() {}

    /// Decodes the envelope in `json`'s readable bytes.
    ///
    /// - Throws: ``WireError/malformedEnvelope(_:)`` (syntax or field type), ``WireError/invalidUTF8``,
    ///   ``WireError/invalidBase64`` or ``WireError/nestingTooDeep``.
    public func decode(_ json: ByteBuffer) throws(WireError) -> Envelope {
        try json.withUnsafeReadableBytes { bytes in
            Result { () throws(WireError) in try Self.decode(bytes) }
        }.get()
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Envelope {
        var reader = JSONReader(bytes: bytes, subject: .envelope)
        var envelope = Envelope(name: "", operation: "")
        guard try reader.beginDocument() else { return envelope }
        var first = true
        while let key = try reader.nextKey(first: first) {
            first = false
            if reader.key(key, matches: "name") {
                if let name = try reader.readString(field: "name") { envelope.name = name }
            } else if reader.key(key, matches: "operation") {
                if let operation = try reader.readString(field: "operation") { envelope.operation = operation }
            } else if reader.key(key, matches: "data") {
                envelope.data = try reader.readBytes(field: "data")
            } else {
                try reader.skipValue()
            }
        }
        try reader.endDocument()
        return envelope
    }
}

// MARK: - The parser

/// UTF-8 validation by the rules of Unicode's table 3-7 (the same as Go's `utf8.DecodeRune`): no
/// overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequences.
enum UTF8Validation {
    /// The length of the valid sequence starting at `index` (whose byte is at least 0x80), or
    /// nil when it is not valid UTF-8.
    @inline(__always)
    static func sequenceLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int? {
        let count = bytes.count
        @inline(__always)
        func continuation(_ offset: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xbf) -> Bool {
            let position = index + offset
            return position < count && bytes[position] >= low && bytes[position] <= high
        }
        switch bytes[index] {
        case 0xc2...0xdf:
            return continuation(1) ? 2 : nil
        case 0xe0:
            return continuation(1, 0xa0) && continuation(2) ? 3 : nil
        case 0xe1...0xec, 0xee...0xef:
            return continuation(1) && continuation(2) ? 3 : nil
        case 0xed:
            return continuation(1, 0x80, 0x9f) && continuation(2) ? 3 : nil
        case 0xf0:
            return continuation(1, 0x90) && continuation(2) && continuation(3) ? 4 : nil
        case 0xf1...0xf3:
            return continuation(1) && continuation(2) && continuation(3) ? 4 : nil
        case 0xf4:
            return continuation(1, 0x80, 0x8f) && continuation(2) && continuation(3) ? 4 : nil
        default:
            return nil
        }
    }
}

/// A strict, small JSON reader over one document, for decoding fixed structs the way Go's
/// `encoding/json` does (the envelope, the greeting). It validates as it goes: RFC 8259 syntax,
/// UTF-8 in strings, and nesting up to ``JSONObjectFramer/maximumNestingDepth`` (which also bounds
/// its recursion). It never traps on input: every index is checked against the bytes present.
struct JSONReader {
    /// What is being decoded, to name it in errors.
    enum Subject {
        case envelope
        case greeting
    }

    /// The kinds of JSON values, as found from their first byte.
    enum ValueKind: String {
        case string = "a string"
        case number = "a number"
        case object = "an object"
        case array = "an array"
        case boolean = "a boolean"
        case null = "null"
    }

    /// A string's raw bytes between its quotes, with what the scan learned about them.
    struct StringToken {
        var start: Int
        var end: Int
        /// Whether it contains backslash escapes (and so must be unescaped before use).
        var hasEscapes: Bool
        /// Whether all its bytes are ASCII.
        var isASCII: Bool
    }

    /// A number's bytes and whether it has neither a fraction nor an exponent.
    struct NumberToken {
        var start: Int
        var end: Int
        var isInteger: Bool
    }

    let bytes: UnsafeRawBufferPointer
    let subject: Subject
    private(set) var index = 0
    private(set) var depth = 0

    init(bytes: UnsafeRawBufferPointer, subject: Subject) {
        self.bytes = bytes
        self.subject = subject
    }

    /// The error for input that is not the expected JSON.
    func malformed(_ reason: String) -> WireError {
        switch subject {
        case .envelope: return .malformedEnvelope(reason)
        case .greeting: return .malformedGreeting(reason)
        }
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index += 1
            default: return
            }
        }
    }

    private func describeCurrent() -> String {
        current.map { JSONObjectFramer.describe($0) } ?? "the end of the input"
    }

    // MARK: Structure

    /// Starts the document: returns true after the top-level object's `{`, or false for a
    /// top-level `null` (which Go accepts, leaving the target as it was).
    mutating func beginDocument() throws(WireError) -> Bool {
        skipWhitespace()
        guard let byte = current else { throw malformed("the input is empty") }
        if byte == UInt8(ascii: "n") {
            try expectLiteral("null")
            try endDocument()
            return false
        }
        guard byte == UInt8(ascii: "{") else {
            let kind = try valueKind()
            throw malformed("expected an object, found \(kind.rawValue)")
        }
        index += 1
        depth = 1
        return true
    }

    /// Checks that only whitespace follows the document.
    mutating func endDocument() throws(WireError) {
        skipWhitespace()
        guard index == bytes.count else { throw malformed("unexpected \(describeCurrent()) after the object") }
    }

    /// Moves to the next member of the current object: returns its key with the reader at the
    /// start of its value, or nil after the object's `}`.
    mutating func nextKey(first: Bool) throws(WireError) -> StringToken? {
        skipWhitespace()
        guard let byte = current else { throw malformed("the input ends inside an object") }
        if byte == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return nil
        }
        if !first {
            guard byte == UInt8(ascii: ",") else { throw malformed("expected ',' or '}' after a member, found \(describeCurrent())") }
            index += 1
            skipWhitespace()
        }
        guard current == UInt8(ascii: "\"") else { throw malformed("expected a string key, found \(describeCurrent())") }
        let key = try scanString()
        skipWhitespace()
        guard current == UInt8(ascii: ":") else { throw malformed("expected ':' after a key, found \(describeCurrent())") }
        index += 1
        skipWhitespace()
        return key
    }

    /// Moves to the next element of the current array: returns true with the reader at the
    /// element, or false after the array's `]`.
    private mutating func nextElement(first: Bool) throws(WireError) -> Bool {
        skipWhitespace()
        guard let byte = current else { throw malformed("the input ends inside an array") }
        if byte == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return false
        }
        if !first {
            guard byte == UInt8(ascii: ",") else { throw malformed("expected ',' or ']' after an element, found \(describeCurrent())") }
            index += 1
            skipWhitespace()
        }
        return true
    }

    /// Steps into an object or array, enforcing the nesting limit before going deeper.
    private mutating func enterContainer() throws(WireError) {
        guard depth < JSONObjectFramer.maximumNestingDepth else { throw .nestingTooDeep }
        depth += 1
        index += 1
    }

    /// The kind of the value starting at the reader.
    private func valueKind() throws(WireError) -> ValueKind {
        guard let byte = current else { throw malformed("the input ends where a value should start") }
        switch byte {
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .boolean
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: throw malformed("unexpected \(describeCurrent()) where a value should start")
        }
    }

    /// Skips one value of any kind, checking its syntax (recursion bounded by the nesting limit).
    mutating func skipValue() throws(WireError) {
        switch try valueKind() {
        case .string:
            _ = try scanString()
        case .number:
            _ = try scanNumber()
        case .boolean:
            if current == UInt8(ascii: "t") { try expectLiteral("true") } else { try expectLiteral("false") }
        case .null:
            try expectLiteral("null")
        case .object:
            try enterContainer()
            var first = true
            while try nextKey(first: first) != nil {
                first = false
                try skipValue()
            }
        case .array:
            try enterContainer()
            var first = true
            while try nextElement(first: first) {
                first = false
                try skipValue()
            }
        }
    }

    /// Skips a value of the wrong kind (so a syntax error in it is reported as such) and throws.
    private mutating func typeMismatch(field: String, expected: String, found kind: ValueKind) throws(WireError) -> Never {
        try skipValue()
        throw malformed("\"\(field)\" must be \(expected), not \(kind.rawValue)")
    }

    // MARK: Tokens

    private mutating func expectLiteral(_ literal: StaticString) throws(WireError) {
        let matches = literal.withUTF8Buffer { expected in
            guard bytes.count - index >= expected.count else { return false }
            for offset in 0..<expected.count where bytes[index + offset] != expected[offset] { return false }
            return true
        }
        guard matches else { throw malformed("invalid literal starting with \(describeCurrent())") }
        index += literal.utf8CodeUnitCount
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// Scans a number by JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    private mutating func scanNumber() throws(WireError) -> NumberToken {
        let start = index
        var isInteger = true
        if current == UInt8(ascii: "-") { index += 1 }
        guard let firstDigit = current, Self.isDigit(firstDigit) else { throw malformed("a number has no digits") }
        index += 1
        if firstDigit != UInt8(ascii: "0") {
            while let byte = current, Self.isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard let byte = current, Self.isDigit(byte) else { throw malformed("a number has no digits after its decimal point") }
            while let byte = current, Self.isDigit(byte) { index += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard let byte = current, Self.isDigit(byte) else { throw malformed("a number has no digits in its exponent") }
            while let byte = current, Self.isDigit(byte) { index += 1 }
        }
        return NumberToken(start: start, end: index, isInteger: isInteger)
    }

    /// The number's text for an error message, shortened if long.
    private func text(of number: NumberToken) -> String {
        let end = min(number.end, number.start + 32)
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[number.start..<end]), as: UTF8.self)
        return end < number.end ? text + "..." : text
    }

    /// The value of an integer token, or nil when it does not fit an `Int`.
    private func integerValue(of number: NumberToken) -> Int? {
        var position = number.start
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        var value = 0
        while position < number.end {
            let digit = Int(bytes[position] &- UInt8(ascii: "0"))
            let (shifted, overflowShift) = value.multipliedReportingOverflow(by: 10)
            // Accumulating negative values on the negative side reaches Int.min exactly.
            let (next, overflowAdd) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            if overflowShift || overflowAdd { return nil }
            value = next
            position += 1
        }
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte &- UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(byte &- UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(byte &- UInt8(ascii: "A")) + 10
        default: return nil
        }
    }

    /// The four hex digits at `position`, or nil if they are not there.
    private func hex4(at position: Int) -> UInt32? {
        guard position >= 0, bytes.count - position >= 4 else { return nil }
        var value: UInt32 = 0
        for offset in 0..<4 {
            guard let digit = Self.hexValue(bytes[position + offset]) else { return nil }
            value = value << 4 | digit
        }
        return value
    }

    /// Scans a string (the reader is at its opening quote), validating escapes, control
    /// characters and UTF-8, without decoding it.
    private mutating func scanString() throws(WireError) -> StringToken {
        index += 1
        let start = index
        var hasEscapes = false
        var isASCII = true
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let token = StringToken(start: start, end: index, hasEscapes: hasEscapes, isASCII: isASCII)
                index += 1
                return token
            case UInt8(ascii: "\\"):
                hasEscapes = true
                guard index + 1 < count else { throw malformed("the input ends inside a string") }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                     UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard hex4(at: index + 2) != nil else { throw malformed("a \\u escape needs four hex digits") }
                    index += 6
                default:
                    throw malformed("invalid escape \\\(JSONObjectFramer.describe(bytes[index + 1])) in a string")
                }
            case 0..<0x20:
                throw malformed("a string contains an unescaped control character (\(JSONObjectFramer.describe(byte)))")
            case 0x80...:
                guard let length = UTF8Validation.sequenceLength(bytes, at: index) else { throw .invalidUTF8 }
                isASCII = false
                index += length
            default:
                index += 1
            }
        }
        throw malformed("the input ends inside a string")
    }

    /// The string's bytes with escapes decoded (a lone surrogate becomes U+FFFD, as in Go).
    private func unescapedBytes(_ token: StringToken) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(token.end - token.start)
        var position = token.start
        while position < token.end {
            let byte = bytes[position]
            guard byte == UInt8(ascii: "\\"), position + 1 < token.end else {
                output.append(byte)
                position += 1
                continue
            }
            let escape = bytes[position + 1]
            position += 2
            switch escape {
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0c)
            case UInt8(ascii: "n"): output.append(0x0a)
            case UInt8(ascii: "r"): output.append(0x0d)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(at: position) ?? 0xfffd
                position += 4
                if scalar >= 0xd800 && scalar <= 0xdfff {
                    // Go pairs a high surrogate with an immediately following \u low surrogate;
                    // anything else is U+FFFD, and the following escape is decoded on its own.
                    var paired: UInt32?
                    if scalar < 0xdc00, token.end - position >= 6,
                       bytes[position] == UInt8(ascii: "\\"), bytes[position + 1] == UInt8(ascii: "u"),
                       let low = hex4(at: position + 2), low >= 0xdc00, low <= 0xdfff {
                        paired = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                        position += 6
                    }
                    scalar = paired ?? 0xfffd
                }
                Self.appendUTF8(scalar, to: &output)
            default:
                // `"`, `\` and `/` stand for themselves.
                output.append(escape)
            }
        }
        return output
    }

    private static func appendUTF8(_ scalar: UInt32, to output: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            output.append(UInt8(truncatingIfNeeded: scalar))
        case 0x80..<0x800:
            output.append(0xc0 | UInt8(truncatingIfNeeded: scalar >> 6))
            output.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3f))
        case 0x800..<0x10000:
            output.append(0xe0 | UInt8(truncatingIfNeeded: scalar >> 12))
            output.append(0x80 | UInt8(truncatingIfNeeded: scalar >> 6 & 0x3f))
            output.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3f))
        default:
            output.append(0xf0 | UInt8(truncatingIfNeeded: scalar >> 18))
            output.append(0x80 | UInt8(truncatingIfNeeded: scalar >> 12 & 0x3f))
            output.append(0x80 | UInt8(truncatingIfNeeded: scalar >> 6 & 0x3f))
            output.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3f))
        }
    }

    /// The string's value. Its bytes were validated by the scan and escapes decode to valid
    /// UTF-8, so decoding repairs nothing.
    private func string(_ token: StringToken) -> String {
        if !token.hasEscapes {
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[token.start..<token.end]), as: UTF8.self)
        }
        return String(decoding: unescapedBytes(token), as: UTF8.self)
    }

    // MARK: Keys

    @inline(__always)
    private static func asciiUppercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") ? byte - 0x20 : byte
    }

    /// Whether a key names the field `name` (ASCII), by Go's rule: an exact match, or a match
    /// after folding both with `unicode.SimpleFold` (encoding/json's fold.go). For an ASCII field
    /// name that is ASCII case-insensitivity plus two non-ASCII characters whose fold orbits hold
    /// ASCII letters: U+212A KELVIN SIGN (with `k`) and U+017F LATIN SMALL LETTER LONG S (with `s`).
    func key(_ token: StringToken, matches name: StaticString) -> Bool {
        name.withUTF8Buffer { field in
            if !token.hasEscapes && token.isASCII {
                guard token.end - token.start == field.count else { return false }
                for offset in 0..<field.count
                where Self.asciiUppercased(bytes[token.start + offset]) != Self.asciiUppercased(field[offset]) {
                    return false
                }
                return true
            }
            var position = 0
            for scalar in string(token).unicodeScalars {
                guard position < field.count else { return false }
                let folded: UInt8
                switch scalar.value {
                case 0..<0x80: folded = Self.asciiUppercased(UInt8(truncatingIfNeeded: scalar.value))
                case 0x212a: folded = UInt8(ascii: "K")
                case 0x17f: folded = UInt8(ascii: "S")
                default: return false
                }
                guard folded == Self.asciiUppercased(field[position]) else { return false }
                position += 1
            }
            return position == field.count
        }
    }

    // MARK: Typed values

    /// Reads a string field's value: the string, or nil for `null` (which leaves a Go string as it was).
    mutating func readString(field: String) throws(WireError) -> String? {
        switch try valueKind() {
        case .string:
            let token = try scanString()
            return string(token)
        case .null:
            try expectLiteral("null")
            return nil
        case let kind:
            try typeMismatch(field: field, expected: "a string", found: kind)
        }
    }

    /// Reads an `int` field's value: the integer, or nil for `null`. Like Go's `strconv.ParseInt`,
    /// only integer literals that fit 64 bits are accepted (no fraction, no exponent).
    mutating func readInt(field: String) throws(WireError) -> Int? {
        switch try valueKind() {
        case .number:
            let number = try scanNumber()
            guard number.isInteger else { throw malformed("\"\(field)\" must be an integer, not \(text(of: number))") }
            guard let value = integerValue(of: number) else {
                throw malformed("\"\(field)\" is \(text(of: number)), which does not fit a 64-bit integer")
            }
            return value
        case .null:
            try expectLiteral("null")
            return nil
        case let kind:
            try typeMismatch(field: field, expected: "an integer", found: kind)
        }
    }

    /// Reads a `[]byte` field's value: nil for `null` (Go sets the slice to nil), the decoded
    /// bytes of a base64 string, or the bytes of an array of integers 0...255.
    mutating func readBytes(field: String) throws(WireError) -> ByteBuffer? {
        switch try valueKind() {
        case .null:
            try expectLiteral("null")
            return nil
        case .string:
            let token = try scanString()
            if !token.hasEscapes {
                return try Base64.decode(UnsafeRawBufferPointer(rebasing: bytes[token.start..<token.end]))
            }
            // Escapes are rare here (`\/`, or line breaks, which Go's base64 skips): decode them first.
            return try unescapedBytes(token).withUnsafeBytes { unescaped in
                Result { () throws(WireError) in try Base64.decode(unescaped) }
            }.get()
        case .array:
            try enterContainer()
            var output = ByteBuffer()
            var first = true
            while try nextElement(first: first) {
                first = false
                switch try valueKind() {
                case .number:
                    let number = try scanNumber()
                    guard number.isInteger, bytes[number.start] != UInt8(ascii: "-"),
                          let value = integerValue(of: number), let byte = UInt8(exactly: value)
                    else { throw malformed("the elements of \"\(field)\" must be integers from 0 to 255, not \(text(of: number))") }
                    output.writeInteger(byte)
                case .null:
                    try expectLiteral("null")
                    output.writeInteger(UInt8(0))
                case let kind:
                    try typeMismatch(field: field, expected: "an array of integers", found: kind)
                }
            }
            return output
        case let kind:
            try typeMismatch(field: field, expected: "a base64 string or null", found: kind)
        }
    }
}
