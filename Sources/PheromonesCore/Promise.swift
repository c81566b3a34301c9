/// The write side of a ``Future``: completes it exactly once, from any thread.
///
/// Completing a promise off its loop hands the result to the loop, where the future's callbacks run.
public struct Promise<Value>: Sendable {
    /// The future this promise completes.
    public let futureResult: Future<Value>

    /// Creates a promise whose future completes on `eventLoop`.
    @inlinable
    public init(eventLoop: any EventLoop) {
        futureResult = Future(eventLoop: eventLoop)
    }

    /// Succeeds the future with `value`.
    public func succeed(_ value: Value) { futureResult.complete(.success(value)) }

    /// Fails the future with `error`.
    public func fail(_ error: any Error) { futureResult.complete(.failure(error)) }

    /// Completes the future with `result`.
    public func complete(_ result: Result<Value, any Error>) { futureResult.complete(result) }

    /// Completes the future like `future` completes.
    public func completeWith(_ future: Future<Value>) { future.cascade(to: self) }

    /// Succeeds the future unless it has already completed. Returns whether this call completed it.
    @discardableResult
    public func trySucceed(_ value: Value) -> Bool { tryComplete(.success(value)) }

    /// Fails the future unless it has already completed. Returns whether this call completed it.
    @discardableResult
    public func tryFail(_ error: any Error) -> Bool { tryComplete(.failure(error)) }

    /// Completes the future unless it has already completed. Returns whether this call completed it.
    @discardableResult
    public func tryComplete(_ result: Result<Value, any Error>) -> Bool {
        futureResult.tryComplete(result)
    }
}

extension Promise where Value == Void {
    /// Succeeds a `Void` future.
    public func succeed() { succeed(()) }
}
