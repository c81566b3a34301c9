import Pheromones

/// A loop-confined object owned by a `Sendable` one (the node's core, owned by ``Node``).
///
/// Unlike `LoopBound`, it can be made off the loop: the owner creates the object, hands it over
/// here, and from then on reaches it only on the loop.
// Unchecked: the object is handed over (`sending`) when the box is made, before the box is shared,
// and is reachable afterwards only through `value`, which traps off `loop`.
struct LoopConfined<Value: AnyObject>: @unchecked Sendable {
    let loop: any EventLoop
    private let object: Value

    init(_ object: sending Value, loop: any EventLoop) {
        self.loop = loop
        self.object = object
    }

    /// The object; traps when called off the loop.
    var value: Value {
        loop.preconditionInEventLoop()
        return object
    }
}

/// Message ids: random, so that a broadcast keeps one id across the mesh and repeats can be told
/// apart from new messages, and never 0 (which means "none").
///
/// SplitMix64 seeded from the system generator: a per-message system call would cost more than
/// the message, and ids need to be unpredictable only in the sense of not colliding.
struct MessageIDGenerator {
    private var state: UInt64

    init(seed: UInt64 = UInt64.random(in: .min ... .max)) {
        state = seed
    }

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

extension SocketAddress {
    /// A total order on addresses (family, then address bytes, then port), the same on every node:
    /// the simultaneous-dial rule compares listening addresses with it.
    func precedes(_ other: SocketAddress) -> Bool {
        orderKey < other.orderKey
    }

    private var orderKey: (Int, UInt64, UInt64, Int) {
        switch self {
        case .v4(let address): return (4, 0, UInt64(UInt32(bigEndian: address.address)), port)
        case .v6(let address): return (6, address.high, address.low, port)
        }
    }

    /// Whether the address is the wildcard (`0.0.0.0` or `::`), which says nothing about where
    /// peers can reach us.
    var isUnspecified: Bool {
        switch self {
        case .v4(let address): return address.address == 0
        case .v6(let address): return address.high == 0 && address.low == 0
        }
    }

    /// This address's host with another port.
    func withPort(_ port: Int) -> SocketAddress {
        switch self {
        case .v4(var address):
            address.port = UInt16(truncatingIfNeeded: port)
            return .v4(address)
        case .v6(var address):
            address.port = UInt16(truncatingIfNeeded: port)
            return .v6(address)
        }
    }
}
