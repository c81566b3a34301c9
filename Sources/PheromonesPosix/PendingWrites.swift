import DequeModule
import Glibc
import PheromonesCore

/// A channel's queue of outbound buffers: written ones at the back, flushed ones at the front.
///
/// `flush` marks everything queued as flushed; ``writeFlushed(fd:posix:iovecs:maxIovecs:completed:)`` hands
/// up to `maxIovecs` flushed buffers to one `writev`, drops the buffers the kernel took whole, and
/// moves the partly written one's reader index. Promises of finished writes are appended to
/// `completed` (in order) for the channel to succeed once its own state is consistent again,
/// because a promise callback may write, flush or close re-entrantly.
struct PendingWrites {
    private struct Entry {
        var buffer: ByteBuffer
        var promise: Promise<Void>?
    }

    private var entries: Deque<Entry> = []
    /// `entries[0..<flushedCount]` are flushed.
    private(set) var flushedCount = 0
    /// Readable bytes in all queued buffers (flushed or not): what the water marks compare.
    private(set) var queuedBytes = 0

    var isEmpty: Bool { entries.isEmpty }
    var hasFlushed: Bool { flushedCount > 0 }

    /// What one `writev` achieved.
    enum Outcome {
        /// Every flushed buffer went out.
        case wroteAll
        /// The kernel took less than offered: wait for writability.
        case partial
        /// The kernel took nothing (`EAGAIN`).
        case wouldBlock
        /// More flushed buffers remain than one call can carry; call again.
        case more
    }

    mutating func append(_ buffer: ByteBuffer, promise: Promise<Void>?) {
        queuedBytes += buffer.readableBytes
        entries.append(Entry(buffer: buffer, promise: promise))
    }

    mutating func markFlushed() { flushedCount = entries.count }

    /// Writes flushed buffers with one system call.
    mutating func writeFlushed(
        fd: CInt, posix: Posix, iovecs: UnsafeMutablePointer<iovec>, maxIovecs: Int, completed: inout [Promise<Void>]
    ) throws(IOError) -> Outcome {
        let count = min(flushedCount, maxIovecs)
        var offered = 0
        for index in 0..<count {
            // The storage outlives the call: `entries` keeps every buffer alive until it is dropped below.
            entries[index].buffer.withUnsafeReadableBytes { bytes in
                iovecs[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                offered += bytes.count
            }
        }
        let result: IOResult<Int>
        if count == 1 {
            result = try posix.write(fd, from: UnsafeRawBufferPointer(start: iovecs[0].iov_base, count: iovecs[0].iov_len))
        } else {
            result = try posix.writev(fd, iovecs, count: CInt(count))
        }
        guard case .processed(let written) = result else { return .wouldBlock }
        consume(written, completed: &completed)
        if written < offered { return .partial }
        return flushedCount > 0 ? .more : .wroteAll
    }

    private mutating func consume(_ written: Int, completed: inout [Promise<Void>]) {
        var remaining = written
        queuedBytes -= written
        while flushedCount > 0 {
            let size = entries[0].buffer.readableBytes
            if size > remaining {
                entries[0].buffer.moveReaderIndex(forwardBy: remaining)
                return
            }
            remaining -= size
            let entry = entries.removeFirst()
            flushedCount -= 1
            if let promise = entry.promise { completed.append(promise) }
        }
    }

    /// Drops every queued buffer and returns their promises, for failing on close.
    mutating func removeAll() -> [Promise<Void>] {
        let promises = entries.compactMap(\.promise)
        entries.removeAll()
        flushedCount = 0
        queuedBytes = 0
        return promises
    }
}
