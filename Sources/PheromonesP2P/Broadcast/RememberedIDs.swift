import DequeModule

/// The message ids the gossip router remembers about one peer: those the peer has (it sent the
/// message, or announced it with IHAVE) or does not want (IDONTWANT), so that the router neither
/// sends it those messages nor announces them to it.
///
/// Bounded twice: at most `capacity` ids (the oldest are forgotten first), and each for as many
/// heartbeats as the message cache keeps messages (``expire(before:)``), after which the router
/// would not send the message anyway.
struct RememberedIDs {
    private struct Entry {
        var id: UInt64
        var heartbeat: UInt64
    }

    /// The most ids remembered.
    let capacity: Int
    private var members: Set<UInt64> = []
    /// The remembered ids, oldest first, with the heartbeat each was remembered in.
    private var order: Deque<Entry> = []

    /// A memory of at most `capacity` ids (none when `capacity` is 0 or less).
    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// How many ids are remembered.
    var count: Int { members.count }

    /// Whether `id` is remembered.
    func contains(_ id: UInt64) -> Bool { members.contains(id) }

    /// Remembers `id` as of `heartbeat`, forgetting the oldest id when full. An id already
    /// remembered keeps its place.
    mutating func insert(_ id: UInt64, heartbeat: UInt64) {
        guard capacity > 0, !members.contains(id) else { return }
        if order.count >= capacity, let oldest = order.popFirst() {
            members.remove(oldest.id)
        }
        members.insert(id)
        order.append(Entry(id: id, heartbeat: heartbeat))
    }

    /// Forgets the ids remembered before `heartbeat`.
    mutating func expire(before heartbeat: UInt64) {
        while let oldest = order.first, oldest.heartbeat < heartbeat {
            members.remove(oldest.id)
            order.removeFirst()
        }
    }
}
