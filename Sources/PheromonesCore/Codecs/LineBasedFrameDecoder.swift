/// Errors thrown by ``LineBasedFrameDecoder``.
public enum LineBasedFrameDecoderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A line grew longer than the decoder's maximum before its end arrived (or arrived too long).
    case lineTooLong(maximum: Int)

    /// A sentence describing the failure, for logs.
    public var description: String {
        switch self {
        case .lineTooLong(let maximum): return "a line is longer than the maximum of \(maximum) bytes"
        }
    }
}

/// Splits a stream of bytes into lines ending in `\n` or `\r\n`, and fires each line without its
/// ending, as a zero-copy slice of the input.
///
/// The maximum line length is mandatory: a peer that never sends a line ending would otherwise make
/// the pipeline buffer without bound. The decoder throws ``LineBasedFrameDecoderError/lineTooLong(maximum:)``
/// (and the ``ByteToMessageHandler`` closes the connection) as soon as more bytes than a line of the
/// maximum length and its `\r` have arrived without a `\n`. Bytes after the last line ending at the
/// end of input are reported by the handler as ``ByteToMessageDecoderError/leftoverDataAtEOF(bytes:)``.
///
/// ```swift
/// try channel.pipeline.addHandlers([
///     ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 4_096)),
///     ChatHandler(),
/// ])
/// ```
public struct LineBasedFrameDecoder: ByteToMessageDecoder {
    /// Lines are fired without their ending.
    public typealias InboundOut = ByteBuffer

    /// The longest line accepted, in bytes, not counting its ending.
    public let maximumLineLength: Int
    /// How many bytes at the front of the buffer were already searched for `\n` in vain: a long line
    /// arriving in small reads is searched once, not once per read.
    private var searched = 0

    private static let lineFeed = UInt8(ascii: "\n")
    private static let carriageReturn = UInt8(ascii: "\r")

    /// Creates a decoder that accepts lines of at most `maximumLineLength` bytes.
    ///
    /// - Precondition: `maximumLineLength` is not negative.
    public init(maximumLineLength: Int) {
        precondition(maximumLineLength >= 0, "LineBasedFrameDecoder: maximumLineLength must not be negative")
        self.maximumLineLength = maximumLineLength
    }

    /// Returns the next line without its ending, or nil until its `\n` has arrived.
    ///
    /// - Throws: ``LineBasedFrameDecoderError/lineTooLong(maximum:)`` once the line cannot fit.
    public mutating func decode(buffer: inout ByteBuffer) throws(LineBasedFrameDecoderError) -> ByteBuffer? {
        guard let lineFeed = findLineFeed(in: buffer) else {
            // A line of the maximum length still fits with a `\r` whose `\n` has not arrived yet.
            if buffer.readableBytes > maximumLineLength + 1 { throw .lineTooLong(maximum: maximumLineLength) }
            return nil
        }
        searched = 0
        var length = lineFeed
        if length > 0, buffer.getInteger(at: buffer.readerIndex + length - 1, as: UInt8.self) == Self.carriageReturn {
            length -= 1
        }
        guard length <= maximumLineLength else { throw .lineTooLong(maximum: maximumLineLength) }
        let line = buffer.getSlice(at: buffer.readerIndex, length: length)
        buffer.moveReaderIndex(forwardBy: lineFeed + 1)
        return line
    }

    /// The offset of the first `\n` among the readable bytes, searching only past ``searched``.
    private mutating func findLineFeed(in buffer: ByteBuffer) -> Int? {
        let start = min(searched, buffer.readableBytes)
        let found = buffer.withUnsafeReadableBytes { bytes in
            bytes[start...].firstIndex(of: Self.lineFeed)
        }
        if found == nil { searched = buffer.readableBytes }
        return found
    }
}
