import Pheromones

/// One message between two nodes: who sent it, what it asks for, and its payload.
///
/// The first three fields are the Go original's `MsgPto` (`Name`, `Operation`, `Data []byte`,
/// tagged `name`, `operation`, `data`), which is all the JSON wire carries. The native wire adds a
/// message id, the id of the request a message answers, and a hop limit, so that replies can be
/// matched to requests on a persistent connection and a forwarded broadcast dies out instead of
/// circulating (the broadcast storm the original's README warns about).
public struct Envelope: Sendable, Hashable, CustomStringConvertible {
    /// The sending node's name (the original's `Name`): how peers key their routing tables.
    public var name: String
    /// What the message asks for or answers, such as `connectreq` or `getresp`.
    public var operation: String
    /// The operation's payload, or nil for none (JSON `null`, like Go's nil `[]byte`).
    ///
    /// Nil and empty differ on the JSON wire (`null` versus `""`), as they do in Go; decoded
    /// payloads are slices of the received bytes where the wire allows it (the native one does).
    public var data: ByteBuffer?
    /// An id chosen by the sender, unique per connection; 0 when unused (and always 0 on the JSON wire).
    public var messageID: UInt64
    /// The ``messageID`` of the request this message answers; 0 when it answers none.
    public var correlationID: UInt64
    /// How many more times a node may forward this message; 0 means it must not be forwarded.
    public var hopLimit: UInt8

    /// Creates an envelope; the native-only fields default to 0 (their value on the JSON wire).
    public init(
        name: String,
        operation: String,
        data: ByteBuffer? = nil,
        messageID: UInt64 = 0,
        correlationID: UInt64 = 0,
        hopLimit: UInt8 = 0
    ) {
        self.name = name
        self.operation = operation
        self.data = data
        self.messageID = messageID
        self.correlationID = correlationID
        self.hopLimit = hopLimit
    }

    /// A one-line summary that gives the payload's size rather than its bytes (payloads can be
    /// large and binary), such as `Envelope(name: "luda", operation: "getreq", data: 12 bytes)`.
    ///
    /// The name and the operation, which the sender chose, are escaped for the terminal
    /// (``Swift/String/escapedForTerminal``, and `"` as `\"`): Swift's own quoting
    /// (`String(reflecting:)`) leaves C1 controls such as CSI, bidirectional overrides and line
    /// separators as they are.
    public var description: String {
        var text = "Envelope(name: \(Self.quoted(name)), operation: \(Self.quoted(operation)), data: "
        if let data {
            text += "\(data.readableBytes) byte\(data.readableBytes == 1 ? "" : "s")"
        } else {
            text += "null"
        }
        if messageID != 0 || correlationID != 0 || hopLimit != 0 {
            text += ", messageID: \(messageID), correlationID: \(correlationID), hopLimit: \(hopLimit)"
        }
        return text + ")"
    }

    /// `text` between double quotes, escaped for the terminal; a quote inside it is `\"` (a
    /// backslash in it is already `\\`, so that is unambiguous).
    private static func quoted(_ text: String) -> String {
        var quoted = "\""
        for scalar in text.escapedForTerminal.unicodeScalars {
            if scalar == "\"" { quoted += "\\" }
            quoted.unicodeScalars.append(scalar)
        }
        return quoted + "\""
    }
}

/// The encodings of ``Envelope`` on a connection.
public enum WireFormat: String, Sendable, CaseIterable {
    /// Length-prefixed binary envelopes (``NativeWire``): carry every field, zero-copy payloads.
    case native
    /// Concatenated JSON objects as Go's `encoding/json` writes them (``JSONWire``): talks to the
    /// Go original, but carries only name, operation and data.
    case json

    /// The pipeline stages that turn this wire's bytes into ``Envelope``s and back, for messages
    /// of at most `maximumMessageSize` bytes (a native frame's payload, or a JSON object).
    public func handlers(maximumMessageSize: Int = 1 << 20) -> [any ChannelHandler] {
        dialect.stages(maximumMessageSize: maximumMessageSize).handlers
    }
}
