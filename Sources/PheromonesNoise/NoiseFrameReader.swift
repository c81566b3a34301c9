import Pheromones

/// Cuts the received byte stream into Noise messages, each framed by a 2-byte big-endian length.
///
/// It keeps at most one incomplete frame (2 + 65,535 bytes), whatever arrives: complete frames
/// are sliced out of the received buffer without copying, and only the bytes of a frame that
/// continues in a later read are copied aside.
struct NoiseFrameReader {
    /// The length of a frame's header.
    static let headerLength = 2

    /// The start of a frame that a later read will complete (header included).
    private var partial = ByteBuffer()

    /// How many bytes are held, waiting for the rest of their frame.
    var bufferedBytes: Int { partial.readableBytes }

    /// The body of the next complete frame, taking its bytes from `input`; nil when `input` is
    /// used up first (what it had is kept for the next call).
    ///
    /// - Throws: ``NoiseError/handshakeMessageTooLarge(length:limit:)`` as soon as a header
    ///   announces more than `maximumLength` bytes.
    mutating func next(from input: inout ByteBuffer, maximumLength: Int) throws(NoiseError) -> ByteBuffer? {
        if partial.readableBytes == 0, let length = input.getInteger(at: input.readerIndex, as: UInt16.self) {
            try check(Int(length), maximumLength)
            if input.readableBytes - Self.headerLength >= Int(length) {
                input.moveReaderIndex(forwardBy: Self.headerLength)
                return input.readSlice(length: Int(length))
            }
        }
        moveToPartial(from: &input, upTo: Self.headerLength)
        guard let length = partial.getInteger(at: partial.readerIndex, as: UInt16.self) else { return nil }
        try check(Int(length), maximumLength)
        moveToPartial(from: &input, upTo: Self.headerLength + Int(length))
        guard partial.readableBytes == Self.headerLength + Int(length) else { return nil }
        partial.moveReaderIndex(forwardBy: Self.headerLength)
        let frame = partial.readSlice(length: Int(length))
        partial = ByteBuffer()
        return frame
    }

    /// Forgets what is held.
    mutating func reset() { partial = ByteBuffer() }

    /// Moves bytes from `input` until `partial` holds `total` (or `input` is empty).
    private mutating func moveToPartial(from input: inout ByteBuffer, upTo total: Int) {
        let wanted = min(total - partial.readableBytes, input.readableBytes)
        guard wanted > 0, var piece = input.readSlice(length: wanted) else { return }
        partial.writeBuffer(&piece)
    }

    private func check(_ length: Int, _ maximumLength: Int) throws(NoiseError) {
        guard length <= maximumLength else { throw .handshakeMessageTooLarge(length: length, limit: maximumLength) }
    }
}
