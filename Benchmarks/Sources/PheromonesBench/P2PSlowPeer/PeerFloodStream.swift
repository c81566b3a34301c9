/// The bytes of a pipelined flood: a prefix (the hello, on a persistent native connection), then
/// `count` copies of one request, on the native wire each stamped with its own message id (1, 2,
/// 3, ...), so that the node sees distinct messages as a real peer sends them.
///
/// The requests come from one buffer of whole copies, sent over and over: each time the flood
/// starts the buffer again, the ids of the copies about to go are written in. The previous round
/// was wholly accepted by then, so no byte in flight changes.
final class PeerFloodStream: FloodBytes {
    private let prefix: UnsafeMutableRawBufferPointer
    private let requestLength: Int
    private let stampsIDs: Bool
    private let batch: UnsafeMutableRawBufferPointer
    private let requestsPerBatch: Int
    /// The requests in the flood, and the bytes of the whole stream.
    let count: Int
    let total: Int
    /// Bytes handed out and accepted so far.
    private(set) var position = 0
    /// The batch round whose ids are written in (-1: none yet).
    private var stampedRound = -1

    /// Buffers of about this size: a send per quarter MiB at least, whatever the request's size.
    private static let batchBytes = 256 << 10

    init(prefix: [UInt8], request: [UInt8], count: Int, stampsIDs: Bool) {
        // Memory of its own, as the batch's: a pointer into an array must not outlive the call.
        self.prefix = .allocate(byteCount: prefix.count, alignment: 16)
        self.prefix.copyBytes(from: prefix)
        self.requestLength = request.count
        self.count = count
        self.stampsIDs = stampsIDs
        total = prefix.count + count * request.count
        requestsPerBatch = max(1, min(count, Self.batchBytes / max(1, request.count)))
        batch = .allocate(byteCount: requestsPerBatch * request.count, alignment: 16)
        for index in 0..<requestsPerBatch {
            (batch.baseAddress! + index * request.count).copyMemory(from: request, byteCount: request.count)
        }
    }

    deinit {
        prefix.deallocate()
        batch.deallocate()
    }

    /// Requests wholly accepted so far (the prefix aside).
    var requestsAccepted: Int { max(0, position - prefix.count) / requestLength }

    /// The next contiguous bytes to send (empty once everything was accepted).
    func nextBytes() -> UnsafeRawBufferPointer {
        guard position < total else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        if position < prefix.count {
            return UnsafeRawBufferPointer(rebasing: prefix[position...])
        }
        let streamed = position - prefix.count
        let round = streamed / batch.count, offset = streamed % batch.count
        if stampsIDs && round != stampedRound { stamp(round: round) }
        let length = min(batch.count - offset, total - position)
        return UnsafeRawBufferPointer(start: batch.baseAddress! + offset, count: length)
    }

    /// Records that the socket accepted `count` of the bytes `nextBytes()` handed out.
    func consumed(_ count: Int) {
        position += count
    }

    /// Writes the ids of round `round`'s requests into the batch.
    private func stamp(round: Int) {
        let first = round * requestsPerBatch
        for index in 0..<requestsPerBatch {
            PeerMessages.stampMessageID(UInt64(first + index + 1), intoFrameAt: batch.baseAddress! + index * requestLength)
        }
        stampedRound = round
    }
}
