import Synchronization

/// The result of an operation that completes later on an event loop.
///
/// A future is completed exactly once, through its ``Promise``. Callbacks registered with
/// ``whenComplete(_:)`` run on the future's ``eventLoop``, in registration order. ``get()`` lets
/// async code await the result from any thread.
///
/// Futures are not on the per-message hot path: a write without a promise creates none.
public final class Future<Value>: @unchecked Sendable {
    // Safe to share: `state` is only read and written under its `Mutex`, and callbacks are only
    // invoked on `eventLoop` (or inline for `get()`, whose continuation is thread-safe).
    /// The loop on which this future's callbacks run.
    public let eventLoop: any EventLoop
    private let state: Mutex<State>

    // Unchecked: a `State` only ever lives inside `state`'s mutex, and what leaves it is handed over
    // in an `UnsafeTransfer` by its only owner.
    private struct State: @unchecked Sendable {
        var result: Result<Value, any Error>?
        var callbacks: Callbacks = .none
    }

    typealias Callback = (Result<Value, any Error>) -> Void

    private enum Callbacks {
        case none
        case one(Callback)
        case many([Callback])

        mutating func append(_ callback: @escaping Callback) {
            switch self {
            case .none: self = .one(callback)
            case .one(let first): self = .many([first, callback])
            case .many(var all):
                self = .none
                all.append(callback)
                self = .many(all)
            }
        }

        func run(with result: Result<Value, any Error>) {
            switch self {
            case .none: break
            case .one(let callback): callback(result)
            case .many(let all): for callback in all { callback(result) }
            }
        }
    }

    @usableFromInline
    init(eventLoop: any EventLoop, result: Result<Value, any Error>? = nil) {
        self.eventLoop = eventLoop
        self.state = Mutex(State(result: result))
    }

    /// Whether the future has completed. A snapshot: it may change right after it is read.
    public var isFulfilled: Bool { state.withLock { $0.result != nil } }

    /// The result if the future has completed.
    public var resultIfAvailable: Result<Value, any Error>? {
        state.withLock { state in
            let result = state.result
            return UnsafeTransfer(result)
        }.value
    }

    // MARK: Completion (through Promise)

    func complete(_ result: Result<Value, any Error>) {
        let completed = tryComplete(result)
        assert(completed, "a promise was completed twice")
    }

    func tryComplete(_ result: Result<Value, any Error>) -> Bool {
        let callbacks: UnsafeTransfer<Callbacks>? = state.withLock { state in
            guard state.result == nil else { return nil }
            state.result = result
            let callbacks = state.callbacks
            state.callbacks = .none
            return UnsafeTransfer(callbacks)
        }
        guard let callbacks else { return false }
        if case .none = callbacks.value { return true }
        if eventLoop.inEventLoop {
            callbacks.value.run(with: result)
        } else {
            let transfer = UnsafeTransfer((callbacks.value, result))
            eventLoop.execute { transfer.value.0.run(with: transfer.value.1) }
        }
        return true
    }

    // MARK: Observing

    /// Calls `callback` on the loop with the result once the future completes.
    public func whenComplete(_ callback: @escaping @Sendable (Result<Value, any Error>) -> Void) {
        addCallback(callback)
    }

    /// Calls `callback` on the loop when the future completes, for callers already on the loop.
    ///
    /// The callback need not be `Sendable` because it never leaves the loop's thread; calling this
    /// off the loop is a programming error (checked in debug builds).
    public func whenCompleteOnLoop(_ callback: @escaping (Result<Value, any Error>) -> Void) {
        eventLoop.assertInEventLoop()
        addCallback(callback)
    }

    /// Calls `callback` on the loop with the value if the future succeeds.
    public func whenSuccess(_ callback: @escaping @Sendable (Value) -> Void) {
        whenComplete { if case .success(let value) = $0 { callback(value) } }
    }

    /// Calls `callback` on the loop with the error if the future fails.
    public func whenFailure(_ callback: @escaping @Sendable (any Error) -> Void) {
        whenComplete { if case .failure(let error) = $0 { callback(error) } }
    }

    private func addCallback(_ callback: @escaping Callback) {
        let completed: UnsafeTransfer<Result<Value, any Error>>? = state.withLock { state in
            if let result = state.result { return UnsafeTransfer(result) }
            state.callbacks.append(callback)
            return nil
        }
        guard let completed else { return }
        if eventLoop.inEventLoop {
            callback(completed.value)
        } else {
            let transfer = UnsafeTransfer((callback, completed.value))
            eventLoop.execute { transfer.value.0(transfer.value.1) }
        }
    }

    // MARK: Transforming

    /// A future of `transform` applied to this future's value; a thrown error fails it.
    public func map<NewValue>(_ transform: @escaping @Sendable (Value) throws -> NewValue) -> Future<NewValue> {
        let next = Promise<NewValue>(eventLoop: eventLoop)
        addCallback { result in
            switch result {
            case .success(let value):
                do { next.succeed(try transform(value)) } catch { next.fail(error) }
            case .failure(let error):
                next.fail(error)
            }
        }
        return next.futureResult
    }

    /// A future that completes like the future `transform` returns for this future's value.
    public func flatMap<NewValue>(_ transform: @escaping @Sendable (Value) -> Future<NewValue>) -> Future<NewValue> {
        let next = Promise<NewValue>(eventLoop: eventLoop)
        addCallback { result in
            switch result {
            case .success(let value): transform(value).cascade(to: next)
            case .failure(let error): next.fail(error)
            }
        }
        return next.futureResult
    }

    /// A future that replaces a failure with the value `recovery` returns (or the error it throws).
    public func recover(_ recovery: @escaping @Sendable (any Error) throws -> Value) -> Future<Value> {
        let next = Promise<Value>(eventLoop: eventLoop)
        addCallback { result in
            switch result {
            case .success(let value): next.succeed(value)
            case .failure(let error):
                do { next.succeed(try recovery(error)) } catch { next.fail(error) }
            }
        }
        return next.futureResult
    }

    /// Completes `promise` (if any) with this future's result.
    public func cascade(to promise: Promise<Value>?) {
        guard let promise else { return }
        addCallback { promise.complete($0) }
    }

    /// The same result, delivered on `loop`.
    public func hop(to loop: any EventLoop) -> Future<Value> {
        if loop === eventLoop { return self }
        let next = Promise<Value>(eventLoop: loop)
        cascade(to: next)
        return next.futureResult
    }

    /// A future of `Void` that completes when this one does, with the same error.
    public func discardingValue() -> Future<Void> { map { _ in () } }
}

extension Future where Value: Sendable {
    /// Waits for the result without blocking a thread. Callable from any task or thread.
    public func get() async throws -> Value {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            // Resuming a continuation is thread-safe, so the callback may run inline.
            let completed: Result<Value, any Error>? = state.withLock { state in
                if let result = state.result { return result }
                state.callbacks.append { continuation.resume(with: $0) }
                return nil
            }
            if let completed { continuation.resume(with: completed) }
        }
    }
}

extension Future {
    /// A future that succeeds when all `futures` succeed, or fails with the first failure.
    public static func andAllSucceed(_ futures: [Future<Value>], on loop: any EventLoop) -> Future<Void> {
        let promise = Promise<Void>(eventLoop: loop)
        guard !futures.isEmpty else {
            promise.succeed(())
            return promise.futureResult
        }
        let remaining = Mutex(futures.count)
        for future in futures {
            future.whenComplete { result in
                switch result {
                case .failure(let error): promise.tryFail(error)
                case .success:
                    if remaining.withLock({ $0 -= 1; return $0 }) == 0 { promise.trySucceed(()) }
                }
            }
        }
        return promise.futureResult
    }

    /// A future of every result, in the order of `futures`, once all have completed.
    public static func whenAllComplete(_ futures: [Future<Value>], on loop: any EventLoop) -> Future<[Result<Value, any Error>]> {
        let promise = Promise<[Result<Value, any Error>]>(eventLoop: loop)
        guard !futures.isEmpty else {
            promise.succeed([])
            return promise.futureResult
        }
        let collected = Mutex(UnsafeTransfer([Result<Value, any Error>?](repeating: nil, count: futures.count)))
        let remaining = Mutex(futures.count)
        for (index, future) in futures.enumerated() {
            future.whenComplete { result in
                collected.withLock { $0.value[index] = result }
                if remaining.withLock({ $0 -= 1; return $0 }) == 0 {
                    let all = collected.withLock { $0.value.map { $0! } }
                    promise.succeed(all)
                }
            }
        }
        return promise.futureResult
    }
}

/// A value moved to another thread by its only owner.
///
/// Used where the compiler cannot see that ownership moves with the value (a result handed from the
/// completing thread to the loop, callbacks taken out from under a lock).
@usableFromInline
struct UnsafeTransfer<Wrapped>: @unchecked Sendable {
    // Safe: each use hands the wrapped value over; the sender keeps no access to it afterwards.
    @usableFromInline var value: Wrapped
    @inlinable init(_ value: Wrapped) { self.value = value }
}
