
/// The result of an operation that completes later on an event loop.
///
/// A future is completed exactly once, through its ``Promise``. Callbacks registered with
/// ``whenComplete(_:)`` run on the future's ``eventLoop``, in registration order. ``get()`` lets
/// async code await the result from any thread.
///
/// Futures are not on the per-message hot path: a write without a promise creates none.
// Safe to share: `state` is only read and written under `lock`, and callbacks are only
// invoked on `eventLoop` (or inline for `get()`, whose continuation is thread-safe).
public final class Future<Value>: @unchecked Sendable {
    /// The loop on which this future's callbacks run.
    public let eventLoop: any EventLoop


    typealias Callback = (Result<Value, any Error>) -> Void

    /// A callback, and whether it may only ever run on the loop (registered with
    /// ``whenCompleteOnLoop(_:)``, so possibly touching loop-confined state).
    private struct Entry {
        let callback: Callback
        let loopOnly: Bool
    }

    private enum Callbacks {
        case none
        case one(Entry)
        case many([Entry])

        mutating func append(_ entry: Entry) {
            switch self {
            case .none: self = .one(entry)
            case .one(let first): self = .many([first, entry])
            case .many(var all):
                self = .none
                all.append(entry)
                self = .many(all)
            }
        }

        var isEmpty: Bool {
            if case .none = self { return true }
            return false
        }

        /// Runs the callbacks in order; off a loop that has exited, only those not bound to it.
        func run(with result: Result<Value, any Error>, onLoop: Bool) {
            switch self {
            case .none: break
            case .one(let entry): if onLoop || !entry.loopOnly { entry.callback(result) }
            case .many(let all): for entry in all where onLoop || !entry.loopOnly { entry.callback(result) }
            }
        }
    }

    // Unchecked: a `State` only ever lives inside `state`'s mutex, and what leaves it is handed over
    // in an `UnsafeTransfer` by its only owner.
    private struct State: @unchecked Sendable {
        var result: Result<Value, any Error>?
        /// Run on the loop (or, once the loop has exited, wherever the future completes).
        var callbacks: Callbacks = .none
        /// Thread-safe (continuations of `get()`): run wherever the future completes, at once.
        var anywhereCallbacks: Callbacks = .none
    }

    /// Guards `state`: an inline lock word, not a `Mutex` (invisible to the thread sanitizer on
    /// Linux) nor a separate pthread lock (an allocation per future).
    private let lock = AtomicLock()
    // `@exclusivity(unchecked)`: threads take turns through `lock`, which the runtime's per-thread
    // exclusivity tracking cannot see.
    @exclusivity(unchecked) private var state: State

    @usableFromInline
    init(eventLoop: any EventLoop, result: Result<Value, any Error>? = nil) {
        self.eventLoop = eventLoop
        self.state = State(result: result)
    }

    /// Runs `body` on the state, holding the lock. `body` must not call out (no callbacks).
    private func withLockedState<Result>(_ body: (inout State) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&state)
    }

    /// Whether the future has completed. A snapshot: it may change right after it is read.
    public var isFulfilled: Bool { withLockedState { $0.result != nil } }

    /// The result if the future has completed.
    public var resultIfAvailable: Result<Value, any Error>? {
        withLockedState { state in
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
        let taken: UnsafeTransfer<(Callbacks, Callbacks)>? = withLockedState { state in
            guard state.result == nil else { return nil }
            state.result = result
            let callbacks = (state.callbacks, state.anywhereCallbacks)
            state.callbacks = .none
            state.anywhereCallbacks = .none
            return UnsafeTransfer(callbacks)
        }
        guard let taken else { return false }
        taken.value.1.run(with: result, onLoop: false)
        let callbacks = UnsafeTransfer(taken.value.0)
        if !callbacks.value.isEmpty {
            deliver(UnsafeTransfer((callbacks.value, result))) { $0.0.run(with: $0.1, onLoop: $1) }
        }
        return true
    }

    /// Runs `body` on the loop: at once if already there, else through the loop's queue. A loop
    /// that has exited runs nothing more, so then `body` runs here, told it is off the loop (the
    /// loop's thread is gone, so nothing can race with it).
    private func deliver<Payload>(
        _ payload: UnsafeTransfer<Payload>, _ body: @escaping @Sendable (Payload, _ onLoop: Bool) -> Void
    ) {
        if eventLoop.inEventLoop { return body(payload.value, true) }
        if !eventLoop.tryExecute({ body(payload.value, true) }) { body(payload.value, false) }
    }

    // MARK: Observing

    /// Calls `callback` on the loop with the result once the future completes.
    public func whenComplete(_ callback: @escaping @Sendable (Result<Value, any Error>) -> Void) {
        addCallback(Entry(callback: callback, loopOnly: false))
    }

    /// Calls `callback` on the loop when the future completes, for callers already on the loop.
    ///
    /// The callback need not be `Sendable` because it never leaves the loop's thread; calling this
    /// off the loop is a programming error (checked in debug builds).
    public func whenCompleteOnLoop(_ callback: @escaping (Result<Value, any Error>) -> Void) {
        eventLoop.assertInEventLoop()
        addCallback(Entry(callback: callback, loopOnly: true))
    }

    /// Calls `callback` on the loop with the value if the future succeeds.
    public func whenSuccess(_ callback: @escaping @Sendable (Value) -> Void) {
        whenComplete { if case .success(let value) = $0 { callback(value) } }
    }

    /// Calls `callback` on the loop with the error if the future fails.
    public func whenFailure(_ callback: @escaping @Sendable (any Error) -> Void) {
        whenComplete { if case .failure(let error) = $0 { callback(error) } }
    }

    /// Registers a callback the transformations below use (they are all `Sendable`).
    private func addCallback(_ callback: @escaping @Sendable Callback) {
        addCallback(Entry(callback: callback, loopOnly: false))
    }

    private func addCallback(_ entry: Entry) {
        let completed: UnsafeTransfer<Result<Value, any Error>>? = withLockedState { state in
            if let result = state.result { return UnsafeTransfer(result) }
            state.callbacks.append(entry)
            return nil
        }
        guard let completed else { return }
        deliver(UnsafeTransfer((entry, completed.value))) { payload, onLoop in
            if onLoop || !payload.0.loopOnly { payload.0.callback(payload.1) }
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
        // Already complete: no suspension (which would cost a trip through the task's executor).
        if let completed = resultIfAvailable { return try completed.get() }
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
            // Resuming a continuation is thread-safe, so the callback may run inline.
            let completed: Result<Value, any Error>? = withLockedState { state in
                if let result = state.result { return result }
                state.anywhereCallbacks.append(Entry(callback: { continuation.resume(with: $0) }, loopOnly: false))
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
        let remaining = LockedValue(futures.count)
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
        let collected = LockedValue(UnsafeTransfer([Result<Value, any Error>?](repeating: nil, count: futures.count)))
        let remaining = LockedValue(futures.count)
        for (index, future) in futures.enumerated() {
            future.whenComplete { result in
                collected.withLock { $0.value[index] = result }
                if remaining.withLock({ $0 -= 1; return $0 }) == 0 {
                    let all = collected.withLock { $0.value.compactMap { $0 } }
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
// Safe: each use hands the wrapped value over; the sender keeps no access to it afterwards.
struct UnsafeTransfer<Wrapped>: @unchecked Sendable {
    @usableFromInline var value: Wrapped
    @inlinable init(_ value: Wrapped) { self.value = value }
}
