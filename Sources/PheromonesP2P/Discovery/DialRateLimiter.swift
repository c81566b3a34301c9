import Pheromones

/// A token bucket that bounds how often the node dials an address it learned from a peer: it
/// holds up to `perSecond` tokens (the burst), refills at `perSecond` tokens per second, and each
/// dial takes one.
///
/// Time is whatever `now` the caller passes (the loop's clock, or virtual time in a test); the
/// bucket never reads a clock. Tokens are counted in billionths, so that refilling is exact
/// integer arithmetic over nanoseconds, and every step saturates instead of overflowing.
struct DialRateLimiter {
    private static let unit: UInt64 = 1_000_000_000
    /// Tokens per second, and the most the bucket holds.
    let perSecond: UInt64
    /// The tokens held, in billionths.
    private var tokens: UInt64
    /// When `tokens` was last brought up to date.
    private var updatedAt: Deadline?

    /// A full bucket of `perSecond` tokens (clamped to 0...1,000,000; 0 allows no dial at all).
    init(perSecond: Int) {
        self.perSecond = UInt64(clamping: min(max(perSecond, 0), 1_000_000))
        self.tokens = self.perSecond * Self.unit
    }

    /// The most tokens the bucket holds, in billionths.
    private var capacity: UInt64 { perSecond * Self.unit }

    /// Takes one token if there is one at `now`; returns whether it did.
    mutating func take(now: Deadline) -> Bool {
        refill(now: now)
        guard tokens >= Self.unit else { return false }
        tokens -= Self.unit
        return true
    }

    /// When the next token is there (`now` when one is already): nil when none ever comes.
    mutating func nextToken(now: Deadline) -> Deadline? {
        refill(now: now)
        guard tokens < Self.unit else { return now }
        guard perSecond > 0 else { return nil }
        // Nanoseconds until the missing billionths have come in, rounded up.
        let missing = Self.unit - tokens
        let nanoseconds = (missing + perSecond - 1) / perSecond
        return now + .nanoseconds(Int64(clamping: nanoseconds))
    }

    /// Adds the tokens earned since the last update (a clock that went back earns nothing).
    private mutating func refill(now: Deadline) {
        defer { updatedAt = max(updatedAt ?? now, now) }
        guard let last = updatedAt, now > last else { return }
        let elapsed = now.uptimeNanoseconds - last.uptimeNanoseconds
        let (earned, overflow) = elapsed.multipliedReportingOverflow(by: perSecond)
        let (sum, overflowSum) = tokens.addingReportingOverflow(earned)
        tokens = overflow || overflowSum ? capacity : min(capacity, sum)
    }
}
