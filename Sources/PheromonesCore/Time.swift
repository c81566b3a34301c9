import Glibc

/// A span of time with nanosecond resolution, used for timeouts and timer delays.
///
/// `TimeAmount` is a plain value: it can be negative (a deadline in the past) and it saturates
/// instead of trapping when arithmetic overflows, because timeouts are often computed from input.
public struct TimeAmount: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The amount in nanoseconds.
    public var nanoseconds: Int64

    /// Creates an amount of `nanoseconds`.
    @inlinable public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// `amount` nanoseconds.
    @inlinable public static func nanoseconds(_ amount: Int64) -> TimeAmount { TimeAmount(nanoseconds: amount) }
    /// `amount` microseconds.
    @inlinable public static func microseconds(_ amount: Int64) -> TimeAmount { .scaled(amount, by: 1_000) }
    /// `amount` milliseconds.
    @inlinable public static func milliseconds(_ amount: Int64) -> TimeAmount { .scaled(amount, by: 1_000_000) }
    /// `amount` seconds.
    @inlinable public static func seconds(_ amount: Int64) -> TimeAmount { .scaled(amount, by: 1_000_000_000) }
    /// `amount` minutes.
    @inlinable public static func minutes(_ amount: Int64) -> TimeAmount { .scaled(amount, by: 60_000_000_000) }
    /// No time at all.
    public static let zero = TimeAmount(nanoseconds: 0)

    @inlinable static func scaled(_ amount: Int64, by factor: Int64) -> TimeAmount {
        let (product, overflow) = amount.multipliedReportingOverflow(by: factor)
        // The true product's sign: negative when exactly one of the operands is.
        if overflow { return TimeAmount(nanoseconds: (amount < 0) != (factor < 0) ? .min : .max) }
        return TimeAmount(nanoseconds: product)
    }

    /// The sum, saturating at the bounds of `Int64`.
    @inlinable public static func + (lhs: TimeAmount, rhs: TimeAmount) -> TimeAmount {
        TimeAmount(nanoseconds: lhs.nanoseconds.addingSaturating(rhs.nanoseconds))
    }

    /// The difference, saturating at the bounds of `Int64`.
    @inlinable public static func - (lhs: TimeAmount, rhs: TimeAmount) -> TimeAmount {
        let (difference, overflow) = lhs.nanoseconds.subtractingReportingOverflow(rhs.nanoseconds)
        if !overflow { return TimeAmount(nanoseconds: difference) }
        return TimeAmount(nanoseconds: rhs.nanoseconds < 0 ? .max : .min)
    }

    /// The amount multiplied by `factor`, saturating.
    @inlinable public static func * (lhs: TimeAmount, factor: Int64) -> TimeAmount { .scaled(lhs.nanoseconds, by: factor) }

    @inlinable public static func < (lhs: TimeAmount, rhs: TimeAmount) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The amount in the largest unit that keeps it exact, e.g. `250ms`.
    public var description: String {
        let units: [(Int64, String)] = [(60_000_000_000, "min"), (1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs")]
        for (size, name) in units where nanoseconds != 0 && nanoseconds % size == 0 {
            return "\(nanoseconds / size)\(name)"
        }
        return "\(nanoseconds)ns"
    }
}

/// A point in time on the monotonic clock (time since boot), used for timer deadlines.
public struct Deadline: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds since an arbitrary fixed point (the system's monotonic clock).
    public var uptimeNanoseconds: UInt64

    /// Creates a deadline at `uptimeNanoseconds`.
    @inlinable public init(uptimeNanoseconds: UInt64) { self.uptimeNanoseconds = uptimeNanoseconds }

    /// The current time on the monotonic clock.
    public static func now() -> Deadline {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Deadline(uptimeNanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }

    /// A deadline that never comes.
    public static let distantFuture = Deadline(uptimeNanoseconds: .max)
    /// The earliest possible deadline.
    public static let distantPast = Deadline(uptimeNanoseconds: 0)

    /// A deadline `amount` after now.
    public static func after(_ amount: TimeAmount) -> Deadline { .now() + amount }

    /// The deadline moved by `amount`, saturating at the clock's bounds.
    @inlinable public static func + (lhs: Deadline, rhs: TimeAmount) -> Deadline {
        if rhs.nanoseconds >= 0 {
            let (sum, overflow) = lhs.uptimeNanoseconds.addingReportingOverflow(UInt64(rhs.nanoseconds))
            return Deadline(uptimeNanoseconds: overflow ? .max : sum)
        }
        let magnitude = rhs.nanoseconds.magnitude
        return Deadline(uptimeNanoseconds: lhs.uptimeNanoseconds > magnitude ? lhs.uptimeNanoseconds - magnitude : 0)
    }

    /// The time from `rhs` to `lhs` (negative when `lhs` is earlier), saturating.
    @inlinable public static func - (lhs: Deadline, rhs: Deadline) -> TimeAmount {
        if lhs.uptimeNanoseconds >= rhs.uptimeNanoseconds {
            let diff = lhs.uptimeNanoseconds - rhs.uptimeNanoseconds
            return TimeAmount(nanoseconds: diff > UInt64(Int64.max) ? .max : Int64(diff))
        }
        let diff = rhs.uptimeNanoseconds - lhs.uptimeNanoseconds
        return TimeAmount(nanoseconds: diff > UInt64(Int64.max) ? .min : -Int64(diff))
    }

    @inlinable public static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.uptimeNanoseconds < rhs.uptimeNanoseconds }

    public var description: String { "Deadline(\(uptimeNanoseconds)ns)" }
}

extension Int64 {
    @inlinable func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if !overflow { return sum }
        return other > 0 ? .max : .min
    }
}
