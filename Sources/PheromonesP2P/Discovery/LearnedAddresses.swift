import DequeModule
import Pheromones

/// The addresses a node learned from its peers' answers and has not dialled yet: a set with an
/// insertion order, holding at most `capacity` of them and forgetting the oldest first.
///
/// An address is kept once, with the peer id it was first announced with; announcing it again
/// changes nothing. Removing an address from the middle leaves a stale slot in the order, skipped
/// when it reaches the front; the order is compacted when stale slots outnumber live ones, so it
/// never holds more than twice the capacity.
struct LearnedAddresses {
    /// The most addresses kept.
    let capacity: Int
    /// The addresses kept, each with the sequence number of its slot in `order`.
    private var entries: [SocketAddress: (entry: PeerExchangeEntry, sequence: UInt64)] = [:]
    /// Insertion order, oldest first; slots whose sequence number no longer matches are stale.
    private var order: Deque<(address: SocketAddress, sequence: UInt64)> = []
    private var nextSequence: UInt64 = 0

    /// An empty set that keeps at most `capacity` addresses (at least none: a negative capacity
    /// keeps nothing).
    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// How many addresses are kept.
    var count: Int { entries.count }
    /// Whether no address is kept.
    var isEmpty: Bool { entries.isEmpty }

    /// Keeps `entry` unless its address is kept already; returns whether it was new. When the set
    /// is full the oldest address is forgotten to make room.
    mutating func insert(_ entry: PeerExchangeEntry) -> Bool {
        guard capacity > 0, entries[entry.address] == nil else { return false }
        while entries.count >= capacity, let oldest = popOldestSlot() { entries[oldest.address] = nil }
        nextSequence &+= 1
        entries[entry.address] = (entry, nextSequence)
        order.append((entry.address, nextSequence))
        return true
    }

    /// Forgets `address` (dialled, connected, or found to be this node's own).
    mutating func remove(_ address: SocketAddress) {
        guard entries.removeValue(forKey: address) != nil else { return }
        if order.count > 2 * max(entries.count, 1) { compact() }
    }

    /// Takes the oldest address out of the set.
    mutating func popOldest() -> PeerExchangeEntry? {
        guard let slot = popOldestSlot(), let found = entries.removeValue(forKey: slot.address) else { return nil }
        return found.entry
    }

    /// Forgets every address `isUnwanted` picks.
    mutating func removeAll(where isUnwanted: (PeerExchangeEntry) -> Bool) {
        let unwanted = entries.filter { isUnwanted($0.value.entry) }.keys
        guard !unwanted.isEmpty else { return }
        for address in unwanted { entries[address] = nil }
        compact()
    }

    /// The kept entries, oldest first.
    var all: [PeerExchangeEntry] {
        order.filter(isLive).compactMap { entries[$0.address]?.entry }
    }

    /// Whether `slot` still stands for a kept address.
    private func isLive(_ slot: (address: SocketAddress, sequence: UInt64)) -> Bool {
        entries[slot.address]?.sequence == slot.sequence
    }

    /// Removes and returns the oldest live slot (the stale ones before it go too).
    private mutating func popOldestSlot() -> (address: SocketAddress, sequence: UInt64)? {
        while let first = order.popFirst() {
            if isLive(first) { return first }
        }
        return nil
    }

    /// Drops the stale slots from the order.
    private mutating func compact() {
        order = Deque(order.filter(isLive))
    }
}
