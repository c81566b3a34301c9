import XCTest

import PheromonesEmbedded
@testable import PheromonesCore

/// Time arithmetic saturates at the bounds for every input, checked against exact 128-bit
/// arithmetic on random values drawn mostly from near the edges, where overflow lives.
final class TimeSaturationPropertyTests: XCTestCase {
    private var generator = SplitMix(seed: 0x5EED_71AE)

    func testTimeAmountSumsDifferencesAndProductsEqualTheExactResultClampedToInt64() {
        for _ in 0..<100_000 {
            let a = generator.edgyInt64(), b = generator.edgyInt64()
            XCTAssertEqual((TimeAmount(nanoseconds: a) + TimeAmount(nanoseconds: b)).nanoseconds,
                           Self.clamp(Int128(a) + Int128(b)), "\(a) + \(b)")
            XCTAssertEqual((TimeAmount(nanoseconds: a) - TimeAmount(nanoseconds: b)).nanoseconds,
                           Self.clamp(Int128(a) - Int128(b)), "\(a) - \(b)")
            XCTAssertEqual((TimeAmount(nanoseconds: a) * b).nanoseconds, Self.clamp(Int128(a) * Int128(b)), "\(a) * \(b)")
        }
    }

    func testUnitConstructorsEqualTheExactProductClampedToInt64() {
        let units: [(Int64) -> TimeAmount] = [TimeAmount.microseconds, TimeAmount.milliseconds, TimeAmount.seconds, TimeAmount.minutes]
        let factors: [Int128] = [1_000, 1_000_000, 1_000_000_000, 60_000_000_000]
        for _ in 0..<20_000 {
            let value = generator.edgyInt64()
            for (unit, factor) in zip(units, factors) {
                XCTAssertEqual(unit(value).nanoseconds, Self.clamp(Int128(value) * factor))
            }
        }
    }

    func testMovingADeadlineEqualsTheExactResultClampedToTheClock() {
        for _ in 0..<100_000 {
            let start = generator.edgyUInt64(), amount = generator.edgyInt64()
            let moved = Deadline(uptimeNanoseconds: start) + TimeAmount(nanoseconds: amount)
            let exact = Int128(start) + Int128(amount)
            XCTAssertEqual(moved.uptimeNanoseconds, UInt64(min(max(exact, 0), Int128(UInt64.max))), "\(start) + \(amount)")
        }
    }

    func testTheTimeBetweenTwoDeadlinesEqualsTheExactDifferenceClampedToInt64() {
        for _ in 0..<100_000 {
            let a = generator.edgyUInt64(), b = generator.edgyUInt64()
            let difference = Deadline(uptimeNanoseconds: a) - Deadline(uptimeNanoseconds: b)
            XCTAssertEqual(difference.nanoseconds, Self.clamp(Int128(a) - Int128(b)), "\(a) - \(b)")
        }
    }

    func testEveryTimeAmountHasADescriptionWithoutTrapping() {
        for value in [Int64.min, .min + 1, -1, 0, 1, .max - 1, .max] {
            XCTAssertFalse(TimeAmount(nanoseconds: value).description.isEmpty)
        }
    }

    // MARK: The embedded loop at the extremes

    func testTimersAtTheDistantFutureOrAtTheLargestDelayAreAcceptedAndCanBeCancelled() {
        let loop = EmbeddedEventLoop()
        let fired = LockedValue(0)
        let far = loop.scheduleTask(deadline: .distantFuture) { fired.withLock { $0 += 1 } }
        let farthest = loop.scheduleTask(in: TimeAmount(nanoseconds: .max)) { fired.withLock { $0 += 1 } }
        let overflowing = loop.scheduleTask(in: .minutes(.max)) { fired.withLock { $0 += 1 } }
        loop.advanceTime(by: .minutes(60 * 24 * 365 * 100))
        XCTAssertEqual(fired.withLock { $0 }, 0)
        for scheduled in [far, farthest, overflowing] { scheduled.cancel() }
        XCTAssertEqual(fired.withLock { $0 }, 0)
        XCTAssertNotNil(far.futureResult.resultIfAvailable, "cancelling completes the future")
    }

    func testADelayOfTheSmallestTimeAmountFiresAtOnce() {
        let loop = EmbeddedEventLoop()
        let fired = LockedValue(false)
        loop.scheduleTask(in: TimeAmount(nanoseconds: .min)) { fired.withLock { $0 = true } }
        loop.run()
        XCTAssertTrue(fired.withLock { $0 })
    }

    private static func clamp(_ value: Int128) -> Int64 {
        Int64(min(max(value, Int128(Int64.min)), Int128(Int64.max)))
    }
}

/// Draws biased toward the edges of the integer range, where overflow lives.
private typealias SplitMix = SplitMix64

extension SplitMix64 {
    /// Near 0, near either bound, or anywhere, a third of the time each.
    fileprivate mutating func edgyInt64() -> Int64 {
        let offset = Int64(next() % 1_000_000_000_000)
        switch next() % 3 {
        case 0: return next() % 2 == 0 ? offset : -offset
        case 1: return next() % 2 == 0 ? .max - offset : .min + offset
        default: return Int64(bitPattern: next())
        }
    }

    fileprivate mutating func edgyUInt64() -> UInt64 {
        let offset = next() % 1_000_000_000_000
        switch next() % 3 {
        case 0: return offset
        case 1: return .max - offset
        default: return next()
        }
    }
}
