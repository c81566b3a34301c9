import Synchronization
import PheromonesEmbedded
import XCTest

import Pheromones

/// What ran, in order, appended to from `@Sendable` tasks.
private final class RunLog<Entry: Sendable>: Sendable {
    private let storage = LockedValue<[Entry]>([])

    func record(_ entry: Entry) { storage.withLock { $0.append(entry) } }
    var entries: [Entry] { storage.withLock { $0 } }
}

/// A small seeded generator, so that the randomized test is the same on every run.
private typealias SeededGenerator = SplitMix64

private struct LoopTestError: Error, Equatable {}

private func at(_ nanoseconds: UInt64) -> Deadline { Deadline(uptimeNanoseconds: nanoseconds) }

private func failure<Value>(of future: Future<Value>) -> (any Error)? {
    if case .failure(let error)? = future.resultIfAvailable { return error }
    return nil
}

final class EmbeddedEventLoopTests: XCTestCase {
    // MARK: Order

    func testTimersFireInDeadlineOrderWhateverTheOrderTheyWereScheduledIn() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<String>()
        loop.scheduleTask(in: .milliseconds(30)) { log.record("30ms") }
        loop.scheduleTask(in: .milliseconds(10)) { log.record("10ms") }
        loop.scheduleTask(in: .milliseconds(20)) { log.record("20ms") }
        loop.scheduleTask(in: .milliseconds(5)) { log.record("5ms") }

        loop.run()
        XCTAssertEqual(log.entries, [], "no timer is due at time zero")
        loop.advanceTime(by: .milliseconds(100))
        XCTAssertEqual(log.entries, ["5ms", "10ms", "20ms", "30ms"])
    }

    func testTimersWithEqualDeadlinesFireInTheOrderTheyWereScheduled() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<Int>()
        for index in 0..<50 {
            loop.scheduleTask(deadline: at(index.isMultiple(of: 2) ? 1_000 : 500)) { log.record(index) }
        }
        loop.advanceTime(to: at(1_000))
        let odd = Array(stride(from: 1, to: 50, by: 2))
        let even = Array(stride(from: 0, to: 50, by: 2))
        XCTAssertEqual(log.entries, odd + even)
    }

    func testNowEqualsEachTimersDeadlineWhileItRuns() {
        let loop = EmbeddedEventLoop(start: at(1_000))
        let log = RunLog<String>()
        for delay: Int64 in [7, 3, 11, 3] {
            loop.scheduleTask(in: .nanoseconds(delay)) { log.record("\(delay)@\(loop.now.uptimeNanoseconds)") }
        }
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(log.entries, ["3@1003", "3@1003", "7@1007", "11@1011"])
        XCTAssertEqual(loop.now, at(1_000_001_000), "the clock ends at the requested time")
    }

    func testAdvancingTimePartwayRunsOnlyTheTimersThatAreDue() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<Int>()
        for ms: Int64 in [1, 2, 3, 4] {
            loop.scheduleTask(in: .milliseconds(ms)) { log.record(Int(ms)) }
        }
        loop.advanceTime(by: .milliseconds(2))
        XCTAssertEqual(log.entries, [1, 2])
        XCTAssertEqual(loop.pendingTimerCount, 2)
        XCTAssertEqual(loop.now, at(2_000_000))
        loop.advanceTime(by: .nanoseconds(999_999))
        XCTAssertEqual(log.entries, [1, 2], "a timer is not due a nanosecond before its deadline")
        loop.advanceTime(by: .nanoseconds(1))
        XCTAssertEqual(log.entries, [1, 2, 3])
    }

    func testATimerWithADeadlineInThePastRunsOnTheNextRun() {
        let loop = EmbeddedEventLoop(start: at(5_000))
        let log = RunLog<Deadline>()
        loop.scheduleTask(deadline: at(1_000)) { log.record(loop.now) }
        loop.run()
        XCTAssertEqual(log.entries, [at(5_000)], "the clock never goes back")
    }

    func testATimerFutureCarriesTheTasksValueOrError() {
        let loop = EmbeddedEventLoop()
        let value = loop.scheduleTask(in: .seconds(1)) { 42 }
        let thrown = loop.scheduleTask(in: .seconds(1)) { () throws -> Int in throw LoopTestError() }
        XCTAssertFalse(value.futureResult.isFulfilled)
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(try value.futureResult.resultIfAvailable?.get(), 42)
        XCTAssertEqual(failure(of: thrown.futureResult) as? LoopTestError, LoopTestError())
    }

    // MARK: Tasks

    func testTasksQueuedByTasksRunInTheSameRun() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<String>()
        loop.execute {
            log.record("outer")
            loop.execute {
                log.record("inner")
                loop.execute { log.record("innermost") }
            }
        }
        loop.execute { log.record("second") }
        XCTAssertEqual(log.entries, [], "execute only queues")
        loop.run()
        XCTAssertEqual(log.entries, ["outer", "second", "inner", "innermost"])
    }

    func testTasksAndTimersQueuedByATimerRunWithinTheSameAdvance() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<String>()
        loop.scheduleTask(in: .seconds(1)) {
            log.record("timer@\(loop.now.uptimeNanoseconds)")
            loop.execute { log.record("task@\(loop.now.uptimeNanoseconds)") }
            loop.scheduleTask(in: .seconds(1)) { log.record("nested@\(loop.now.uptimeNanoseconds)") }
        }
        loop.scheduleTask(in: .milliseconds(1_500)) { log.record("between@\(loop.now.uptimeNanoseconds)") }
        loop.advanceTime(by: .seconds(3))
        XCTAssertEqual(log.entries, [
            "timer@1000000000", "task@1000000000", "between@1500000000", "nested@2000000000",
        ])
    }

    // MARK: Cancelling

    func testCancellingATimerBeforeItsDeadlineFailsItsFutureAndTheTaskNeverRuns() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<String>()
        let scheduled = loop.scheduleTask(in: .seconds(1)) { log.record("ran") }
        loop.advanceTime(by: .milliseconds(500))
        scheduled.cancel()
        XCTAssertEqual(failure(of: scheduled.futureResult) as? EventLoopError, .cancelled)
        XCTAssertEqual(loop.pendingTimerCount, 0)
        loop.advanceTime(by: .seconds(10))
        XCTAssertEqual(log.entries, [])
        scheduled.cancel()
        XCTAssertEqual(failure(of: scheduled.futureResult) as? EventLoopError, .cancelled, "cancelling twice is harmless")
    }

    func testCancellingATimerThatAlreadyRanChangesNothing() {
        let loop = EmbeddedEventLoop()
        let scheduled = loop.scheduleTask(in: .seconds(1)) { "done" }
        loop.advanceTime(by: .seconds(1))
        scheduled.cancel()
        XCTAssertEqual(try scheduled.futureResult.resultIfAvailable?.get(), "done")
    }

    func testATimerCanCancelALaterTimer() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<String>()
        let victim = loop.scheduleTask(in: .seconds(2)) { log.record("victim") }
        loop.scheduleTask(in: .seconds(1)) {
            log.record("canceller")
            victim.cancel()
        }
        loop.advanceTime(by: .seconds(5))
        XCTAssertEqual(log.entries, ["canceller"])
        XCTAssertEqual(failure(of: victim.futureResult) as? EventLoopError, .cancelled)
    }

    func testCancellingTimersInTheMiddleOfTheHeapKeepsTheOthersInOrder() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<Int>()
        var handles: [Scheduled<Void>] = []
        for index in 0..<16 {
            // Deadlines 15, 14, ... 0 ms: every insertion sifts up, so the heap's layout is far from sorted.
            handles.append(loop.scheduleTask(in: .milliseconds(Int64(15 - index))) { log.record(index) })
        }
        for index in [3, 8, 9, 14, 0] { handles[index].cancel() }
        XCTAssertEqual(loop.pendingTimerCount, 11)
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(log.entries, [15, 13, 12, 11, 10, 7, 6, 5, 4, 2, 1])
    }

    func testRandomTimersAndCancellationsFireInTheOrderOfASortedModel() {
        var random = SeededGenerator(seed: 0x5EED_1234)
        let loop = EmbeddedEventLoop()
        let log = RunLog<(index: Int, now: Deadline)>()

        let count = 1_000
        // Few distinct deadlines, so that many timers share one and FIFO order matters.
        let deadlines = (0..<count).map { _ in at(UInt64.random(in: 1...200, using: &random) * 1_000) }
        let handles = deadlines.enumerated().map { index, deadline in
            loop.scheduleTask(deadline: deadline) { () -> Int in
                log.record((index, loop.now))
                return index
            }
        }
        var cancelled = Set<Int>()

        // Cancel a quarter of the timers before any runs: they sit anywhere in the heap.
        for index in (0..<count).shuffled(using: &random).prefix(count / 4) {
            handles[index].cancel()
            cancelled.insert(index)
        }
        XCTAssertEqual(loop.pendingTimerCount, count - cancelled.count)

        // Move time forward in random steps, cancelling a few timers (due later, or already run) at each step.
        while loop.now < at(200_000) {
            loop.advanceTime(by: .nanoseconds(Int64.random(in: 1...9_000, using: &random)))
            for _ in 0..<5 {
                let index = Int.random(in: 0..<count, using: &random)
                if deadlines[index] > loop.now { cancelled.insert(index) }
                handles[index].cancel()
            }
        }
        XCTAssertEqual(loop.pendingTimerCount, 0)

        let expected = (0..<count)
            .filter { !cancelled.contains($0) }
            .sorted { (deadlines[$0], $0) < (deadlines[$1], $1) }
        let fired = log.entries
        XCTAssertEqual(fired.map(\.index), expected)
        for (index, now) in fired where now != deadlines[index] {
            XCTFail("timer \(index) ran at \(now) instead of its deadline \(deadlines[index])")
        }
        for index in 0..<count {
            let result = handles[index].futureResult.resultIfAvailable
            if cancelled.contains(index) {
                guard case .failure(let error)? = result else { return XCTFail("timer \(index): \(String(describing: result))") }
                XCTAssertEqual(error as? EventLoopError, .cancelled)
            } else {
                XCTAssertEqual(try result?.get(), index)
            }
        }
    }

    // MARK: Shutting down

    func testShutdownRunsQueuedTasksAndFailsPendingTimersWithShutDown() {
        let loop = EmbeddedEventLoop()
        let log = RunLog<String>()
        loop.execute { log.record("queued task") }
        let pending = loop.scheduleTask(in: .seconds(1)) { log.record("timer") }

        loop.shutdownGracefully()
        XCTAssertTrue(loop.isShuttingDown)
        XCTAssertEqual(log.entries, ["queued task"])
        XCTAssertEqual(failure(of: pending.futureResult) as? EventLoopError, .shutDown)
        XCTAssertEqual(loop.pendingTimerCount, 0)
        loop.advanceTime(by: .seconds(2))
        XCTAssertEqual(log.entries, ["queued task"], "a timer failed by shutdown never runs")
    }

    func testAShutDownLoopRefusesNewWork() {
        let loop = EmbeddedEventLoop()
        loop.shutdownGracefully()
        let log = RunLog<String>()
        loop.execute { log.record("execute") }
        let scheduled = loop.scheduleTask(in: .zero) { log.record("timer") }
        loop.advanceTime(by: .seconds(1))
        XCTAssertEqual(log.entries, [])
        XCTAssertEqual(failure(of: scheduled.futureResult) as? EventLoopError, .shutDown)
    }
}
