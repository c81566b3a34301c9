// Combinators beyond `map`, `flatMap` and `recover`, with SwiftNIO's names and meanings, so that code
// moving from NIO reads the same. Each one registers one callback and completes one new promise;
// callbacks run on the future's loop.

extension Future {
    /// A future that replaces a failure with the future `recovery` returns for it; a success passes
    /// through.
    public func flatMapError(_ recovery: @escaping @Sendable (any Error) -> Future<Value>) -> Future<Value> {
        let next = Promise<Value>(eventLoop: eventLoop)
        whenComplete { result in
            switch result {
            case .success: next.complete(result)
            case .failure(let error): recovery(error).cascade(to: next)
            }
        }
        return next.futureResult
    }

    /// Runs `body` with the result once it is known, and returns a future with the same result
    /// (completed after `body` has run).
    @discardableResult
    public func always(_ body: @escaping @Sendable (Result<Value, any Error>) -> Void) -> Future<Value> {
        let next = Promise<Value>(eventLoop: eventLoop)
        whenComplete { result in
            body(result)
            next.complete(result)
        }
        return next.futureResult
    }

    /// A future of both values once both futures have succeeded, or the first failure.
    public func and<Other>(_ other: Future<Other>) -> Future<(Value, Other)> {
        flatMap { first in
            let first = UnsafeTransfer(first)
            return other.hop(to: self.eventLoop).map { second in (first.value, second) }
        }
    }

    /// Folds `futures` into this future's value, one after another in order: each step waits for
    /// the next future and for the future `combine` returns. The first failure fails the result.
    public func fold<Element>(
        _ futures: [Future<Element>], with combine: @escaping @Sendable (Value, Element) -> Future<Value>
    ) -> Future<Value> {
        futures.reduce(self) { accumulated, next in
            accumulated.and(next).flatMap { pair in combine(pair.0, pair.1) }
        }
    }

    /// A future of `initial` combined with the values of `futures` in order, once all have
    /// succeeded; the first failure fails it.
    public static func reduce<Element>(
        _ initial: Value, _ futures: [Future<Element>], on loop: any EventLoop,
        _ combine: @escaping @Sendable (Value, Element) -> Value
    ) -> Future<Value> {
        let start = Promise<Value>(eventLoop: loop)
        start.succeed(initial)
        return start.futureResult.fold(futures) { accumulated, element in
            let promise = Promise<Value>(eventLoop: loop)
            promise.succeed(combine(accumulated, element))
            return promise.futureResult
        }
    }

    /// A future of every value, in the order of `futures`, once all have succeeded; the first
    /// failure fails it at once.
    public static func whenAllSucceed(_ futures: [Future<Value>], on loop: any EventLoop) -> Future<[Value]> {
        let promise = Promise<[Value]>(eventLoop: loop)
        andAllSucceed(futures, on: loop).whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success:
                // Every future has succeeded, so each one's value is there to take, in order.
                var values: [Value] = []
                values.reserveCapacity(futures.count)
                for future in futures {
                    if case .success(let value)? = future.resultIfAvailable { values.append(value) }
                }
                promise.succeed(values)
            }
        }
        return promise.futureResult
    }
}

extension Future {
    /// Blocks the calling thread until the future completes, and returns its value or throws its
    /// error: for code that is not async (tests, a `main` that sets things up).
    ///
    /// Waiting on the loop's own thread could never end (the loop is what completes the future), so
    /// it stops the program with a message saying so.
    public func wait(file: StaticString = #fileID, line: UInt = #line) throws -> Value {
        try wait(until: .distantFuture, file: file, line: line)
    }

    /// Like ``wait(file:line:)``, throwing ``EventLoopError/timedOut(_:)`` if the future has not
    /// completed within `timeout`.
    public func wait(timeout: TimeAmount, file: StaticString = #fileID, line: UInt = #line) throws -> Value {
        do {
            return try wait(until: .after(timeout), file: file, line: line)
        } catch WaitTimedOut.timedOut {
            throw EventLoopError.timedOut(timeout)
        }
    }

    private enum WaitTimedOut: Error { case timedOut }

    private func wait(until deadline: Deadline, file: StaticString, line: UInt) throws -> Value {
        precondition(
            !eventLoop.inEventLoop,
            "Future.wait() called on the thread of the future's own event loop, which would wait forever: use get() or a callback",
            file: file, line: line)
        if let completed = resultIfAvailable { return try completed.get() }
        let signal = CompletionSignal()
        let outcome = LockedValue<UnsafeTransfer<Result<Value, any Error>>?>(nil)
        whenComplete { result in
            outcome.withLock { $0 = UnsafeTransfer(result) }
            signal.signal()
        }
        guard signal.wait(until: deadline), let result = outcome.withLock({ $0?.value }) else { throw WaitTimedOut.timedOut }
        return try result.get()
    }
}
