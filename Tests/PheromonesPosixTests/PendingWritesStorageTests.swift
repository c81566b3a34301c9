import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// A write queue holds storage only while it holds buffers: emptied, it lends its storage to the
/// loop's spare, the next queue to write borrows it, and a large queue's storage is freed instead.
final class PendingWritesStorageTests: XCTestCase {
    func testAnEmptiedQueueLendsItsStorageAndTheNextQueueToWriteBorrowsIt() throws {
        var spare = PendingWrites.Spare()
        var first = PendingWrites()
        first.append(ByteBuffer(string: "one"), promise: nil, borrowingFrom: &spare)
        first.lendStorage(to: &spare)
        XCTAssertFalse(spare.holdsStorage, "a queue that still holds a buffer lent its storage")

        try drain(&first)
        first.lendStorage(to: &spare)
        XCTAssertTrue(spare.holdsStorage, "the emptied queue kept its storage")

        var second = PendingWrites()
        second.append(ByteBuffer(string: "two"), promise: nil, borrowingFrom: &spare)
        XCTAssertFalse(spare.holdsStorage, "the next queue to write allocated instead of borrowing")
        XCTAssertEqual(second.queuedBytes, 3)
    }

    func testAQueueThatGrewPastSixtyFourBuffersFreesItsStorageInsteadOfLendingIt() throws {
        var spare = PendingWrites.Spare()
        var queue = PendingWrites()
        for _ in 0..<65 { queue.append(ByteBuffer(string: "x"), promise: nil, borrowingFrom: &spare) }
        try drain(&queue)
        queue.lendStorage(to: &spare)
        XCTAssertFalse(spare.holdsStorage, "a large queue's storage was kept for the loop")

        // Small again: lent as before.
        queue.append(ByteBuffer(string: "y"), promise: nil, borrowingFrom: &spare)
        try drain(&queue)
        queue.lendStorage(to: &spare)
        XCTAssertTrue(spare.holdsStorage)
    }

    /// Writes every queued buffer to a pipe and reads it back.
    private func drain(_ queue: inout PendingWrites) throws {
        var fds: [CInt] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: 8)
        defer { iovecs.deallocate() }
        var completed: [Promise<Void>] = []
        queue.markFlushed()
        while queue.hasFlushed {
            _ = try queue.writeFlushed(fd: fds[1], posix: .live, iovecs: iovecs, maxIovecs: 8, completed: &completed)
        }
        XCTAssertTrue(queue.isEmpty)
    }
}
