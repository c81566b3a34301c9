import XCTest

import Pheromones

private struct CombinatorError: Error, Equatable {
    var code: Int
}

private func result<Value>(of future: Future<Value>) -> Result<Value, any Error>? { future.resultIfAvailable }

/// `flatMapError`, `always`, `and`, `fold`, `reduce` and `whenAllSucceed`, with NIO's meanings.
final class FutureCombinatorTests: XCTestCase {
    func testFlatMapErrorReplacesAFailureWithAnotherFutureAndLetsASuccessThrough() throws {
        let loop = EmbeddedEventLoop()
        let recovered = loop.makeFailedFuture(CombinatorError(code: 1)).flatMapError { _ in loop.makeSucceededFuture(5) }
        XCTAssertEqual(try result(of: recovered)?.get(), 5)
        let untouched = loop.makeSucceededFuture(3).flatMapError { _ in loop.makeSucceededFuture(5) }
        XCTAssertEqual(try result(of: untouched)?.get(), 3)
        let failedAgain: Future<Int> = loop.makeFailedFuture(CombinatorError(code: 1))
            .flatMapError { _ in loop.makeFailedFuture(CombinatorError(code: 2)) }
        XCTAssertThrowsError(try result(of: failedAgain)?.get()) { XCTAssertEqual($0 as? CombinatorError, CombinatorError(code: 2)) }
    }

    func testAlwaysRunsForBothOutcomesBeforeItsFutureCompletesWithTheSameResult() throws {
        let loop = EmbeddedEventLoop()
        let seen = LockedValue<[String]>([])
        let promise = loop.makePromise(of: Int.self)
        let after = promise.futureResult.always { result in seen.withLock { $0.append("ran: \((try? result.get()) ?? -1)") } }
        XCTAssertFalse(after.isFulfilled)
        promise.succeed(7)
        XCTAssertEqual(try result(of: after)?.get(), 7)
        (loop.makeFailedFuture(CombinatorError(code: 3)) as Future<Int>).always { _ in seen.withLock { $0.append("ran on failure") } }
        XCTAssertEqual(seen.withLock { $0 }, ["ran: 7", "ran on failure"])
    }

    func testAndPairsTwoValuesAndFailsWithEitherFailure() throws {
        let loop = EmbeddedEventLoop()
        let first = loop.makePromise(of: Int.self)
        let second = loop.makePromise(of: String.self)
        let both = first.futureResult.and(second.futureResult)
        second.succeed("b")
        XCTAssertFalse(both.isFulfilled)
        first.succeed(1)
        let pair = try XCTUnwrap(result(of: both)).get()
        XCTAssertEqual(pair.0, 1)
        XCTAssertEqual(pair.1, "b")
        let failed = loop.makeSucceededFuture(1).and(loop.makeFailedFuture(CombinatorError(code: 4)) as Future<Int>)
        XCTAssertThrowsError(try result(of: failed)?.get())
    }

    func testFoldAndReduceCombineInOrderAndStopAtTheFirstFailure() throws {
        let loop = EmbeddedEventLoop()
        let parts = ["a", "b", "c"].map { loop.makeSucceededFuture($0) }
        let folded = loop.makeSucceededFuture("").fold(parts) { text, part in loop.makeSucceededFuture(text + part) }
        XCTAssertEqual(try result(of: folded)?.get(), "abc")
        XCTAssertEqual(try result(of: Future.reduce(10, [1, 2, 3].map { loop.makeSucceededFuture($0) }, on: loop, +))?.get(), 16)

        let calls = LockedValue(0)
        let broken = [loop.makeSucceededFuture(1), loop.makeFailedFuture(CombinatorError(code: 5)), loop.makeSucceededFuture(3)]
        let failed = loop.makeSucceededFuture(0).fold(broken) { sum, next in
            calls.withLock { $0 += 1 }
            return loop.makeSucceededFuture(sum + next)
        }
        XCTAssertThrowsError(try result(of: failed)?.get()) { XCTAssertEqual($0 as? CombinatorError, CombinatorError(code: 5)) }
        XCTAssertEqual(calls.withLock { $0 }, 1, "the fold went on past the failure")
    }

    func testWhenAllSucceedGivesTheValuesInOrderOrTheFirstFailureAtOnce() throws {
        let loop = EmbeddedEventLoop()
        let promises = (0..<3).map { _ in loop.makePromise(of: Int?.self) }
        let all = Future.whenAllSucceed(promises.map(\.futureResult), on: loop)
        promises[2].succeed(nil)
        promises[0].succeed(0)
        XCTAssertFalse(all.isFulfilled)
        promises[1].succeed(1)
        XCTAssertEqual(try result(of: all)?.get(), [0, 1, nil])

        let pending = loop.makePromise(of: Int.self)
        let failing = Future.whenAllSucceed([pending.futureResult, loop.makeFailedFuture(CombinatorError(code: 6))], on: loop)
        XCTAssertThrowsError(try result(of: failing)?.get(), "it waited for the pending future")
        pending.succeed(1)
    }
}
