/// Splits a stream of bytes into frames of one fixed length, fired as zero-copy slices of the input.
///
/// It never buffers more than one frame's bytes: the ``ByteToMessageHandler`` hands it what has
/// arrived, and every complete frame is taken out at once.
public struct FixedLengthFrameDecoder: ByteToMessageDecoder {
    /// Frames are fired as they arrived.
    public typealias InboundOut = ByteBuffer

    /// The length of every frame, in bytes.
    public let frameLength: Int

    /// Creates a decoder of `frameLength`-byte frames.
    ///
    /// - Precondition: `frameLength` is positive.
    public init(frameLength: Int) {
        precondition(frameLength > 0, "FixedLengthFrameDecoder: frameLength must be positive")
        self.frameLength = frameLength
    }

    /// Returns the next frame, or nil until it has arrived whole.
    public mutating func decode(buffer: inout ByteBuffer) -> ByteBuffer? {
        buffer.readSlice(length: frameLength)
    }
}
