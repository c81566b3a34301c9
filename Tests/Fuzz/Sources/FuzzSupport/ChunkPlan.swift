/// How a stream is cut into reads, chosen by one fuzzer byte, so that the streaming paths of a
/// decoder (a header split across reads, a frame completed by a later read, several frames in one
/// read) are all exercised.
///
/// The low three bits choose the largest read: the whole stream, 1, 2, 3, 7, 16, 64 or 512 bytes;
/// the other five seed a small generator that picks each read's size up to that maximum.
public struct ChunkPlan {
    private static let largestChunks = [Int.max, 1, 2, 3, 7, 16, 64, 512]
    private let largest: Int
    private var state: UInt32

    /// The plan that `selector` (a fuzzer byte) chooses.
    public init(selector: UInt8) {
        largest = Self.largestChunks[Int(selector & 7)]
        state = UInt32(selector >> 3) &* 2_654_435_761 | 1
    }

    /// The size of the next read, 1...`remaining` (for `remaining` > 0).
    public mutating func nextChunk(remaining: Int) -> Int {
        guard largest != Int.max else { return remaining }
        // xorshift32: cheap, and a fixed sequence for a given selector.
        state ^= state << 13
        state ^= state >> 17
        state ^= state << 5
        let size = largest <= 3 ? largest : 1 + Int(state % UInt32(largest))
        return min(size, remaining)
    }

    /// The most reads one stream is cut into: each read costs a trip through the pipeline, and a
    /// few hundred already split every header and frame of a stream many ways, so a long stream
    /// gets longer reads rather than making each run slower.
    public static let maximumReads = 256

    /// Cuts `bytes` into reads and calls `body` with each, stopping early when it returns false.
    public mutating func forEachChunk(of bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Bool) {
        let smallest = (bytes.count + Self.maximumReads - 1) / Self.maximumReads
        var offset = 0
        while offset < bytes.count {
            let remaining = bytes.count - offset
            let size = min(remaining, max(smallest, nextChunk(remaining: remaining)))
            guard body(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + size])) else { return }
            offset += size
        }
    }
}
