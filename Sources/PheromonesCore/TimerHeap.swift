/// A timer waiting in a ``TimerHeap``: its deadline, a sequence number that keeps equal deadlines in
/// submission order, and its position in the heap so that cancellation is O(log n).
package final class TimerEntry {
    package let deadline: Deadline
    package let sequence: UInt64
    package var task: (() -> Void)?
    package var onCancel: (() -> Void)?
    /// The entry's index in the heap's array, or -1 once it has left the heap.
    package var heapIndex: Int = -1

    package init(deadline: Deadline, sequence: UInt64, task: @escaping () -> Void, onCancel: @escaping () -> Void) {
        self.deadline = deadline
        self.sequence = sequence
        self.task = task
        self.onCancel = onCancel
    }

    @inline(__always)
    func isEarlier(than other: TimerEntry) -> Bool {
        deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence
    }
}

/// A binary min-heap of timers ordered by deadline, with O(log n) removal of any entry.
///
/// swift-collections' `Heap` cannot remove an arbitrary element, and lazy deletion would keep
/// cancelled timers (and what they capture) alive until their deadline, so the loops use this one.
/// Loop-confined: not thread-safe.
package struct TimerHeap {
    private var entries: [TimerEntry] = []
    private var nextSequence: UInt64 = 0

    package init() {}

    /// The number of timers waiting.
    package var count: Int { entries.count }
    /// The earliest deadline, if any timer waits.
    package var earliestDeadline: Deadline? { earliest?.deadline }

    /// The earliest timer. Through Array's own subscript, not `Collection.first`: unspecialized (in
    /// a debug build), `first` reads through a generic accessor that allocates, and the loop asks
    /// for this on every turn while a timer is pending.
    private var earliest: TimerEntry? { entries.isEmpty ? nil : entries[0] }

    /// Adds a timer and returns its entry (the handle for ``remove(_:)``).
    package mutating func insert(deadline: Deadline, task: @escaping () -> Void, onCancel: @escaping () -> Void) -> TimerEntry {
        let entry = TimerEntry(deadline: deadline, sequence: nextSequence, task: task, onCancel: onCancel)
        nextSequence &+= 1
        entry.heapIndex = entries.count
        entries.append(entry)
        siftUp(entries.count - 1)
        return entry
    }

    /// Removes and returns the earliest timer if its deadline is at or before `now`.
    package mutating func popExpired(now: Deadline) -> TimerEntry? {
        guard let first = earliest, first.deadline <= now else { return nil }
        removeEntry(at: 0)
        return first
    }

    /// Removes and returns every timer (used at shutdown).
    package mutating func removeAll() -> [TimerEntry] {
        let all = entries
        for entry in all { entry.heapIndex = -1 }
        entries.removeAll()
        return all
    }

    /// Removes `entry` if it is still waiting. Returns whether it was.
    @discardableResult
    package mutating func remove(_ entry: TimerEntry) -> Bool {
        let index = entry.heapIndex
        guard index >= 0, index < entries.count, entries[index] === entry else { return false }
        removeEntry(at: index)
        return true
    }

    private mutating func removeEntry(at index: Int) {
        let removed = entries[index]
        let last = entries.removeLast()
        removed.heapIndex = -1
        guard index < entries.count else { return }
        entries[index] = last
        last.heapIndex = index
        siftDown(index)
        siftUp(last.heapIndex)
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].isEarlier(than: entries[parent]) else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < entries.count else { return }
            let right = left + 1
            var smallest = left
            if right < entries.count, entries[right].isEarlier(than: entries[left]) { smallest = right }
            guard entries[smallest].isEarlier(than: entries[parent]) else { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        entries.swapAt(a, b)
        entries[a].heapIndex = a
        entries[b].heapIndex = b
    }
}
