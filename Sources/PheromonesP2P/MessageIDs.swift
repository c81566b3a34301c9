import Pheromones

/// Message ids: random, so that a broadcast keeps one id across the mesh and repeats can be told
/// apart from new messages, and never 0 (which means "none").
///
/// SplitMix64 seeded from the system generator: a per-message system call would cost more than
/// the message, and ids need to be unpredictable only in the sense of not colliding. They are not
/// secret: a peer that sees one id can compute the next. Nothing relies on that; the router never
/// lets a peer's choice of id overwrite what it awaits (see `NativeSession.PendingID`).
///
/// It is also the seeded `RandomNumberGenerator` of the node's random choices (reconnection
/// jitter, the gossip router's peer draws): seeded, so that a test replays the same choices. Its
/// `next()` never returns 0, a bias of one value in 2^64 that no draw notices.
struct MessageIDGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64 = UInt64.random(in: .min ... .max)) {
        state = seed
    }

    /// The next id (never 0), or the next random draw.
    mutating func next() -> UInt64 {
        while true {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            if z != 0 { return z }
        }
    }
}

/// The ids of the broadcasts seen lately: a set with a ring of insertion order, so that it holds
/// at most `capacity` ids and forgets the oldest first.
struct RecentIDs {
    private var members: Set<UInt64> = []
    private var ring: [UInt64] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0, "RecentIDs needs room for at least one id")
        self.capacity = capacity
    }

    func contains(_ id: UInt64) -> Bool { members.contains(id) }

    /// Records `id`; returns false when it was already there (a repeat).
    mutating func insert(_ id: UInt64) -> Bool {
        guard !members.contains(id) else { return false }
        if ring.count < capacity {
            ring.append(id)
        } else {
            members.remove(ring[next])
            ring[next] = id
            next = (next + 1) % capacity
        }
        members.insert(id)
        return true
    }
}
