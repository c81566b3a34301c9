import Glibc

/// The bytes every connection sends: one message repeated, so that any stretch of a connection's
/// output stream is one contiguous slice of this buffer, and byte `n` of the stream (and of the
/// echoed reply) is `bytes[n % wireLength]`.
///
/// A message is `size` payload bytes (`'a' + (7i + 3) % 26`, as the C load generator writes them),
/// after a 4-byte big-endian length for the framed protocol.
final class MessagePattern {
    let wireLength: Int
    let headerLength: Int
    let bytes: UnsafeMutableRawBufferPointer

    /// A pattern of at least 256 KiB and at least `minimumMessages` whole messages.
    init(proto: WireProtocol, size: Int, minimumMessages: Int) {
        headerLength = proto.headerLength
        wireLength = size + headerLength
        let repetitions = max((256 * 1024) / wireLength + 1, minimumMessages + 1)
        bytes = .allocate(byteCount: repetitions * wireLength, alignment: 16)
        for start in stride(from: 0, to: bytes.count, by: wireLength) {
            writeMessage(at: start, size: size)
        }
    }

    deinit { bytes.deallocate() }

    private func writeMessage(at start: Int, size: Int) {
        if headerLength == 4 {
            bytes.storeBytes(of: UInt32(size).bigEndian, toByteOffset: start, as: UInt32.self)
        }
        for index in 0..<size {
            bytes[start + headerLength + index] = UInt8(ascii: "a") + UInt8((index * 7 + 3) % 26)
        }
    }

    /// Whether `received` equals the pattern from `offset` (which must leave room for it).
    func matches(_ received: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        memcmp(received.baseAddress!, bytes.baseAddress! + offset, received.count) == 0
    }
}
