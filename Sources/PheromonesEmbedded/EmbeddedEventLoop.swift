import DequeModule
import PheromonesCore

/// An event loop for unit tests: no thread, no I/O, and a virtual clock that only moves when the
/// test moves it.
///
/// Tasks run when the test calls ``run()`` or ``advanceTime(by:)``; timers fire in deadline order as
/// virtual time passes them, each seeing ``now`` equal to its own deadline. Tests are therefore
/// deterministic: a 30-second idle timeout is tested in microseconds.
///
/// The loop is confined to the test's thread, and ``inEventLoop`` is always true.
// Unchecked: an embedded loop belongs to the single thread of the test that drives it; like
// SwiftNIO's EmbeddedEventLoop it is not safe to use from several threads.
public final class EmbeddedEventLoop: EventLoop, @unchecked Sendable {
    private var tasks: Deque<() -> Void> = []
    private var timers = TimerHeap()
    private var virtualNow: Deadline
    private var shutDown = false

    /// Creates a loop whose clock starts at `start`.
    public init(start: Deadline = Deadline(uptimeNanoseconds: 0)) {
        virtualNow = start
    }

    /// Always true: the test's thread is the loop's thread.
    public var inEventLoop: Bool { true }
    /// The virtual time.
    public var now: Deadline { virtualNow }
    /// Whether ``shutdownGracefully()`` has been called.
    public var isShuttingDown: Bool { shutDown }
    /// The number of timers waiting.
    public var pendingTimerCount: Int { timers.count }

    /// Queues `task`; it runs at the next ``run()`` or ``advanceTime(by:)``.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        guard !shutDown else { return }
        tasks.append(task)
    }

    /// Schedules `task` at virtual time `deadline`.
    @discardableResult
    public func scheduleTask<T>(deadline: Deadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise = makePromise(of: T.self)
        guard !shutDown else {
            promise.fail(EventLoopError.shutDown)
            return Scheduled(futureResult: promise.futureResult, cancellation: {})
        }
        let entry = timers.insert(
            deadline: deadline,
            task: { do { promise.succeed(try task()) } catch { promise.fail(error) } },
            // Called by `cancel` and by `shutdownGracefully`, which fails the timer with `shutDown`.
            onCancel: { [weak self] in
                promise.fail(self?.shutDown == true ? EventLoopError.shutDown : EventLoopError.cancelled)
            })
        let cancel = UnsafeEntry(entry: entry, loop: self)
        return Scheduled(futureResult: promise.futureResult) { cancel.cancel() }
    }

    /// Runs every queued task (and tasks they queue) and every timer already due.
    public func run() {
        advanceTime(by: .zero)
    }

    /// Moves the clock forward by `amount`, running due timers in order and the tasks they queue.
    public func advanceTime(by amount: TimeAmount) {
        advanceTime(to: virtualNow + amount)
    }

    /// Moves the clock forward to `deadline`, running due timers in order and the tasks they queue.
    public func advanceTime(to deadline: Deadline) {
        runQueuedTasks()
        while let timer = timers.popExpired(now: deadline) {
            if timer.deadline > virtualNow { virtualNow = timer.deadline }
            timer.task?()
            runQueuedTasks()
        }
        if deadline > virtualNow { virtualNow = deadline }
    }

    /// Runs queued tasks, fails the waiting timers with ``EventLoopError/shutDown`` and refuses new work.
    public func shutdownGracefully() {
        runQueuedTasks()
        shutDown = true
        for timer in timers.removeAll() {
            timer.task = nil
            timer.onCancel?()
        }
        tasks.removeAll()
    }

    private func runQueuedTasks() {
        while let task = tasks.popFirst() { task() }
    }

    fileprivate func cancel(_ entry: TimerEntry) {
        if timers.remove(entry) { entry.onCancel?() }
    }
}

/// Lets a `Scheduled` handle (which is `Sendable`) cancel an entry of a loop-confined heap.
// Unchecked: embedded loops run on the test's single thread, so the entry is never shared.
private struct UnsafeEntry: @unchecked Sendable {
    let entry: TimerEntry
    let loop: EmbeddedEventLoop
    func cancel() { loop.cancel(entry) }
}
