import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// The epoll loop at the edges of time and of its own life: timers that never come, a thread
/// that outlives the loop.
final class LoopTimeoutTests: XCTestCase {
    func testTimersAtTheDistantFutureOrTheLargestDelayNeitherFireNorStopTheLoop() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let never = [
            loop.scheduleTask(deadline: .distantFuture) {},
            loop.scheduleTask(in: TimeAmount(nanoseconds: .max)) {},
            loop.scheduleTask(in: .minutes(.max)) {},
            loop.scheduleTask(deadline: Deadline.now() + .seconds(Int64.max)) {},
        ]
        // The loop goes to sleep with those timers pending and still serves what comes next.
        for _ in 0..<3 {
            try await loop.submit { 1 }.get(within: 10)
            try await loop.scheduleTask(in: .milliseconds(1)) {}.futureResult.get(within: 10)
        }
        for scheduled in never {
            XCTAssertNil(scheduled.futureResult.resultIfAvailable, "a timer that never comes has fired")
            scheduled.cancel()
            await assertFails(scheduled.futureResult, with: EventLoopError.cancelled)
        }
        try await group.shutdownGracefully()
    }

    func testATimerScheduledByTheCallbackOfATimerThatShutdownFailedIsFailedTooNotParkedForever() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let second = LockedValue<Future<Void>?>(nil)
        let first = loop.scheduleTask(in: .seconds(3600)) {}
        first.futureResult.whenComplete { _ in
            second.withLock { $0 = loop.scheduleTask(in: .seconds(3600)) {}.futureResult }
        }
        try await group.shutdownGracefully()
        await assertFails(first.futureResult, with: EventLoopError.shutDown)
        let scheduledDuringShutdown = try XCTUnwrap(second.withLock { $0 })
        await assertFails(scheduledDuringShutdown, within: 5, with: EventLoopError.shutDown)
    }

    func testTheSleepTimeoutRoundsUpToMillisecondsAndClampsWithoutTrapping() {
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .nanoseconds(.min)), 0)
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .zero), 0)
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .nanoseconds(1)), 1)
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .milliseconds(5)), 5)
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .milliseconds(5) + .nanoseconds(1)), 6)
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .nanoseconds(.max - 1)), .max)
        XCTAssertEqual(EpollEventLoop.timeoutMs(until: .nanoseconds(.max)), .max)
    }

    func testAThreadStartedAfterTheLoopExitedIsNotMistakenForTheLoopEvenIfItGetsTheSameThreadID() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.epollLoops[0]
        let loopThread = try await loop.submit { UInt(pthread_self()) }.get(within: 10)
        try await group.shutdownGracefully()
        // glibc hands a joined thread's descriptor to the next thread it creates, so the new
        // thread usually has the loop thread's id: it must still not pass for the loop.
        let observed = LockedValue<(UInt, Bool)?>(nil)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(ProbeBox { observed.withLock { $0 = (UInt(pthread_self()), loop.inEventLoop) } })
        XCTAssertEqual(pthread_create(&thread, nil, { raw in
            Unmanaged<ProbeBox>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box.toOpaque()), 0)
        pthread_join(thread, nil)
        let (probeThread, passedForLoop) = try XCTUnwrap(observed.withLock { $0 })
        XCTAssertFalse(passedForLoop, "thread \(probeThread) (the loop's was \(loopThread)) passed for the exited loop")
    }
}

private final class ProbeBox {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}
