import Pheromones

/// The gossip router's pull deadlines: a binary min-heap on (deadline, token), so that the
/// earliest deadline is found in O(1) and the due ones are taken in O(log n) each, however many
/// pulls a peer's IHAVEs open.
///
/// Entries are never removed from the middle: a pull that ends or is rescheduled leaves its old
/// entry behind, and its owner tells a current entry from a stale one by the entry's `token`
/// (unique per scheduling). Stale entries are dropped when they reach the top, and the owner
/// rebuilds the heap from its live pulls when stale entries outnumber them (``needsCompaction(liveCount:)``),
/// so the heap stays within a constant factor of the pulls it serves.
struct PullTimers {
    /// One scheduled deadline of the pull for message `id`.
    struct Entry {
        /// When the pull is due.
        var deadline: Deadline
        /// Unique per scheduling: also orders entries with equal deadlines (earlier first).
        var token: UInt64
        /// The message the pull is for.
        var id: UInt64

        /// Whether this entry comes out before `other`.
        func precedes(_ other: Entry) -> Bool {
            (deadline, token) < (other.deadline, other.token)
        }
    }

    private var heap: [Entry] = []

    /// How many entries the heap holds, stale ones included.
    var count: Int { heap.count }

    /// The earliest entry, or nil when there is none.
    var first: Entry? { heap.first }

    /// Whether the heap holds so many stale entries next to `liveCount` live ones that it
    /// should be rebuilt.
    func needsCompaction(liveCount: Int) -> Bool {
        heap.count > 2 &* liveCount &+ 64
    }

    /// Schedules `entry`.
    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest entry.
    @discardableResult
    mutating func popFirst() -> Entry? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        guard !heap.isEmpty else { return top }
        heap[0] = last
        siftDown(from: 0)
        return top
    }

    /// Replaces the entries with `entries` (the live ones), in O(n).
    mutating func rebuild(from entries: some Sequence<Entry>) {
        heap.removeAll(keepingCapacity: true)
        heap.append(contentsOf: entries)
        var index = heap.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count, heap[right].precedes(heap[smallest]) { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
