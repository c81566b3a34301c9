import XCTest

import Pheromones

final class TimeTests: XCTestCase {
    // MARK: TimeAmount

    func testUnitConstructorsScaleToNanoseconds() {
        XCTAssertEqual(TimeAmount.nanoseconds(7).nanoseconds, 7)
        XCTAssertEqual(TimeAmount.microseconds(7).nanoseconds, 7_000)
        XCTAssertEqual(TimeAmount.milliseconds(7).nanoseconds, 7_000_000)
        XCTAssertEqual(TimeAmount.seconds(7).nanoseconds, 7_000_000_000)
        XCTAssertEqual(TimeAmount.minutes(7).nanoseconds, 420_000_000_000)
        XCTAssertEqual(TimeAmount.seconds(-2).nanoseconds, -2_000_000_000)
        XCTAssertEqual(TimeAmount.zero.nanoseconds, 0)
        XCTAssertEqual(TimeAmount.milliseconds(1_500), .microseconds(1_500_000))
    }

    func testUnitConstructorsSaturateInsteadOfTrapping() {
        XCTAssertEqual(TimeAmount.seconds(.max).nanoseconds, .max)
        XCTAssertEqual(TimeAmount.minutes(.max / 2).nanoseconds, .max)
        XCTAssertEqual(TimeAmount.seconds(.min).nanoseconds, .min)
        XCTAssertEqual(TimeAmount.microseconds(.min / 10).nanoseconds, .min)
        XCTAssertEqual(TimeAmount.milliseconds(Int64.max / 1_000_000).nanoseconds, Int64.max / 1_000_000 * 1_000_000,
                       "the largest exact value is not saturated")
    }

    func testAdditionSaturatesAtBothBounds() {
        XCTAssertEqual(TimeAmount.seconds(1) + .milliseconds(500), .milliseconds(1_500))
        XCTAssertEqual((TimeAmount.nanoseconds(.max) + .nanoseconds(1)).nanoseconds, .max)
        XCTAssertEqual((TimeAmount.nanoseconds(.max) + .nanoseconds(.max)).nanoseconds, .max)
        XCTAssertEqual((TimeAmount.nanoseconds(.min) + .nanoseconds(-1)).nanoseconds, .min)
        XCTAssertEqual((TimeAmount.nanoseconds(.max) + .nanoseconds(.min)).nanoseconds, -1, "opposite signs never overflow")
    }

    func testSubtractionSaturatesAtBothBounds() {
        XCTAssertEqual(TimeAmount.seconds(1) - .milliseconds(250), .milliseconds(750))
        XCTAssertEqual(TimeAmount.seconds(1) - .seconds(3), .seconds(-2))
        XCTAssertEqual((TimeAmount.nanoseconds(.min) - .nanoseconds(1)).nanoseconds, .min)
        XCTAssertEqual((TimeAmount.nanoseconds(.max) - .nanoseconds(-1)).nanoseconds, .max)
        XCTAssertEqual((TimeAmount.nanoseconds(0) - .nanoseconds(.min)).nanoseconds, .max)
        XCTAssertEqual((TimeAmount.nanoseconds(.min) - .nanoseconds(.min)).nanoseconds, 0)
    }

    func testSubtractingTheMinimumIsExactWhenTheResultFits() {
        // -1 - Int64.min == Int64.max exactly, and -5 - Int64.min == Int64.max - 4: no saturation needed.
        XCTAssertEqual((TimeAmount.nanoseconds(-1) - .nanoseconds(.min)).nanoseconds, .max)
        XCTAssertEqual((TimeAmount.nanoseconds(-5) - .nanoseconds(.min)).nanoseconds, .max - 4)
    }

    func testMultiplicationSaturatesTowardTheSignOfTheTrueProduct() {
        XCTAssertEqual(TimeAmount.seconds(3) * 4, .seconds(12))
        XCTAssertEqual(TimeAmount.seconds(3) * -4, .seconds(-12))
        XCTAssertEqual((TimeAmount.nanoseconds(.max) * 2).nanoseconds, .max)
        XCTAssertEqual((TimeAmount.nanoseconds(.min) * 2).nanoseconds, .min)
        XCTAssertEqual((TimeAmount.nanoseconds(.max) * -2).nanoseconds, .min, "a positive amount times a negative factor is negative")
        XCTAssertEqual((TimeAmount.nanoseconds(.min) * -2).nanoseconds, .max, "two negatives make a positive")
        XCTAssertEqual((TimeAmount.nanoseconds(.min) * -1).nanoseconds, .max)
    }

    func testAmountsCompareByLength() {
        XCTAssertLessThan(TimeAmount.milliseconds(999), .seconds(1))
        XCTAssertLessThan(TimeAmount.seconds(-1), .zero)
        XCTAssertEqual([TimeAmount.seconds(2), .nanoseconds(5), .milliseconds(-3)].sorted(),
                       [.milliseconds(-3), .nanoseconds(5), .seconds(2)])
        XCTAssertEqual(TimeAmount.seconds(60), .minutes(1))
    }

    func testTheDescriptionUsesTheLargestExactUnit() {
        XCTAssertEqual(TimeAmount.minutes(2).description, "2min")
        XCTAssertEqual(TimeAmount.seconds(90).description, "90s")
        XCTAssertEqual(TimeAmount.milliseconds(250).description, "250ms")
        XCTAssertEqual(TimeAmount.milliseconds(1_500).description, "1500ms")
        XCTAssertEqual(TimeAmount.microseconds(3).description, "3µs")
        XCTAssertEqual(TimeAmount.nanoseconds(1_001).description, "1001ns")
        XCTAssertEqual(TimeAmount.zero.description, "0ns")
        XCTAssertEqual(TimeAmount.milliseconds(-250).description, "-250ms")
        XCTAssertEqual(TimeAmount.nanoseconds(.max).description, "\(Int64.max)ns")
        XCTAssertEqual(TimeAmount.nanoseconds(.min).description, "\(Int64.min)ns")
    }

    // MARK: Deadline

    func testADeadlineMovesByAnAmountInEitherDirection() {
        let base = Deadline(uptimeNanoseconds: 1_000)
        XCTAssertEqual(base + .nanoseconds(500), Deadline(uptimeNanoseconds: 1_500))
        XCTAssertEqual(base + .nanoseconds(-400), Deadline(uptimeNanoseconds: 600))
        XCTAssertEqual(base + .zero, base)
    }

    func testMovingADeadlineSaturatesAtTheClocksBounds() {
        XCTAssertEqual(Deadline.distantFuture + .nanoseconds(1), .distantFuture)
        XCTAssertEqual(Deadline(uptimeNanoseconds: .max - 10) + .seconds(1), .distantFuture)
        XCTAssertEqual(Deadline(uptimeNanoseconds: 10) + .nanoseconds(-11), .distantPast)
        XCTAssertEqual(Deadline(uptimeNanoseconds: 10) + .nanoseconds(-10), .distantPast)
        XCTAssertEqual(Deadline(uptimeNanoseconds: 10) + .nanoseconds(.min), .distantPast)
        XCTAssertEqual(Deadline.distantPast + .nanoseconds(.max), Deadline(uptimeNanoseconds: UInt64(Int64.max)))
    }

    func testTheDistanceBetweenDeadlinesIsSignedAndSaturates() {
        let early = Deadline(uptimeNanoseconds: 1_000)
        let late = Deadline(uptimeNanoseconds: 3_500)
        XCTAssertEqual(late - early, .nanoseconds(2_500))
        XCTAssertEqual(early - late, .nanoseconds(-2_500))
        XCTAssertEqual(late - late, .zero)
        XCTAssertEqual((Deadline.distantFuture - .distantPast).nanoseconds, .max)
        XCTAssertEqual((Deadline.distantPast - .distantFuture).nanoseconds, .min)
        XCTAssertEqual((Deadline(uptimeNanoseconds: UInt64(Int64.max)) - .distantPast).nanoseconds, .max)
    }

    func testDeadlinesCompareAndDescribeThemselves() {
        XCTAssertLessThan(Deadline.distantPast, Deadline(uptimeNanoseconds: 1))
        XCTAssertLessThan(Deadline(uptimeNanoseconds: 1), .distantFuture)
        XCTAssertEqual(Deadline(uptimeNanoseconds: 42).description, "Deadline(42ns)")
    }

    func testNowIsMonotonicAndAfterIsLaterThanNow() {
        let first = Deadline.now()
        let second = Deadline.now()
        XCTAssertLessThanOrEqual(first, second)
        let later = Deadline.after(.seconds(60))
        XCTAssertGreaterThanOrEqual(later - second, .seconds(59))
    }
}
