import Pheromones
import PheromonesP2P

/// Cuts what a client reads from the node into envelopes: native frames (a 4-byte big-endian
/// length, then the envelope) or JSON objects, decoded with the library's decoders.
struct PeerReplyReader {
    private let wire: PeerWire
    private var pending = ByteBuffer()
    private var jsonFramer = JSONObjectFramer(maximumObjectSize: P2PSlowPeerPlan.nodeMaximumMessage)

    init(wire: PeerWire) {
        self.wire = wire
    }

    /// Whether bytes of an unfinished message are waiting.
    var hasPartialMessage: Bool { pending.readableBytes > 0 }

    /// Adds bytes read from the socket.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        _ = pending.discardReadBytes()
        pending.writeBytes(bytes)
    }

    /// The next whole message, nil until one has arrived.
    ///
    /// - Throws: `WireError` when the bytes are not a message.
    mutating func next() throws(WireError) -> Envelope? {
        switch wire {
        case .native: return try nextFrame()
        case .json: return try nextObject()
        }
    }

    private mutating func nextObject() throws(WireError) -> Envelope? {
        // The framer's scan state is relative to the reader index, which `append` keeps.
        guard let object = try jsonFramer.decode(buffer: &pending) else { return nil }
        return try JSONEnvelopeDecoder().decode(object)
    }

    private mutating func nextFrame() throws(WireError) -> Envelope? {
        guard let length = pending.getInteger(at: pending.readerIndex, as: UInt32.self),
              pending.readableBytes >= 4 + Int(length) else { return nil }
        pending.moveReaderIndex(forwardBy: 4)
        // The slice exists: its length was just checked.
        let frame = pending.readSlice(length: Int(length)) ?? ByteBuffer()
        return try NativeEnvelopeDecoder().decode(frame)
    }
}
