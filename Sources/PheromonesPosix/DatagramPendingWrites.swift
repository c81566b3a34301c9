import DequeModule
import Glibc
import PheromonesCore

/// What became of one queued datagram: the channel completes its promise once its own state is
/// consistent again (a promise callback may write, flush or close re-entrantly).
enum DatagramWriteCompletion {
    /// The kernel took it.
    case sent(Promise<Void>)
    /// The kernel refused it; the channel goes on.
    case failed(Promise<Void>, any Error)
    /// The kernel refused a datagram written without a promise: the error goes to `errorCaught`,
    /// so that it is not lost silently.
    case dropped(any Error)
}

/// A datagram channel's queue of outbound datagrams: written ones at the back, flushed ones at
/// the front, each whole (a datagram is never split across calls, unlike a stream's bytes).
///
/// ``sendFlushed(fd:posix:vectors:iovecs:maxIovecs:segmentation:completions:)`` hands up to a
/// batch of flushed datagrams to one `sendmmsg`. The kernel takes a prefix of them: those are
/// done, the rest are offered again by the next call. When it refuses the first one (too large,
/// unreachable), that datagram alone fails and is dropped, and the queue goes on. Promises
/// complete in queue order either way.
///
/// The storage (a `Deque`) keeps its capacity as it empties, so steady-state writes allocate nothing.
struct DatagramPendingWrites {
    private struct Entry {
        var buffer: ByteBuffer
        /// Where it goes; nil on a connected socket (the peer).
        var target: SocketAddress?
        var promise: Promise<Void>?
    }

    private var entries: Deque<Entry> = []
    /// `entries[0..<flushedCount]` are flushed.
    private(set) var flushedCount = 0
    /// Payload bytes of all queued datagrams: what the water marks and the bound compare.
    private(set) var queuedBytes = 0

    /// The most datagrams one `UDP_SEGMENT` send carries (the kernel's limit is 64 or 128).
    static let maximumSegments = 64
    /// The most payload bytes one `UDP_SEGMENT` send carries (an IPv4 datagram's largest payload).
    static let maximumSegmentedBytes = 65_507

    var isEmpty: Bool { entries.isEmpty }
    var hasFlushed: Bool { flushedCount > 0 }

    /// What one `sendmmsg` achieved.
    enum Outcome {
        /// Every flushed datagram was dealt with.
        case wroteAll
        /// The kernel took nothing (`EAGAIN`): wait for writability.
        case wouldBlock
        /// Flushed datagrams remain (the kernel took part of the batch, or one was refused): call again.
        case more
    }

    mutating func append(_ buffer: ByteBuffer, target: SocketAddress?, promise: Promise<Void>?) {
        queuedBytes += buffer.readableBytes
        entries.append(Entry(buffer: buffer, target: target, promise: promise))
    }

    mutating func markFlushed() { flushedCount = entries.count }

    /// Sends flushed datagrams with one `sendmmsg`. With `segmentation` on, runs of datagrams to one
    /// address and of one size share an entry (GSO); if the kernel refuses such an entry,
    /// `segmentation` is turned off and the datagrams are offered again one by one.
    mutating func sendFlushed(
        fd: CInt, posix: Posix, vectors: DatagramVectors, iovecs: UnsafeMutablePointer<iovec>, maxIovecs: Int,
        segmentation: inout Bool, completions: inout [DatagramWriteCompletion]
    ) -> Outcome {
        let messageCount = prepare(vectors: vectors, iovecs: iovecs, maxIovecs: maxIovecs, segmentation: segmentation)
        let result: IOResult<Int>
        do throws(IOError) {
            result = try posix.sendMessages(fd, vectors.messages, count: messageCount)
        } catch {
            let run = vectors.runs[0]
            if run > 1, segmentation {
                // The kernel (or the device) will not segment: send them one by one from now on.
                segmentation = false
                return .more
            }
            for _ in 0..<run { removeFirst(failing: DatagramError.sendFailed(error, target: entries[0].target), completions: &completions) }
            return flushedCount > 0 ? .more : .wroteAll
        }
        guard case .processed(let sent) = result else { return .wouldBlock }
        var datagrams = 0
        for index in 0..<min(sent, messageCount) { datagrams += vectors.runs[index] }
        for _ in 0..<datagrams { removeFirst(failing: nil, completions: &completions) }
        return flushedCount > 0 ? .more : .wroteAll
    }

    /// Fills `vectors` with the first flushed datagrams (runs of them, with `segmentation`) and
    /// returns how many entries it filled (at least one: call only with flushed datagrams).
    private func prepare(vectors: DatagramVectors, iovecs: UnsafeMutablePointer<iovec>, maxIovecs: Int, segmentation: Bool) -> Int {
        var messageCount = 0
        var iovecCount = 0
        var index = 0
        while index < flushedCount, messageCount < vectors.capacity, iovecCount < maxIovecs {
            let first = entries[index]
            let size = first.buffer.readableBytes
            var run = 1
            if segmentation, size > 0 {
                var total = size
                // A run: one address, one size; the last datagram may be shorter, and ends it.
                while index + run < flushedCount, run < Self.maximumSegments, iovecCount + run < maxIovecs {
                    let next = entries[index + run]
                    let nextSize = next.buffer.readableBytes
                    guard next.target == first.target, nextSize > 0, nextSize <= size,
                          total + nextSize <= Self.maximumSegmentedBytes else { break }
                    total += nextSize
                    run += 1
                    if nextSize < size { break }
                }
            }
            for offset in 0..<run {
                // The storage outlives the call: `entries` keeps every buffer alive until it is dropped.
                entries[index + offset].buffer.withUnsafeReadableBytes { bytes in
                    iovecs[iovecCount + offset] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                }
            }
            var header = msghdr()
            if let target = first.target {
                let address = vectors.addresses + messageCount
                header.msg_namelen = target.withSockAddr { sockaddr, length in
                    UnsafeMutableRawPointer(address).copyMemory(from: sockaddr, byteCount: Int(length))
                    return length
                }
                header.msg_name = UnsafeMutableRawPointer(address)
            }
            header.msg_iov = iovecs + iovecCount
            header.msg_iovlen = run
            if run > 1 {
                let (control, length) = vectors.segmentControl(messageCount, segmentSize: size)
                header.msg_control = control
                header.msg_controllen = length
            }
            vectors.messages[messageCount].header = header
            vectors.messages[messageCount].length = 0
            vectors.runs[messageCount] = run
            messageCount += 1
            iovecCount += run
            index += run
        }
        return messageCount
    }

    /// Drops the first (flushed) datagram: sent when `failure` is nil, failed with it otherwise.
    private mutating func removeFirst(failing failure: (any Error)?, completions: inout [DatagramWriteCompletion]) {
        let entry = entries.removeFirst()
        flushedCount -= 1
        queuedBytes -= entry.buffer.readableBytes
        guard let promise = entry.promise else {
            if let failure { completions.append(.dropped(failure)) }
            return
        }
        if let failure { completions.append(.failed(promise, failure)) } else { completions.append(.sent(promise)) }
    }

    /// Drops every queued datagram and returns their promises, for failing on close.
    mutating func removeAll() -> [Promise<Void>] {
        let promises = entries.compactMap(\.promise)
        entries.removeAll()
        flushedCount = 0
        queuedBytes = 0
        return promises
    }
}
