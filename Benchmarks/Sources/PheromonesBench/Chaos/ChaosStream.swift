import Glibc

/// A megabyte of seeded random bytes that every chaos connection draws its stream from.
///
/// Random bytes, rather than one message repeated, so that a reply shifted, duplicated, dropped or
/// delivered to the wrong connection does not match by accident. The first `tail` bytes are copied
/// after the end, so any `tail`-byte stretch starting in `0..<period` is contiguous.
final class ReferenceBytes {
    /// A prime, so that message sizes (powers of two) never line up with the wrap.
    static let period = 1_048_573
    /// The longest contiguous stretch handed out.
    static let tail = 65_536

    let bytes: UnsafeMutableRawBufferPointer

    init(seed: UInt64) {
        bytes = .allocate(byteCount: Self.period + Self.tail, alignment: 16)
        var random = SeededGenerator(seed: seed, stream: -1)
        for index in stride(from: 0, to: Self.period, by: 8) {
            withUnsafeBytes(of: random.next()) { word in
                for (offset, byte) in word.enumerated() where index + offset < Self.period { bytes[index + offset] = byte }
            }
        }
        for index in 0..<Self.tail { bytes[Self.period + index] = bytes[index] }
    }

    deinit { bytes.deallocate() }

    /// `length` (at most `tail`) bytes from position `position` of the periodic stream.
    func slice(at position: Int, length: Int) -> UnsafeRawBufferPointer {
        let start = position % Self.period
        return UnsafeRawBufferPointer(rebasing: bytes[start..<start + min(length, Self.tail)])
    }
}

/// The byte stream one chaos connection sends, which is also exactly what it must get back: the
/// echo server returns every byte, and the framed server answers each frame with a frame of the
/// same length and payload.
///
/// echo: the reference bytes from `start`. framed: frames of a 4-byte big-endian length
/// (`messageSize`) and `messageSize` payload bytes, the payloads together being the reference bytes
/// from `start`.
struct ChaosStream {
    let reference: ReferenceBytes
    let headerLength: Int
    var messageSize = 1
    var start = 0

    init(reference: ReferenceBytes, proto: WireProtocol) {
        self.reference = reference
        headerLength = proto.headerLength
    }

    /// Bytes of one message on the wire.
    var wireLength: Int { messageSize + headerLength }

    /// Calls `body` with the stream's bytes from `position`, in contiguous pieces, until `count`
    /// bytes were handed out or `body` returns false; returns false in that case.
    func forEachPiece(from position: Int, count: Int, _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        var position = position, left = count
        while left > 0 {
            let ok: Bool
            let length: Int
            if headerLength == 0 {
                let piece = reference.slice(at: start + position, length: left)
                length = piece.count
                ok = body(piece)
            } else {
                let frame = position / wireLength, offset = position % wireLength
                if offset < headerLength {
                    length = min(headerLength - offset, left)
                    ok = withUnsafeBytes(of: UInt32(truncatingIfNeeded: messageSize).bigEndian) { header in
                        body(UnsafeRawBufferPointer(rebasing: header[offset..<offset + length]))
                    }
                } else {
                    let payload = start + frame * messageSize + offset - headerLength
                    let piece = reference.slice(at: payload, length: min(wireLength - offset, left))
                    length = piece.count
                    ok = body(piece)
                }
            }
            guard ok else { return false }
            position += length
            left -= length
        }
        return true
    }

    /// Copies the stream's bytes from `position` into `destination` (filling it).
    func copy(from position: Int, into destination: UnsafeMutableRawBufferPointer) {
        var written = 0
        _ = forEachPiece(from: position, count: destination.count) { piece in
            UnsafeMutableRawBufferPointer(rebasing: destination[written..<written + piece.count]).copyMemory(from: piece)
            written += piece.count
            return true
        }
    }

    /// Whether `received` equals the stream's bytes from `position`.
    func matches(_ received: UnsafeRawBufferPointer, at position: Int) -> Bool {
        guard let base = received.baseAddress else { return true }
        var checked = 0
        return forEachPiece(from: position, count: received.count) { piece in
            guard let expected = piece.baseAddress else { return true }
            defer { checked += piece.count }
            return memcmp(base + checked, expected, piece.count) == 0
        }
    }
}
