/// Errors from decoding (and, for size limits, encoding) the P2P wires.
///
/// Where an error is raised decides what happens to the connection, not the case itself:
///
/// - Framing errors (``malformedJSON(_:)``, ``objectTooLarge(limit:)``, ``nestingTooDeep`` from the
///   ``JSONObjectFramer``, and every error of the native wire) mean the byte stream can no longer be
///   split into messages, so the stage that raised it fires it and closes the connection.
/// - Envelope errors of the JSON wire (``malformedEnvelope(_:)``, ``invalidUTF8``, ``invalidBase64``
///   from the ``JSONEnvelopeCodec``) concern one well-framed object: the stream is still in sync, so
///   the codec fires the error and keeps the connection open. The protocol stage answers those
///   with `unknownop`, as the Go original's example protocol does.
public enum WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The bytes are not JSON where JSON was expected (say, a stray byte between objects, or a
    /// `]` closing a `{`). The associated text says what was found.
    case malformedJSON(String)
    /// A JSON object grew past `limit` bytes before it closed; raised as soon as byte `limit + 1`
    /// arrives, so a peer cannot make the framer buffer more than that. When encoding: the
    /// envelope's encoding would be larger than the peer accepts.
    case objectTooLarge(limit: Int)
    /// Objects and arrays are nested more than ``JSONObjectFramer/maximumNestingDepth`` deep; a
    /// bound that keeps the parser's recursion (and the framer's state) small.
    case nestingTooDeep
    /// A well-formed frame does not hold a valid envelope: a JSON syntax error inside the object, a
    /// field of the wrong JSON type, unknown native flags. The text says which.
    case malformedEnvelope(String)
    /// A string (a JSON string, or a native name or operation) is not valid UTF-8.
    case invalidUTF8
    /// The envelope's `data` is not standard, padded base64.
    case invalidBase64
    /// A native envelope starts with a version this implementation does not speak.
    case unsupportedVersion(UInt8)
    /// A native envelope ends before its fixed header or one of its fields does (a length
    /// announces more bytes than the frame holds).
    case truncatedEnvelope
    /// A native envelope is followed by this many bytes inside its frame.
    case trailingBytes(Int)
    /// The connect greeting (the `data` of a `connectreq`) is not the example protocol's
    /// `{"add":...,"account":...}` object. The text says why.
    case malformedGreeting(String)
    /// A field is too long for the native wire's length prefix (names and operations have a
    /// 16-bit length); raised when encoding, nothing is written.
    case fieldTooLong(field: String, length: Int, limit: Int)

    /// A sentence saying what was wrong, for logs. The decoders' texts quote no text a peer sent:
    /// a byte is shown as `'x'` when it is printable ASCII, as `byte 0x1b` otherwise.
    public var description: String {
        switch self {
        case .malformedJSON(let reason):
            return "The input is not valid JSON: \(reason)."
        case .objectTooLarge(let limit):
            return "A JSON object is larger than the limit of \(limit) bytes."
        case .nestingTooDeep:
            return "JSON objects and arrays are nested more than \(JSONObjectFramer.maximumNestingDepth) levels deep."
        case .malformedEnvelope(let reason):
            return "The message is not a valid envelope: \(reason)."
        case .invalidUTF8:
            return "A string is not valid UTF-8."
        case .invalidBase64:
            return "The envelope's data is not valid standard base64."
        case .unsupportedVersion(let version):
            return "The envelope has version \(version), but only version \(NativeWire.version) is supported."
        case .truncatedEnvelope:
            return "The envelope ends before one of its fields does."
        case .trailingBytes(let count):
            return "The envelope is followed by \(count) unexpected byte\(count == 1 ? "" : "s") in its frame."
        case .malformedGreeting(let reason):
            return "The connect greeting is not valid: \(reason)."
        case .fieldTooLong(let field, let length, let limit):
            return "The envelope's \(field) is \(length) bytes long, but the native wire allows at most \(limit)."
        }
    }
}
