import Pheromones

/// The greeting a node sends in the `data` of its `connectreq`: the address its server listens on
/// (so a short-connection peer can dial back) and an account number.
///
/// It is the Go example protocol's (`_example/protocal/protocal.go`)
///
///     type MsgGreetingReq struct {
///         Addr    string `json:"add"`
///         Account int    `json:"account"`
///     }
///
/// marshalled with `json.Marshal`, so on the wire it is exactly `{"add":"127.0.0.1:12345","account":11900}`:
/// `add` first, then `account`, no whitespace. The envelope then carries those bytes as its
/// `data` (base64 on the JSON wire).
public struct Greeting: Sendable, Hashable {
    /// The `host:port` the sender's server listens on (JSON key `add`, as in the original).
    public var address: String
    /// The sender's account number (Go `int`: 64 bits).
    public var account: Int

    /// Creates a greeting.
    public init(address: String, account: Int) {
        self.address = address
        self.account = account
    }

    /// Appends the greeting's JSON, byte for byte what Go's `json.Marshal` writes.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeString("{\"add\":")
        JSONEnvelopeEncoder.writeQuoted(address, into: &buffer)
        buffer.writeString(",\"account\":")
        buffer.writeString(String(account))
        buffer.writeInteger(UInt8(ascii: "}"))
    }

    /// The greeting's JSON in a buffer of its own, ready to be an envelope's `data`.
    public func encoded() -> ByteBuffer {
        var buffer = ByteBuffer(capacity: 24 + address.utf8.count + 20)
        encode(into: &buffer)
        return buffer
    }

    /// Decodes a greeting as Go's `json.Unmarshal` into `MsgGreetingReq` does (see
    /// ``JSONEnvelopeDecoder`` for the rules: whitespace around the value, keys in any order and
    /// any case, unknown keys skipped, last duplicate wins, `null` leaves a field as it was, and a
    /// top-level `null` gives the zero greeting), except that strings must be valid UTF-8.
    /// `account` must be a JSON integer that fits 64 bits: `1.0`, `1e3` and `"5"` are refused, as
    /// Go refuses them.
    ///
    /// - Throws: ``WireError/malformedGreeting(_:)`` (empty input, syntax, field types, overflow),
    ///   ``WireError/invalidUTF8`` or ``WireError/nestingTooDeep``.
    public init(json: ByteBuffer) throws(WireError) {
        self = try json.withUnsafeReadableBytes { bytes in
            Result { () throws(WireError) in try Self.decode(bytes) }
        }.get()
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Greeting {
        var reader = JSONReader(bytes: bytes, subject: .greeting)
        var greeting = Greeting(address: "", account: 0)
        guard try reader.beginDocument() else { return greeting }
        var first = true
        while let key = try reader.nextKey(first: first) {
            first = false
            if reader.key(key, matches: "add") {
                if let address = try reader.readString(field: "add") { greeting.address = address }
            } else if reader.key(key, matches: "account") {
                if let account = try reader.readInt(field: "account") { greeting.account = account }
            } else {
                try reader.skipValue()
            }
        }
        try reader.endDocument()
        return greeting
    }
}
