import DequeModule
import Pheromones

/// gossipsub's message cache (mcache): the messages of the last few heartbeats, from which the
/// gossip router serves IWANT and whose ids its heartbeat announces with IHAVE.
///
/// Messages are kept in arrival order, each tagged with the heartbeat it arrived in. ``shift()``,
/// called on every heartbeat, forgets those older than `historyLength` heartbeats;
/// ``gossipIDs(limit:into:)`` gives the ids of the latest `historyGossip` heartbeats. The cache
/// also holds at most `maximumBytes` (see ``cost(of:)``): past it the oldest messages go first,
/// and a message that alone costs more is not cached.
struct MessageCache {
    /// One cached message and the heartbeat it arrived in.
    private struct Entry {
        var id: UInt64
        var heartbeat: UInt64
    }

    /// What a message costs besides its data, name and operation: a rough count of its entry's
    /// bookkeeping, so that empty messages cannot fill the cache without bound.
    static let entryOverhead = 64

    /// How many heartbeats a message stays (gossipsub's `historyLength`), at least 1.
    let historyLength: Int
    /// How many of the latest heartbeats ``gossipIDs(limit:into:)`` covers, at most
    /// ``historyLength``.
    let historyGossip: Int
    /// The most bytes the cache holds.
    let maximumBytes: Int

    private var messages: [UInt64: Envelope] = [:]
    /// The cached ids, oldest first.
    private var order: Deque<Entry> = []
    /// The current heartbeat (the count of ``shift()`` calls).
    private var heartbeat: UInt64 = 0
    /// The sum of the cached messages' costs.
    private(set) var cachedBytes = 0

    /// A cache that keeps messages for `historyLength` heartbeats, announces those of the last
    /// `historyGossip`, and holds at most `maximumBytes`.
    init(historyLength: Int, historyGossip: Int, maximumBytes: Int) {
        self.historyLength = max(1, historyLength)
        self.historyGossip = min(max(0, historyGossip), self.historyLength)
        self.maximumBytes = max(0, maximumBytes)
    }

    /// How many messages the cache holds.
    var count: Int { messages.count }

    /// What `message` counts for against ``maximumBytes``: its data, name and operation bytes
    /// plus ``entryOverhead``.
    static func cost(of message: Envelope) -> Int {
        (message.data?.readableBytes ?? 0) &+ message.name.utf8.count &+ message.operation.utf8.count &+ entryOverhead
    }

    /// Whether the message `id` is cached.
    func contains(_ id: UInt64) -> Bool { messages[id] != nil }

    /// The cached message `id`, or nil when it was never cached or is gone.
    func message(for id: UInt64) -> Envelope? { messages[id] }

    /// Caches `message` under its message id, in the current heartbeat; evicts the oldest messages
    /// as needed to stay within ``maximumBytes``. A message already cached, one without an id, or
    /// one that alone costs more than ``maximumBytes`` is not cached.
    mutating func put(_ message: Envelope) {
        let id = message.messageID
        guard id != 0, messages[id] == nil else { return }
        let cost = Self.cost(of: message)
        guard cost <= maximumBytes else { return }
        while cachedBytes > maximumBytes &- cost, let oldest = order.first {
            evict(oldest.id)
            order.removeFirst()
        }
        messages[id] = message
        order.append(Entry(id: id, heartbeat: heartbeat))
        cachedBytes &+= cost
    }

    /// Starts a new heartbeat: forgets the messages of the heartbeat `historyLength` ago.
    mutating func shift() {
        heartbeat &+= 1
        while let oldest = order.first, heartbeat &- oldest.heartbeat >= UInt64(historyLength) {
            evict(oldest.id)
            order.removeFirst()
        }
    }

    /// Appends to `ids` the ids of the latest `historyGossip` heartbeats, newest first, at most
    /// `limit` of them.
    func gossipIDs(limit: Int, into ids: inout [UInt64]) {
        for entry in order.reversed() {
            guard ids.count < limit, heartbeat &- entry.heartbeat < UInt64(historyGossip) else { return }
            ids.append(entry.id)
        }
    }

    /// The ids of the latest `historyGossip` heartbeats, newest first.
    func gossipIDs() -> [UInt64] {
        var ids: [UInt64] = []
        gossipIDs(limit: .max, into: &ids)
        return ids
    }

    private mutating func evict(_ id: UInt64) {
        if let message = messages.removeValue(forKey: id) {
            cachedBytes &-= Self.cost(of: message)
        }
    }
}
