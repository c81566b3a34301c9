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
///
/// A queue holds storage only while it holds buffers: once empty it lends its storage to the loop's
/// ``Spare`` (``lendStorage(to:)``), and the next channel of the loop to write borrows it. So an idle
/// connection keeps no queue storage, and a connection's first write allocates none.
struct PendingWrites {
    fileprivate struct Entry {
        var buffer: ByteBuffer
        var promise: Promise<Void>?
    }

    /// The storage of an emptied queue, waiting on a loop for the next channel that writes.
    struct Spare {
        fileprivate var entries: Deque<Entry>?
        /// Whether a queue's storage waits here.
        var holdsStorage: Bool { entries != nil }
    }

    private var entries: Deque<Entry> = []
    /// `entries[0..<flushedCount]` are flushed.
    private(set) var flushedCount = 0
    /// Readable bytes in all queued buffers (flushed or not): what the water marks compare.
    private(set) var queuedBytes = 0
    /// What storage `entries` may have.
    private var storage = Storage.none

    private enum Storage: UInt8 {
        /// None since it was last lent.
        case none
        /// Borrowed, or grown by an append: lent again once the queue is empty.
        case lendable
        /// Grown past ``lendableCount`` entries: freed once the queue is empty, so that a loop
        /// never keeps a large queue's storage for its other channels.
        case large
    }

    /// The most entries a queue may have held for its storage to be lent.
    private static let lendableCount = 64

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

    mutating func append(_ buffer: ByteBuffer, promise: Promise<Void>?, borrowingFrom spare: inout Spare) {
        if storage == .none {
            storage = .lendable
            if let borrowed = spare.entries.take() { entries = borrowed }
        }
        queuedBytes += buffer.readableBytes
        entries.append(Entry(buffer: buffer, promise: promise))
        if entries.count > Self.lendableCount { storage = .large }
    }

    /// Once the queue is empty, hands its storage to `spare` (or frees it, when `spare` has some).
    mutating func lendStorage(to spare: inout Spare) {
        guard storage != .none, entries.isEmpty else { return }
        let emptied = entries
        entries = []
        if storage == .lendable, spare.entries == nil { spare.entries = emptied }
        storage = .none
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
