import Pheromones
import PheromonesP2P

/// The bytes a p2p-slow-peer client sends, encoded once with the library's own encoders (pure
/// functions on a buffer: the clients' sockets, loop and timing owe nothing to the library).
enum PeerMessages {
    /// Where a native frame's message id sits: after the 4-byte length, the version, the flags and
    /// the hop limit (see `NativeEnvelopeEncoder`).
    static let nativeMessageIDOffset = 4 + 3
    /// The operations the example protocol of `pheromones node` answers, and its answer.
    static let getRequest = "getreq"
    static let getResponse = "getresp"
    /// The router's control operations on the native wire (`ControlMessage` in PheromonesP2P,
    /// which the library keeps to itself): a hello opens a persistent connection on each side, and
    /// "no reply follows" answers a message with nothing.
    static let helloOperation = "\u{0}hello"
    static let noReplyOperation = "\u{0}noreply"

    /// A `getreq` from `name` carrying `payload` data bytes (nil data when 0), as sent on `wire`;
    /// on the native wire a whole frame with message id `messageID`.
    static func getRequest(from name: String, payload: Int, messageID: UInt64, wire: PeerWire) -> [UInt8] {
        let data = payload > 0 ? ByteBuffer(repeating: UInt8(ascii: "p"), count: payload) : nil
        return encode(Envelope(name: name, operation: getRequest, data: data, messageID: messageID), wire: wire)
    }

    /// The hello a persistent native connection opens with: dial generation 0 and no listening
    /// address, so the node keeps the connection anonymous (it adds no route for it).
    static func hello(from name: String) -> [UInt8] {
        var generation = ByteBuffer()
        generation.writeInteger(UInt64(0))
        return encode(Envelope(name: name, operation: helloOperation, data: generation), wire: .native)
    }

    /// The native "no reply follows" for the node's message `messageID`: on a persistent native
    /// connection every message awaits an answer, the node's `getresp` included, and a client that
    /// never gives one leaves the node counting up to its limit of unanswered messages.
    static func noReply(from name: String, answering messageID: UInt64) -> [UInt8] {
        encode(Envelope(name: name, operation: noReplyOperation, correlationID: messageID), wire: .native)
    }

    /// Writes `messageID` into the native frame at `frame` (big-endian, as the encoder does).
    static func stampMessageID(_ messageID: UInt64, intoFrameAt frame: UnsafeMutableRawPointer) {
        withUnsafeBytes(of: messageID.bigEndian) { id in
            (frame + nativeMessageIDOffset).copyMemory(from: id.baseAddress!, byteCount: id.count)
        }
    }

    private static func encode(_ envelope: Envelope, wire: PeerWire) -> [UInt8] {
        var buffer = ByteBuffer()
        switch wire {
        case .native:
            var encoder = NativeEnvelopeFrameEncoder(maximumFrameLength: Int(UInt32.max))
            // Only a name or an operation over 65,535 bytes fails, and these are short.
            try? encoder.encode(data: envelope, out: &buffer)
        case .json:
            JSONEnvelopeEncoder().encode(envelope, into: &buffer)
        }
        return Array(buffer.readableBytesView)
    }
}
