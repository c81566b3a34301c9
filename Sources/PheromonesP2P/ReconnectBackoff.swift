import Pheromones

/// When a node may dial a pinned route again: exponential backoff with jitter, per address.
///
/// After the n-th failure in a row (a dial that failed, or a connection that dropped) the next
/// dial waits a random time between half and all of `initial × 2^(n-1)`, capped at `maximum`:
/// doubling spaces the attempts at a peer that is down, the cap bounds how long a peer that comes
/// back waits, and the jitter keeps many nodes that lost the same peer from dialling it in step.
/// A success forgets the address's failures.
///
/// A pure value, touched on the node's loop only.
struct ReconnectBackoff {
    /// The delay after the first failure.
    let initial: TimeAmount
    /// The longest delay.
    let maximum: TimeAmount
    /// Failures in a row, per address.
    private var failures: [SocketAddress: Int] = [:]
    /// Draws the jitter (the node's seeded id generator: no system call per draw).
    private var random: MessageIDGenerator

    init(initial: TimeAmount, maximum: TimeAmount, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.initial = max(initial, .zero)
        self.maximum = max(maximum, self.initial)
        random = MessageIDGenerator(seed: seed)
    }

    /// Counts a failure for `address`; returns how long to wait before the next dial.
    mutating func failed(_ address: SocketAddress) -> TimeAmount {
        let count = (failures[address] ?? 0) + 1
        failures[address] = count
        return jittered(ceiling(afterFailures: count))
    }

    /// A time between half of `delay` and `delay`.
    private mutating func jittered(_ delay: TimeAmount) -> TimeAmount {
        let full = max(delay.nanoseconds, 0)
        let half = full / 2
        guard full > half else { return delay }
        return .nanoseconds(half + Int64(random.next() % UInt64(full - half + 1)))
    }

    /// Forgets `address`'s failures (it connected, or its route is gone).
    mutating func forget(_ address: SocketAddress) {
        failures[address] = nil
    }

    /// `initial × 2^(count-1)`, capped at `maximum` (saturating: no overflow for any count).
    private func ceiling(afterFailures count: Int) -> TimeAmount {
        var delay = initial
        for _ in 1..<min(count, 64) where delay < maximum {
            delay = delay * 2
        }
        return min(delay, maximum)
    }
}
