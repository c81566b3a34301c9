/// A single thread that runs I/O callbacks, tasks and timers, one at a time, in order.
///
/// Every ``Channel`` belongs to exactly one event loop for its whole life, and all of its state is
/// touched only on that loop's thread. That is what lets handlers be plain classes with no locks.
/// Work from other threads reaches a loop through ``execute(_:)``, ``submit(_:)`` and
/// ``scheduleTask(deadline:_:)``.
///
/// Two implementations ship: the epoll reactor in `PheromonesPosix` and the virtual-time loop in
/// `PheromonesEmbedded` for unit tests.
public protocol EventLoop: AnyObject, Sendable {
    /// Whether the calling thread is this loop's thread.
    var inEventLoop: Bool { get }

    /// The loop's current time. Real loops read the monotonic clock; embedded loops return their virtual time.
    var now: Deadline { get }

    /// Runs `task` on the loop, after the tasks already queued.
    ///
    /// From the loop's own thread this takes no lock. From other threads it goes through the loop's
    /// inbox and wakes the loop at most once per sleep. Once the loop has shut down the task is
    /// dropped; use ``submit(_:)`` to learn about that through a failed future.
    func execute(_ task: @escaping @Sendable () -> Void)

    /// Runs `task` on the loop at `deadline` (or as soon after as the loop gets to it).
    ///
    /// - Returns: a handle whose future completes with the task's result, and which can cancel the
    ///   task in O(log n) until it has started.
    @discardableResult
    func scheduleTask<T>(deadline: Deadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T>

    /// Whether the loop has begun shutting down and refuses new work.
    var isShuttingDown: Bool { get }

    /// Runs `task` on the loop, like ``execute(_:)``, and returns true; once the loop has shut down
    /// it runs nothing and returns false.
    func tryExecute(_ task: @escaping @Sendable () -> Void) -> Bool

    /// Runs `task` on the loop and returns a future of its result; a loop that has shut down returns
    /// a future already failed with ``EventLoopError/shutDown`` (never one that hangs).
    func submit<T>(_ task: @escaping @Sendable () throws -> T) -> Future<T>
}

extension EventLoop {
    /// Runs `task` unless the loop is shutting down (implementations that know better override this).
    public func tryExecute(_ task: @escaping @Sendable () -> Void) -> Bool {
        guard !isShuttingDown else { return false }
        execute(task)
        return true
    }

    /// Runs `task` on the loop after `delay`.
    @discardableResult
    @inlinable
    public func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(deadline: now + delay, task)
    }

    /// Runs `task` on the loop and returns a future of its result.
    ///
    /// If the loop has shut down, the future is already failed with ``EventLoopError/shutDown``.
    public func submit<T>(_ task: @escaping @Sendable () throws -> T) -> Future<T> {
        let promise = makePromise(of: T.self)
        guard !isShuttingDown else {
            promise.fail(EventLoopError.shutDown)
            return promise.futureResult
        }
        execute {
            do { promise.succeed(try task()) } catch { promise.fail(error) }
        }
        return promise.futureResult
    }

    /// Runs `task` on the loop and returns the future it produces.
    public func flatSubmit<T>(_ task: @escaping @Sendable () -> Future<T>) -> Future<T> {
        submit(task).flatMap { $0 }
    }

    /// Creates a promise whose future completes on this loop.
    @inlinable
    public func makePromise<T>(of type: T.Type = T.self) -> Promise<T> {
        Promise(eventLoop: self)
    }

    /// A future that has already succeeded with `value`.
    public func makeSucceededFuture<T>(_ value: T) -> Future<T> {
        Future(eventLoop: self, result: .success(value))
    }

    /// A future that has already failed with `error`.
    public func makeFailedFuture<T>(_ error: any Error) -> Future<T> {
        Future(eventLoop: self, result: .failure(error))
    }

    /// Traps in debug builds when called off this loop's thread.
    ///
    /// Every method that touches loop-confined state (channel state, pipelines, handler contexts)
    /// calls this, the way SwiftNIO calls `assertInEventLoop()`.
    @inlinable
    public func assertInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(inEventLoop, "called off the event loop's thread", file: file, line: line)
    }

    /// Traps, in all builds, when called off this loop's thread.
    @inlinable
    public func preconditionInEventLoop(file: StaticString = #fileID, line: UInt = #line) {
        precondition(inEventLoop, "called off the event loop's thread", file: file, line: line)
    }
}

/// A set of event loops that channels are spread over.
public protocol EventLoopGroup: AnyObject, Sendable {
    /// The next loop to place a new channel on (round robin).
    func next() -> any EventLoop

    /// Every loop in the group.
    var loops: [any EventLoop] { get }

    /// Closes every channel of every loop (their inactive events fire), runs the tasks already queued,
    /// fails the pending scheduled ones with ``EventLoopError/shutDown``, and joins the threads.
    func shutdownGracefully() async throws
}

/// Errors raised by event loops.
public enum EventLoopError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The loop has shut down and runs nothing more.
    case shutDown
    /// A scheduled task was cancelled before it ran.
    case cancelled
    /// An operation did not complete before its deadline.
    case timedOut(TimeAmount)

    public var description: String {
        switch self {
        case .shutDown: return "the event loop has shut down and accepts no more work"
        case .cancelled: return "the scheduled task was cancelled before it ran"
        case .timedOut(let amount): return "the operation timed out after \(amount)"
        }
    }
}

/// A task scheduled to run on an event loop at a deadline.
public struct Scheduled<T>: Sendable {
    /// Completes with the task's result, or fails with ``EventLoopError/cancelled`` when cancelled.
    public let futureResult: Future<T>
    @usableFromInline let cancellation: @Sendable () -> Void

    /// Creates a handle from a future and the action that cancels the task.
    public init(futureResult: Future<T>, cancellation: @escaping @Sendable () -> Void) {
        self.futureResult = futureResult
        self.cancellation = cancellation
    }

    /// Cancels the task if it has not started; its future then fails with ``EventLoopError/cancelled``.
    @inlinable public func cancel() { cancellation() }
}
