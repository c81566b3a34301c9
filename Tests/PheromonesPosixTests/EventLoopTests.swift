import Dispatch
import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import Synchronization
import XCTest
import PheromonesTestSupport

/// The epoll loop on real threads: task queues, timers, cancellation, shutdown, wake-ups and the
/// Swift-concurrency executors. Every wait is bounded (futures through `get(within:)`, expectations
/// through `fulfillment(of:timeout:)`); nothing sleeps to let something happen.
final class EventLoopTests: XCTestCase {
    func testWaitBlocksAThreadOffTheLoopUntilTheFutureCompletesAndWaitWithATimeoutGivesUp() throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.syncShutdownGracefully() }
        let loop = group.next()
        XCTAssertEqual(try loop.submit { 42 }.wait(), 42)
        XCTAssertThrowsError(try loop.submit { () throws -> Int in throw ChannelError.ioOnClosedChannel }.wait()) { error in
            XCTAssertEqual(error as? ChannelError, .ioOnClosedChannel)
        }
        // Completed later, from the loop, while this thread waits.
        let later = loop.scheduleTask(in: .milliseconds(20)) { "late" }
        XCTAssertEqual(try later.futureResult.wait(timeout: .seconds(10)), "late")
        let never = loop.makePromise(of: Int.self)
        XCTAssertThrowsError(try never.futureResult.wait(timeout: .milliseconds(30))) { error in
            XCTAssertEqual(error as? EventLoopError, .timedOut(.milliseconds(30)))
        }
        never.succeed(0)
    }

    // MARK: Tasks

    func testTasksExecutedFromEightThreadsAllRunExactlyOnceInSubmissionOrderOnTheLoopThread() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.epollLoops[0]
        let threadCount = 8, tasksPerThread = 5_000
        let ledger = TaskLedger(threads: threadCount, tasksPerThread: tasksPerThread)
        let enqueued = XCTestExpectation(description: "every thread has enqueued its tasks")
        enqueued.expectedFulfillmentCount = threadCount

        for thread in 0..<threadCount {
            Thread {
                for index in 0..<tasksPerThread {
                    loop.execute { ledger.ran(thread: thread, index: index, onLoop: loop.inEventLoop) }
                }
                enqueued.fulfill()
            }.start()
        }
        await fulfillment(of: [enqueued], timeout: 60)
        // The inbox is first in, first out: once this task has run, every task above has too.
        try await loop.submit {}.get(within: 60)

        let summary = ledger.summary
        XCTAssertEqual(summary.total, threadCount * tasksPerThread, "tasks were lost or run twice")
        XCTAssertEqual(summary.notExactlyOnce, 0, "some task did not run exactly once")
        XCTAssertEqual(summary.offLoop, 0, "some task ran off the loop's thread")
        XCTAssertEqual(summary.outOfOrder, 0, "one thread's tasks ran out of the order it submitted them")
        try await group.shutdownGracefully()
    }

    func testSubmitReturnsTheTasksValueOrItsErrorFromOtherThreadsAndFromTheLoop() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]

        let value = try await loop.submit { () -> String in
            XCTAssertTrue(loop.inEventLoop)
            return "forty-two"
        }.get(within: 10)
        XCTAssertEqual(value, "forty-two")

        await assertFails(loop.submit { () throws -> Int in throw LoopTestError(code: 7) }, with: LoopTestError(code: 7))

        // From the loop itself: the nested task runs in a later turn and its future completes as well.
        let nested = try await loop.submit { () -> Future<Int> in
            loop.submit { 6 * 7 }
        }.get(within: 10)
        let nestedValue = try await nested.get(within: 10)
        XCTAssertEqual(nestedValue, 42)
        let nestedError = try await loop.submit { () -> Future<Int> in
            loop.submit { () throws -> Int in throw LoopTestError(code: 9) }
        }.get(within: 10)
        await assertFails(nestedError, with: LoopTestError(code: 9))
        try await group.shutdownGracefully()
    }

    func testOneHundredThousandTasksSubmittedFromAnotherThreadAllComplete() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let count = 100_000
        let counter = SharedCounter()
        let lastFuture = LockedValue<Future<Int>?>(nil)
        let submitted = XCTestExpectation(description: "the submitting thread is done")
        Thread {
            for index in 1..<count {
                _ = loop.submit { counter.increment(); return index }
            }
            lastFuture.withLock { $0 = loop.submit { counter.increment(); return count } }
            submitted.fulfill()
        }.start()
        await fulfillment(of: [submitted], timeout: 60)
        let last = try XCTUnwrap(lastFuture.withLock { $0 })
        let lastValue = try await last.get(within: 60)
        XCTAssertEqual(lastValue, count)
        XCTAssertEqual(counter.value, count)
        try await group.shutdownGracefully()
    }

    func testSubmissionsWhileTheLoopIsBusyCostAtMostOneEventfdWrite() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let entered = XCTestExpectation(description: "the loop is busy in a task")
        let release = DispatchSemaphore(value: 0)
        let finishedWaiting = SharedCounter()
        loop.execute {
            entered.fulfill()
            // Bounded: if the test never signals, the loop moves on after 30 s and the test fails below.
            if release.wait(timeout: .now() + 30) == .success { finishedWaiting.increment() }
        }
        await fulfillment(of: [entered], timeout: 10)

        let writesBefore = loop.wakeUpWriteCount
        let counter = SharedCounter()
        for _ in 0..<100_000 { loop.execute { counter.increment() } }
        let writesDuring = loop.wakeUpWriteCount - writesBefore
        release.signal()
        try await loop.submit {}.get(within: 30)

        XCTAssertEqual(finishedWaiting.value, 1, "the busy task was not released by the test")
        XCTAssertEqual(counter.value, 100_000)
        // The loop re-armed its waker before it started the busy task: the first submission writes the
        // eventfd, the other 99,999 see the wake-up pending and only queue.
        XCTAssertLessThanOrEqual(writesDuring, 1, "wake-ups were not coalesced: \(writesDuring) eventfd writes for 100,000 submissions")
        try await group.shutdownGracefully()
    }

    // MARK: Timers

    func testTimersFireInDeadlineOrderAndEqualDeadlinesInSchedulingOrderNeverEarly() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        var random = SeededGenerator(seed: 0x7157_0001)
        let delays = (0..<200).map { _ in Int64.random(in: 0...50, using: &random) }
        let firings = LockedValue<[TimerFiring]>([])

        // Scheduled from the loop, in one task, so that every timer is in the heap before any is due:
        // the order observed is the heap's, not the order in which the inbox was drained.
        let futures = try await loop.submit { () -> [Future<Void>] in
            let start = loop.now
            return delays.enumerated().map { index, delay in
                let deadline = start + .milliseconds(delay)
                return loop.scheduleTask(deadline: deadline) {
                    firings.withLock { $0.append(TimerFiring(index: index, deadline: deadline, firedAt: loop.now, onLoop: loop.inEventLoop)) }
                }.futureResult
            }
        }.get(within: 10)
        try await Future.andAllSucceed(futures, on: loop).get(within: 30)

        let recorded = firings.withLock { $0 }
        XCTAssertEqual(recorded.count, delays.count)
        let expectedOrder = recorded.sorted { ($0.deadline, $0.index) < ($1.deadline, $1.index) }.map(\.index)
        XCTAssertEqual(recorded.map(\.index), expectedOrder, "timers fired out of deadline order")
        XCTAssertTrue(recorded.allSatisfy { $0.onLoop }, "a timer ran off the loop's thread")
        for firing in recorded where firing.firedAt < firing.deadline {
            XCTFail("timer \(firing.index) fired \((firing.deadline - firing.firedAt).nanoseconds) ns before its deadline")
        }
        try await group.shutdownGracefully()
    }

    func testATimerCancelledOnTheLoopFailsWithCancelledAndNeverRuns() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let ran = SharedCounter()

        let scheduled = try await loop.submit { () -> Scheduled<Void> in
            let scheduled = loop.scheduleTask(in: .milliseconds(20)) { ran.increment() }
            scheduled.cancel()
            return scheduled
        }.get(within: 10)
        await assertFails(scheduled.futureResult, with: EventLoopError.cancelled)
        // A later timer has fired, so the cancelled one's deadline has long passed on the same heap.
        try await loop.scheduleTask(in: .milliseconds(60)) {}.futureResult.get(within: 10)
        XCTAssertEqual(ran.value, 0, "a cancelled timer ran")
        try await group.shutdownGracefully()
    }

    func testATimerCancelledFromAnotherThreadFailsWithCancelledAndNeverRuns() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let ran = SharedCounter()

        // Scheduled and cancelled off the loop: both go through the inbox, insertion first.
        let fromHere = loop.scheduleTask(in: .milliseconds(20)) { ran.increment() }
        fromHere.cancel()
        await assertFails(fromHere.futureResult, with: EventLoopError.cancelled)
        // Scheduled on the loop (already in the heap), cancelled from here.
        let onLoop = try await loop.submit { loop.scheduleTask(in: .milliseconds(40)) { ran.increment() } }.get(within: 10)
        onLoop.cancel()
        await assertFails(onLoop.futureResult, with: EventLoopError.cancelled)
        try await loop.scheduleTask(in: .milliseconds(80)) {}.futureResult.get(within: 10)
        XCTAssertEqual(ran.value, 0, "a cancelled timer ran")

        // Cancelling a timer that already ran changes nothing.
        let done = loop.scheduleTask(in: .zero) { 5 }
        let doneValue = try await done.futureResult.get(within: 10)
        XCTAssertEqual(doneValue, 5)
        done.cancel()
        try await loop.submit {}.get(within: 10)
        XCTAssertEqual(try done.futureResult.resultIfAvailable?.get(), 5)
        try await group.shutdownGracefully()
    }

    func testATimerScheduledFromAnotherThreadWakesALoopSleepingOnALaterTimerOnTime() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        // The loop now sleeps in epoll_wait with a timeout of a minute.
        let far = loop.scheduleTask(in: .seconds(60)) {}
        try await loop.submit {}.get(within: 10)

        let delay = TimeAmount.milliseconds(50)
        let start = Deadline.now()
        let firedAt = try await loop.scheduleTask(in: delay) { Deadline.now() }.futureResult.get(within: 10)
        let elapsed = firedAt - start
        XCTAssertGreaterThanOrEqual(elapsed.nanoseconds, delay.nanoseconds, "the timer fired early")
        XCTAssertLessThan(elapsed.nanoseconds, TimeAmount.seconds(3).nanoseconds, "the sleeping loop was not woken for the nearer timer")

        far.cancel()
        await assertFails(far.futureResult, with: EventLoopError.cancelled)
        try await group.shutdownGracefully()
    }

    // MARK: Shutdown

    func testAfterShutdownSubmitAndScheduleTaskFailPromptlyWithShutDownAndExecuteIsDropped() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        try await group.shutdownGracefully()

        for loop in group.epollLoops {
            XCTAssertTrue(loop.isShuttingDown)
            let submitted = loop.submit { 1 }
            XCTAssertTrue(submitted.isFulfilled, "submit on a shut-down loop returned a pending future")
            await assertFails(submitted, within: 5, with: EventLoopError.shutDown)
            let scheduled = loop.scheduleTask(in: .milliseconds(1)) { 2 }
            XCTAssertTrue(scheduled.futureResult.isFulfilled, "scheduleTask on a shut-down loop returned a pending future")
            await assertFails(scheduled.futureResult, within: 5, with: EventLoopError.shutDown)
            scheduled.cancel()

            let ran = SharedCounter()
            loop.execute { ran.increment() }
            XCTAssertEqual(ran.value, 0)
        }
        // Shutting down again is harmless.
        try await group.shutdownGracefully()
    }

    func testShutdownFailsTimersStillPendingWithShutDown() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let ran = SharedCounter()
        let pending = loop.scheduleTask(in: .seconds(3600)) { ran.increment() }
        let pendingOnLoop = try await loop.submit { loop.scheduleTask(in: .seconds(3600)) { ran.increment() } }.get(within: 10)

        try await group.shutdownGracefully()

        await assertFails(pending.futureResult, within: 5, with: EventLoopError.shutDown)
        await assertFails(pendingOnLoop.futureResult, within: 5, with: EventLoopError.shutDown)
        XCTAssertEqual(ran.value, 0)
    }

    func testEveryFutureSubmittedWhileTheGroupShutsDownCompletes() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let futures = LockedValue<[Future<Int>]>([])
        let started = XCTestExpectation(description: "the submitter is running")
        let finished = XCTestExpectation(description: "the submitter is done")
        Thread {
            for index in 0..<20_000 {
                let future = loop.submit { index }
                futures.withLock { $0.append(future) }
                if index == 100 { started.fulfill() }
            }
            finished.fulfill()
        }.start()
        await fulfillment(of: [started], timeout: 10)
        try await group.shutdownGracefully()
        await fulfillment(of: [finished], timeout: 60)

        let all = futures.withLock { $0 }
        XCTAssertEqual(all.count, 20_000)
        var ran = 0, refused = 0
        for future in all {
            switch future.resultIfAvailable {
            case .success?: ran += 1
            case .failure(let error)?:
                XCTAssertEqual(error as? EventLoopError, .shutDown)
                refused += 1
            case nil:
                XCTFail("a future submitted around shutdown never completed")
                return
            }
        }
        XCTAssertEqual(ran + refused, all.count)
        XCTAssertGreaterThan(ran, 0)
    }

    func testShutdownClosesOpenChannelsFiringInactiveOnceAndCompletingTheirCloseFutures() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let serverLog = ServerLog()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(serverLog.newRecord(keepsBytes: false)), EchoingHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)
        let address = try XCTUnwrap(server.localAddress)

        let clientRecord = ConnectionRecord(name: "client", expectedBytes: 5)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(clientRecord)) }
            .connect(to: address).get(within: 10)
        try await client.writeAndFlush(ByteBuffer(string: "hello")).get(within: 10)
        await fulfillment(of: [clientRecord.receivedAll], timeout: 10)
        let child = try XCTUnwrap(serverLog.records.first)

        try await group.shutdownGracefully()

        await fulfillment(of: [clientRecord.inactive, child.inactive], timeout: 5)
        XCTAssertTrue(client.closeFuture.isFulfilled, "the client's close future did not complete at shutdown")
        XCTAssertTrue(server.closeFuture.isFulfilled, "the listener's close future did not complete at shutdown")
        XCTAssertFalse(client.isActive)
        XCTAssertFalse(server.isActive)
        XCTAssertEqual(clientRecord.snapshot.inactiveCount, 1)
        XCTAssertEqual(child.snapshot.inactiveCount, 1)
        XCTAssertEqual(serverLog.records.count, 1)
    }

    // MARK: Executors

    func testAnActorWhoseExecutorIsTheLoopRunsItsMethodsOnTheLoopThread() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.epollLoops[1]
        let actor = LoopIsolatedCounter(loop: loop)
        for expected in 1...100 {
            let (onLoop, value) = await actor.increment()
            XCTAssertTrue(onLoop, "an actor method ran off the loop's thread")
            XCTAssertEqual(value, expected)
        }
        // Many concurrent callers: still serialised, still on the loop.
        let results = await withTaskGroup(of: Bool.self, returning: [Bool].self) { tasks in
            for _ in 0..<200 { tasks.addTask { await actor.increment().onLoop } }
            return await tasks.reduce(into: []) { $0.append($1) }
        }
        XCTAssertEqual(results.count, 200)
        XCTAssertTrue(results.allSatisfy { $0 })
        let total = await actor.value
        XCTAssertEqual(total, 300)
        try await group.shutdownGracefully()
    }

    func testATaskPreferringTheLoopAsItsExecutorRunsOnTheLoopThread() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let onLoop = await Task(executorPreference: loop) { loop.inEventLoop }.value
        XCTAssertTrue(onLoop)
        let afterSuspension = await Task(executorPreference: loop) { () async -> Bool in
            _ = try? await loop.submit { 1 }.get()
            return loop.inEventLoop
        }.value
        XCTAssertTrue(afterSuspension, "the task left the loop after a suspension")
        XCTAssertFalse(loop.inEventLoop)
        try await group.shutdownGracefully()
    }
}

// MARK: - Support

private struct LoopTestError: Error, Equatable {
    var code: Int
}

private struct TimerFiring: Sendable {
    var index: Int
    var deadline: Deadline
    var firedAt: Deadline
    var onLoop: Bool
}

/// Counts how often each of `threads × tasksPerThread` tasks ran, where, and in what order per thread.
private final class TaskLedger: Sendable {
    private struct State {
        var runs: [Int32]
        var lastIndex: [Int]
        var offLoop = 0
        var outOfOrder = 0
    }

    private let state: LockedValue<State>
    private let tasksPerThread: Int

    init(threads: Int, tasksPerThread: Int) {
        self.tasksPerThread = tasksPerThread
        state = LockedValue(State(runs: Array(repeating: 0, count: threads * tasksPerThread), lastIndex: Array(repeating: -1, count: threads)))
    }

    func ran(thread: Int, index: Int, onLoop: Bool) {
        state.withLock { state in
            state.runs[thread * tasksPerThread + index] += 1
            if !onLoop { state.offLoop += 1 }
            if index <= state.lastIndex[thread] { state.outOfOrder += 1 }
            state.lastIndex[thread] = index
        }
    }

    var summary: (total: Int, notExactlyOnce: Int, offLoop: Int, outOfOrder: Int) {
        state.withLock { state in
            (state.runs.reduce(0) { $0 + Int($1) }, state.runs.filter { $0 != 1 }.count, state.offLoop, state.outOfOrder)
        }
    }
}

/// An actor that runs on an event loop's thread.
private actor LoopIsolatedCounter {
    let loop: EpollEventLoop
    private(set) var value = 0

    init(loop: EpollEventLoop) { self.loop = loop }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    func increment() -> (onLoop: Bool, value: Int) {
        value += 1
        return (loop.inEventLoop, value)
    }
}
