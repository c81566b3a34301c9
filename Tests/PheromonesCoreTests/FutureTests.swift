import Synchronization
import XCTest

import Pheromones

/// An ordered record that `@Sendable` callbacks can append to.
private final class CallbackLog: Sendable {
    private let storage = LockedValue<[String]>([])

    func record(_ entry: String) { storage.withLock { $0.append(entry) } }
    var entries: [String] { storage.withLock { $0 } }
}

private struct FutureTestError: Error, Equatable {
    var code: Int
}

private func value<Value>(of future: Future<Value>, file: StaticString = #filePath, line: UInt = #line) -> Value? {
    switch future.resultIfAvailable {
    case .success(let value)?: return value
    case .failure(let error)?:
        XCTFail("the future failed with \(error)", file: file, line: line)
        return nil
    case nil:
        XCTFail("the future has not completed", file: file, line: line)
        return nil
    }
}

private func error<Value>(of future: Future<Value>, file: StaticString = #filePath, line: UInt = #line) -> (any Error)? {
    switch future.resultIfAvailable {
    case .success(let value)?:
        XCTFail("the future succeeded with \(value)", file: file, line: line)
        return nil
    case .failure(let error)?: return error
    case nil:
        XCTFail("the future has not completed", file: file, line: line)
        return nil
    }
}

final class FutureTests: XCTestCase {
    // MARK: Transforming

    func testMapTransformsTheValueOnceThePromiseSucceeds() {
        let loop = EmbeddedEventLoop()
        let promise = loop.makePromise(of: Int.self)
        let mapped = promise.futureResult.map { $0 * 2 }.map { "value \($0)" }
        XCTAssertFalse(mapped.isFulfilled)
        promise.succeed(21)
        XCTAssertEqual(value(of: mapped), "value 42")
    }

    func testAThrowingMapFailsTheResultAndSkipsLaterMaps() {
        let loop = EmbeddedEventLoop()
        let log = CallbackLog()
        let mapped = loop.makeSucceededFuture(1)
            .map { (_: Int) throws -> Int in throw FutureTestError(code: 7) }
            .map { value -> Int in
                log.record("should not run")
                return value
            }
        XCTAssertEqual(error(of: mapped) as? FutureTestError, FutureTestError(code: 7))
        XCTAssertEqual(log.entries, [])
    }

    func testMapPassesAFailureThroughUntouched() {
        let loop = EmbeddedEventLoop()
        let failed: Future<Int> = loop.makeFailedFuture(FutureTestError(code: 1))
        XCTAssertEqual(error(of: failed.map { $0 + 1 }) as? FutureTestError, FutureTestError(code: 1))
    }

    func testFlatMapCompletesWithTheInnerFutureOnceItCompletes() {
        let loop = EmbeddedEventLoop()
        let outer = loop.makePromise(of: Int.self)
        let inner = loop.makePromise(of: String.self)
        let chained = outer.futureResult.flatMap { number in inner.futureResult.map { "\($0)\(number)" } }

        outer.succeed(3)
        XCTAssertFalse(chained.isFulfilled, "the chain waits for the inner future")
        inner.succeed("x")
        XCTAssertEqual(value(of: chained), "x3")
    }

    func testFlatMapPropagatesTheOuterAndTheInnerFailure() {
        let loop = EmbeddedEventLoop()
        let outerFailed: Future<Int> = loop.makeFailedFuture(FutureTestError(code: 1))
        let viaOuter = outerFailed.flatMap { loop.makeSucceededFuture($0) }
        XCTAssertEqual(error(of: viaOuter) as? FutureTestError, FutureTestError(code: 1))

        let viaInner = loop.makeSucceededFuture(1).flatMap { (_: Int) -> Future<Int> in
            loop.makeFailedFuture(FutureTestError(code: 2))
        }
        XCTAssertEqual(error(of: viaInner) as? FutureTestError, FutureTestError(code: 2))
    }

    func testRecoverReplacesAFailureAndLeavesASuccessAlone() {
        let loop = EmbeddedEventLoop()
        let failed: Future<Int> = loop.makeFailedFuture(FutureTestError(code: 5))
        XCTAssertEqual(value(of: failed.recover { ($0 as? FutureTestError)?.code ?? -1 }), 5)

        let log = CallbackLog()
        let succeeded = loop.makeSucceededFuture(1).recover { _ in
            log.record("recovery ran")
            return 0
        }
        XCTAssertEqual(value(of: succeeded), 1)
        XCTAssertEqual(log.entries, [])

        let rethrown = failed.recover { _ in throw FutureTestError(code: 6) }
        XCTAssertEqual(error(of: rethrown) as? FutureTestError, FutureTestError(code: 6))
    }

    func testCascadeCompletesThePromiseWithTheSameResult() {
        let loop = EmbeddedEventLoop()
        let source = loop.makePromise(of: Int.self)
        let target = loop.makePromise(of: Int.self)
        source.futureResult.cascade(to: target)
        source.futureResult.cascade(to: nil)
        XCTAssertFalse(target.futureResult.isFulfilled)
        source.succeed(9)
        XCTAssertEqual(value(of: target.futureResult), 9)

        let failing = loop.makePromise(of: Int.self)
        let failTarget = loop.makePromise(of: Int.self)
        failTarget.completeWith(failing.futureResult)
        failing.fail(FutureTestError(code: 3))
        XCTAssertEqual(error(of: failTarget.futureResult) as? FutureTestError, FutureTestError(code: 3))
    }

    func testCallbacksRunInTheOrderTheyWereRegistered() {
        let loop = EmbeddedEventLoop()
        let log = CallbackLog()
        let promise = loop.makePromise(of: Int.self)
        let future = promise.futureResult
        let cascaded = loop.makePromise(of: Int.self)

        future.whenComplete { _ in log.record("whenComplete 1") }
        _ = future.map { value in log.record("map \(value)") }
        future.whenSuccess { value in log.record("whenSuccess \(value)") }
        _ = future.flatMap { value in
            log.record("flatMap \(value)")
            return loop.makeSucceededFuture(value)
        }
        future.whenFailure { _ in log.record("whenFailure") }
        future.cascade(to: cascaded)
        cascaded.futureResult.whenSuccess { _ in log.record("cascaded") }
        _ = future.recover { _ in
            log.record("recover")
            return 0
        }
        future.whenComplete { _ in log.record("whenComplete 2") }

        XCTAssertEqual(log.entries, [])
        promise.succeed(1)
        XCTAssertEqual(log.entries, [
            "whenComplete 1", "map 1", "whenSuccess 1", "flatMap 1", "cascaded", "whenComplete 2",
        ])
    }

    func testCallbacksRunWhetherRegisteredBeforeOrAfterCompletion() {
        let loop = EmbeddedEventLoop()
        let log = CallbackLog()
        let promise = loop.makePromise(of: String.self)
        promise.futureResult.whenSuccess { log.record("before: \($0)") }
        promise.succeed("done")
        XCTAssertEqual(log.entries, ["before: done"])
        promise.futureResult.whenSuccess { log.record("after: \($0)") }
        XCTAssertEqual(log.entries, ["before: done", "after: done"], "a late callback runs right away on the loop")

        let failing = loop.makePromise(of: String.self)
        failing.fail(FutureTestError(code: 4))
        failing.futureResult.whenFailure { log.record("failed after: \(($0 as? FutureTestError)?.code ?? -1)") }
        XCTAssertEqual(log.entries.last, "failed after: 4")
    }

    func testAChainBuiltAfterCompletionStillProducesItsValue() {
        let loop = EmbeddedEventLoop()
        let promise = loop.makePromise(of: Int.self)
        promise.succeed(10)
        let chained = promise.futureResult.map { $0 + 1 }.flatMap { loop.makeSucceededFuture($0 * 2) }
        XCTAssertEqual(value(of: chained), 22)
    }

    // MARK: Completing

    func testCompletingAPromiseTwiceKeepsTheFirstResult() {
        let loop = EmbeddedEventLoop()
        let promise = loop.makePromise(of: Int.self)
        let log = CallbackLog()
        promise.futureResult.whenComplete { _ in log.record("completed") }

        XCTAssertTrue(promise.trySucceed(1))
        XCTAssertFalse(promise.trySucceed(2))
        XCTAssertFalse(promise.tryFail(FutureTestError(code: 0)))
        XCTAssertFalse(promise.tryComplete(.success(3)))
        XCTAssertEqual(value(of: promise.futureResult), 1)
        XCTAssertEqual(log.entries, ["completed"], "callbacks run once")
    }

    func testTryFailOnAPendingPromiseFailsIt() {
        let loop = EmbeddedEventLoop()
        let promise = loop.makePromise(of: Void.self)
        XCTAssertFalse(promise.futureResult.isFulfilled)
        XCTAssertTrue(promise.tryFail(FutureTestError(code: 8)))
        XCTAssertTrue(promise.futureResult.isFulfilled)
        XCTAssertEqual(error(of: promise.futureResult) as? FutureTestError, FutureTestError(code: 8))
    }

    // MARK: Awaiting

    func testGetReturnsAValueCompletedAfterTheTaskStartedWaiting() async throws {
        let loop = EmbeddedEventLoop()
        let promise = loop.makePromise(of: Int.self)
        let waiter = Task { try await promise.futureResult.get() }
        // Let the waiter start waiting (no sleep: yielding gives it the thread; whichever order
        // results, `get()` must return the value).
        for _ in 0..<100 { await Task.yield() }
        promise.succeed(42)
        let result = try await waiter.value
        XCTAssertEqual(result, 42)
    }

    func testGetThrowsTheFailureOfAFailedFuture() async {
        let loop = EmbeddedEventLoop()
        let promise = loop.makePromise(of: Int.self)
        let waiter = Task { try await promise.futureResult.get() }
        promise.fail(FutureTestError(code: 13))
        do {
            _ = try await waiter.value
            XCTFail("get() should have thrown")
        } catch {
            XCTAssertEqual(error as? FutureTestError, FutureTestError(code: 13))
        }
    }

    func testGetOnACompletedFutureReturnsAtOnce() async throws {
        let loop = EmbeddedEventLoop()
        let result = try await loop.makeSucceededFuture("ready").get()
        XCTAssertEqual(result, "ready")
    }

    // MARK: Combining

    func testAndAllSucceedSucceedsOnlyOnceEveryFutureHasSucceeded() {
        let loop = EmbeddedEventLoop()
        let promises = (0..<3).map { _ in loop.makePromise(of: Int.self) }
        let all = Future.andAllSucceed(promises.map(\.futureResult), on: loop)
        promises[2].succeed(2)
        promises[0].succeed(0)
        XCTAssertFalse(all.isFulfilled)
        promises[1].succeed(1)
        XCTAssertNotNil(value(of: all))
    }

    func testAndAllSucceedFailsWithTheFirstFailureWithoutWaitingForTheRest() {
        let loop = EmbeddedEventLoop()
        let promises = (0..<3).map { _ in loop.makePromise(of: Int.self) }
        let all = Future.andAllSucceed(promises.map(\.futureResult), on: loop)
        promises[1].fail(FutureTestError(code: 1))
        XCTAssertEqual(error(of: all) as? FutureTestError, FutureTestError(code: 1))
        promises[0].fail(FutureTestError(code: 0))
        promises[2].succeed(2)
        XCTAssertEqual(error(of: all) as? FutureTestError, FutureTestError(code: 1))
    }

    func testAndAllSucceedOfNoFuturesSucceedsAtOnce() {
        let loop = EmbeddedEventLoop()
        XCTAssertNotNil(value(of: Future<Int>.andAllSucceed([], on: loop)))
    }

    func testWhenAllCompleteCollectsEveryResultInTheOrderOfTheFutures() {
        let loop = EmbeddedEventLoop()
        let promises = (0..<4).map { _ in loop.makePromise(of: Int.self) }
        let all = Future.whenAllComplete(promises.map(\.futureResult), on: loop)
        promises[3].succeed(3)
        promises[1].fail(FutureTestError(code: 1))
        promises[0].succeed(0)
        XCTAssertFalse(all.isFulfilled, "it waits for every future, failures included")
        promises[2].succeed(2)

        let results = value(of: all) ?? []
        XCTAssertEqual(results.count, 4)
        XCTAssertEqual(try results[0].get(), 0)
        XCTAssertThrowsError(try results[1].get()) { XCTAssertEqual($0 as? FutureTestError, FutureTestError(code: 1)) }
        XCTAssertEqual(try results[2].get(), 2)
        XCTAssertEqual(try results[3].get(), 3)

        XCTAssertEqual(value(of: Future<Int>.whenAllComplete([], on: loop))?.count, 0)
    }

    // MARK: Futures from the loop

    func testSubmitRunsTheTaskOnTheLoopAndCarriesItsResult() {
        let loop = EmbeddedEventLoop()
        let log = CallbackLog()
        let submitted = loop.submit {
            log.record("ran")
            return 5
        }
        let failing = loop.submit { () throws -> Int in throw FutureTestError(code: 2) }
        XCTAssertFalse(submitted.isFulfilled, "submitted work waits for the loop to run")
        XCTAssertEqual(log.entries, [])
        loop.run()
        XCTAssertEqual(value(of: submitted), 5)
        XCTAssertEqual(error(of: failing) as? FutureTestError, FutureTestError(code: 2))
        XCTAssertEqual(log.entries, ["ran"])

        let flat = loop.flatSubmit { loop.makeSucceededFuture("inner") }
        loop.run()
        XCTAssertEqual(value(of: flat), "inner")
    }

    func testSubmitOnAShutDownLoopFailsWithShutDownAndGetDoesNotHang() async {
        let loop = EmbeddedEventLoop()
        loop.shutdownGracefully()
        let log = CallbackLog()
        let submitted = loop.submit {
            log.record("ran")
            return 1
        }
        XCTAssertEqual(error(of: submitted) as? EventLoopError, .shutDown)
        do {
            _ = try await submitted.get()
            XCTFail("get() should have thrown")
        } catch {
            XCTAssertEqual(error as? EventLoopError, .shutDown)
        }
        loop.run()
        XCTAssertEqual(log.entries, [], "the task never runs")
    }

    func testHoppingToTheSameLoopKeepsTheFuture() {
        let loop = EmbeddedEventLoop()
        let other = EmbeddedEventLoop()
        let future = loop.makeSucceededFuture(1)
        XCTAssertTrue(future.hop(to: loop) === future)
        let hopped = future.hop(to: other)
        XCTAssertTrue(hopped.eventLoop === other)
        XCTAssertEqual(value(of: hopped), 1)
        XCTAssertNotNil(value(of: future.discardingValue()))
    }
}
