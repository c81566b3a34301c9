import CoreMetrics
import DequeModule
import Glibc
import Logging
import PheromonesCore
import Synchronization

/// An event loop on one thread, wrapping one epoll instance: the reactor.
///
/// One turn of the loop, in the manner of redis' `ae.c`:
///
/// 1. run the timers that are due, then the queued tasks (the loop's own, without a lock, and
///    those other threads put in the inbox);
/// 2. *before sleep*: apply the interest changes channels asked for during the turn, in one pass;
/// 3. `epoll_wait`, for no longer than the nearest timer (not at all if tasks are waiting);
/// 4. for every ready descriptor, look its registration up in an array indexed by descriptor,
///    check the generation, and tell its channel it can read and/or write.
///
/// Loops are created by a ``MultiThreadedEventLoopGroup``. Channels never move between loops.
// Unchecked: the loop-confined state below (registrations, local tasks, timers, buffers) is only
// touched on the loop's thread, which every entry point checks (`assertInEventLoop`); what other
// threads reach is the `inbox` (under a lock), `state` and `threadID` (atomics) and the `waker`.
public final class EpollEventLoop: EventLoop, @unchecked Sendable {
    private enum LifeCycle: UInt8, AtomicRepresentable {
        case running, shuttingDown, shutDown
    }

    /// Per-descriptor registration, in an array indexed by descriptor.
    // The reference first, then the small fields: 24 bytes a slot, not 32 (padding before it).
    private struct Registration {
        var selectable: (any Selectable)?
        var generation: UInt32 = 0
        /// The interest epoll currently has (empty: not registered).
        var registered: Interest = []
        /// The interest the channel wants from the next sleep on.
        var desired: Interest = []
        var isQueuedForUpdate = false
    }

    package let logger: Logger
    /// The system calls this loop and its channels make (the seam tests inject faults through).
    package let posix: Posix
    private let poller: Poller
    private let waker: Waker
    private let threadID = Atomic<UInt>(0)
    private let state = Atomic<LifeCycle>(.running)

    // `@exclusivity(unchecked)`: loop-confined hot state. Only the loop's thread touches it, and no access
    // spans a call that could re-enter, so the runtime check (a thread-local lookup per access) buys nothing.
    /// The write-queue storage the loop's channels lend each other (see ``PendingWrites``).
    @exclusivity(unchecked) var spareWriteQueue = PendingWrites.Spare()
    @exclusivity(unchecked) private var registrations: [Registration] = []
    @exclusivity(unchecked) private var interestUpdates: [CInt] = []
    @exclusivity(unchecked) private var registeredCount = 0
    @exclusivity(unchecked) private var localTasks: Deque<() -> Void> = []
    private let inbox = LockedValue(Inbox())
    /// The queue swapped into the inbox when the loop takes the inbox's tasks (see `runTasks`).
    @exclusivity(unchecked) private var spareInbox: Deque<@Sendable () -> Void> = []
    @exclusivity(unchecked) private var timers = TimerHeap()
    /// Set once shutdown has failed the remaining timers: no timer can be added after that.
    private var timersClosed = false
    /// Set when `epoll_wait` failed with an error that retrying cannot mend: the loop shuts down.
    private var pollerFailed = false

    // Unchecked: holds `@Sendable` closures only; the struct is only touched under the mutex.
    private struct Inbox: @unchecked Sendable {
        var tasks: Deque<@Sendable () -> Void> = []
        var closed = false
    }

    /// The receive buffer shared by this loop's channels: a read fills it, the pipeline sees it, and
    /// if no handler kept a reference it is reused for the next read, so steady-state reads allocate
    /// nothing and idle connections hold no receive memory.
    @exclusivity(unchecked) package var receiveBuffer = ByteBuffer()
    /// The receive slab shared by this loop's datagram channels: one `recvmmsg` fills a slot of it
    /// per datagram and the pipeline sees slices of it. Reused for the next batch when no handler
    /// kept a slice (see ``DatagramChannel``).
    @exclusivity(unchecked) package var datagramSlab = ByteBuffer()
    /// What this loop reports through swift-metrics, or nil (the default: nothing is counted).
    let metrics: LoopMetrics?
    /// Scratch `iovec`s for `writev`, shared by this loop's channels (writes are synchronous).
    package let iovecs: UnsafeMutablePointer<iovec>
    package static let iovecCount = 1024

    init(logger: Logger, posix: Posix = .live, metrics: LoopMetrics? = nil) throws(IOError) {
        self.logger = logger
        self.posix = posix
        self.metrics = metrics
        poller = try Poller(posix: posix)
        waker = try Waker(posix: posix)
        iovecs = .allocate(capacity: Self.iovecCount)
        iovecs.initialize(repeating: iovec(), count: Self.iovecCount)
        try poller.register(Token(fd: waker.fd, generation: 0), interest: .readable)
    }

    deinit {
        iovecs.deallocate()
    }

    // MARK: EventLoop

    public var inEventLoop: Bool { threadID.load(ordering: .relaxed) == UInt(pthread_self()) }
    public var now: Deadline { .now() }
    public var isShuttingDown: Bool { state.load(ordering: .acquiring) != .running }

    /// How many eventfd writes other threads' submissions have cost so far (coalesced wake-ups
    /// cost none): for tests.
    package var wakeUpWriteCount: Int { waker.writeCount }

    public func execute(_ task: @escaping @Sendable () -> Void) {
        if inEventLoop {
            localTasks.append(task)
        } else {
            _ = enqueueFromOtherThread(task)
        }
    }

    public func tryExecute(_ task: @escaping @Sendable () -> Void) -> Bool {
        if inEventLoop {
            localTasks.append(task)
            return true
        }
        return enqueueFromOtherThread(task)
    }

    public func submit<T>(_ task: @escaping @Sendable () throws -> T) -> Future<T> {
        let promise = makePromise(of: T.self)
        let job: @Sendable () -> Void = { do { promise.succeed(try task()) } catch { promise.fail(error) } }
        if inEventLoop {
            guard state.load(ordering: .relaxed) == .running else {
                promise.fail(EventLoopError.shutDown)
                return promise.futureResult
            }
            localTasks.append(job)
        } else if !enqueueFromOtherThread(job) {
            promise.fail(EventLoopError.shutDown)
        }
        return promise.futureResult
    }

    @discardableResult
    public func scheduleTask<T>(deadline: Deadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise = makePromise(of: T.self)
        let handle = TimerHandle()
        let insert: @Sendable () -> Void = { [self] in
            guard !handle.isCancelled else { return }
            // Past the end of shutdown (a callback of a failed timer scheduling another), no turn
            // is left to run it: fail it now rather than park it forever.
            guard !timersClosed else {
                promise.fail(EventLoopError.shutDown)
                return
            }
            let entry = timers.insert(
                deadline: deadline,
                task: { do { promise.succeed(try task()) } catch { promise.fail(error) } },
                onCancel: { [self] in promise.fail(isShuttingDown ? EventLoopError.shutDown : EventLoopError.cancelled) })
            handle.entry = entry
        }
        if inEventLoop {
            insert()
        } else if !enqueueFromOtherThread(insert) {
            promise.fail(EventLoopError.shutDown)
        }
        return Scheduled(futureResult: promise.futureResult) { [self] in
            let cancel: @Sendable () -> Void = { [self] in
                if let entry = handle.entry {
                    if timers.remove(entry) { entry.onCancel?() }
                } else if !handle.isCancelled {
                    handle.isCancelled = true
                    promise.tryFail(EventLoopError.cancelled)
                }
            }
            if inEventLoop { cancel() } else { _ = enqueueFromOtherThread(cancel) }
        }
    }

    /// Puts a task in the inbox and wakes the loop. Returns false once the loop has exited.
    private func enqueueFromOtherThread(_ task: @escaping @Sendable () -> Void) -> Bool {
        let accepted = inbox.withLock { inbox in
            guard !inbox.closed else { return false }
            inbox.tasks.append(task)
            return true
        }
        if accepted { waker.wake() }
        return accepted
    }

    // MARK: Registrations (loop thread only)

    /// Registers `selectable` for `fd` with `interest`, and returns its token.
    package func register(_ selectable: any Selectable, fd: CInt, interest: Interest) throws(IOError) -> Token {
        assertInEventLoop()
        let index = Int(fd)
        if index >= registrations.count {
            registrations.append(contentsOf: repeatElement(Registration(), count: max(index + 1 - registrations.count, 64)))
        }
        registrations[index].generation &+= 1
        let token = Token(fd: fd, generation: registrations[index].generation)
        try poller.register(token, interest: interest)
        registrations[index].selectable = selectable
        registrations[index].registered = interest
        registrations[index].desired = interest
        registeredCount += 1
        return token
    }

    /// Asks for `interest` on `token`'s descriptor from the next sleep on (applied before sleeping).
    @inline(__always)
    package func setInterest(_ interest: Interest, for token: Token) {
        assertInEventLoop()
        let index = Int(token.fd)
        guard registrations[index].generation == token.generation, registrations[index].selectable != nil else { return }
        registrations[index].desired = interest
        if !registrations[index].isQueuedForUpdate {
            registrations[index].isQueuedForUpdate = true
            interestUpdates.append(token.fd)
        }
    }

    /// Removes `token`'s registration. Call before closing the descriptor.
    ///
    /// `closing`: the caller closes the descriptor right after, and it is the open file's only
    /// descriptor, so the registration is dropped without `epoll_ctl(DEL)`: closing the last
    /// descriptor of an open file removes it from every epoll instance by itself. The channels'
    /// sockets qualify: they are created close-on-exec and never duplicated. (Should one be
    /// duplicated behind the reactor's back anyway, by a `fork` without `exec`, say, its events
    /// carry the old generation and are ignored, though they wake the loop until that other
    /// descriptor is closed too.)
    package func deregister(_ token: Token, closing: Bool = false) {
        assertInEventLoop()
        let index = Int(token.fd)
        guard index < registrations.count, registrations[index].generation == token.generation,
              registrations[index].selectable != nil else { return }
        if !closing {
            do {
                try poller.deregister(fd: token.fd)
            } catch {
                logger.debug("epoll_ctl(DEL) failed", metadata: ["fd": "\(token.fd)", "error": "\(error)"])
            }
        }
        registrations[index].generation &+= 1
        registrations[index].selectable = nil
        registrations[index].registered = []
        registrations[index].desired = []
        registeredCount -= 1
    }

    /// The before-sleep hook: applies the interest changes collected during this turn.
    ///
    /// A change that fails (`epoll_ctl` MOD) closes its channel with the error: its registration no
    /// longer reports what it waits for, so its writes would stay stuck. The channels are told once
    /// the pass is over, since closing runs handlers that may queue changes of their own; those
    /// are applied by the next pass, before the loop sleeps.
    private func applyInterestUpdates() {
        while !interestUpdates.isEmpty {
            // Empty (no allocation) unless a change fails.
            var failures: [(selectable: any Selectable, error: IOError)] = []
            // By index: iterating the array itself would hold a second reference to its storage, and
            // the `removeAll(keepingCapacity:)` below would then copy it.
            for position in interestUpdates.indices {
                let fd = interestUpdates[position]
                let index = Int(fd)
                registrations[index].isQueuedForUpdate = false
                let registration = registrations[index]
                guard let selectable = registration.selectable, registration.desired != registration.registered else { continue }
                do {
                    try poller.reregister(Token(fd: fd, generation: registration.generation), interest: registration.desired)
                    registrations[index].registered = registration.desired
                } catch {
                    logger.warning("epoll_ctl(MOD) failed: closing the channel", metadata: ["fd": "\(fd)", "error": "\(error)"])
                    failures.append((selectable, error))
                }
            }
            interestUpdates.removeAll(keepingCapacity: true)
            for failure in failures { failure.selectable.registrationFailed(failure.error) }
        }
    }

    // MARK: The loop

    /// Runs the loop on the calling thread until shutdown completes.
    func run() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        // Once the loop has exited, no thread is its thread: the system may give a later thread the
        // same `pthread_t`, which must not pass for the loop.
        defer { threadID.store(0, ordering: .releasing) }
        Posix.ignoreSIGPIPE()
        if let metrics { sampleLag(into: metrics) }
        while true {
            runDueTimers()
            runTasks()
            if state.load(ordering: .acquiring) != .running, finishShutdownIfDone() { break }
            applyInterestUpdates()
            let ready: Int
            do {
                ready = try poller.wait(timeoutMs: sleepTimeoutMs())
            } catch {
                pollerBroke(error)
                continue
            }
            for index in 0..<ready { dispatch(poller.readiness(at: index)) }
        }
    }

    /// Measures, once every `lagSamplingInterval` (a second), how long a task queued now waits
    /// for the loop (the work queued before it, and the turn it runs in). Sampled, not timed per
    /// task: a timestamp on every task would cost what metrics that are off must not.
    private func sampleLag(into metrics: LoopMetrics) {
        scheduleTask(in: metrics.lagSamplingInterval) { [self] in
            let queued = Deadline.now()
            execute { [self] in
                metrics.lag.recordNanoseconds(Int64(clamping: Deadline.now().uptimeNanoseconds &- queued.uptimeNanoseconds))
                if !isShuttingDown { sampleLag(into: metrics) }
            }
        }
    }

    /// `epoll_wait` failed with something other than `EINTR` (which it retries): `EBADF`, `EFAULT`
    /// or `EINVAL`, a broken epoll instance that no retry mends. Spinning on it would burn a core
    /// and serve nothing, so the loop says so loudly and shuts down: its channels close (their
    /// futures complete), waiting timers and later submissions fail with ``EventLoopError/shutDown``.
    private func pollerBroke(_ error: IOError) {
        guard !pollerFailed else { return }
        pollerFailed = true
        logger.critical("epoll_wait failed; the event loop shuts down", metadata: ["error": "\(error)"])
        initiateShutdown()
    }

    @inline(__always)
    private func dispatch(_ readiness: Readiness) {
        let index = Int(readiness.token.fd)
        if readiness.token.fd == waker.fd, readiness.token.generation == 0 {
            waker.drain()
            return
        }
        guard index < registrations.count, registrations[index].generation == readiness.token.generation,
              let selectable = registrations[index].selectable else { return }
        selectable.handleReadiness(readiness.events)
    }

    private func sleepTimeoutMs() -> CInt {
        if !localTasks.isEmpty || waker.isWakeUpPending || pollerFailed { return 0 }
        guard let deadline = timers.earliestDeadline, deadline != .distantFuture else { return -1 }
        return Self.timeoutMs(until: deadline - now)
    }

    /// `remaining`, rounded up to whole milliseconds (waking a little late is fine, waking early
    /// only spins) and clamped to what `epoll_wait` takes; 0 when it is already due. Cannot trap:
    /// any `remaining` works, up to `.max` (which waits as long as `epoll_wait` can, about 24 days).
    static func timeoutMs(until remaining: TimeAmount) -> CInt {
        guard remaining.nanoseconds > 0 else { return 0 }
        let (whole, fraction) = remaining.nanoseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return CInt(clamping: fraction > 0 ? whole + 1 : whole)
    }

    private func runDueTimers() {
        guard timers.count > 0 else { return }
        let current = now
        while let timer = timers.popExpired(now: current) {
            let task = timer.task
            timer.task = nil
            timer.onCancel = nil
            task?()
        }
    }

    private func runTasks() {
        // Other threads set the waker's flag after queueing, so a turn nobody woke skips the lock.
        if waker.takeWakeUp() { runInboxTasks() }
        // Tasks queued by these tasks run in the next turn, after I/O: a task that keeps
        // re-queueing itself cannot starve the sockets.
        var count = localTasks.count
        while count > 0, let task = localTasks.popFirst() {
            task()
            count -= 1
        }
    }

    private func runInboxTasks() {
        // Trade the inbox's queue for the spare one (empty, with capacity) instead of copying it out
        // and clearing it: a copy would make the clear copy-on-write, an allocation every turn.
        var remote = spareInbox
        spareInbox = []
        inbox.withLock { inbox in swap(&inbox.tasks, &remote) }
        while let task = remote.popFirst() { task() }
        spareInbox = remote
    }

    // MARK: Shutdown

    /// Begins shutdown: closes every registered channel on the loop's thread.
    func initiateShutdown() {
        guard state.compareExchange(expected: .running, desired: .shuttingDown, ordering: .acquiringAndReleasing).exchanged else {
            return
        }
        if inEventLoop {
            closeAllChannels()
        } else {
            inbox.withLock { inbox in inbox.tasks.append { [self] in closeAllChannels() } }
            waker.wake()
        }
    }

    private func closeAllChannels() {
        for registration in registrations {
            registration.selectable?.closeForShutdown()
        }
    }

    /// Once no channel is left and no task is queued, closes the inbox, runs what raced into it,
    /// fails the waiting timers, and reports whether the loop may exit.
    private func finishShutdownIfDone() -> Bool {
        if registeredCount > 0 {
            closeAllChannels()
            return false
        }
        guard localTasks.isEmpty else { return false }
        let inboxClosed = inbox.withLock { inbox -> Bool in
            guard inbox.tasks.isEmpty else { return false }
            inbox.closed = true
            return true
        }
        guard inboxClosed else { return false }
        timersClosed = true
        for timer in timers.removeAll() {
            timer.task = nil
            timer.onCancel?()
        }
        // Callbacks of the failed timers' futures may queue local tasks: run them before leaving.
        while let task = localTasks.popFirst() { task() }
        state.store(.shutDown, ordering: .releasing)
        return true
    }
}

/// Lets a cancellation (from any thread) find its timer, which only the loop's thread touches.
// Unchecked: `entry` and `isCancelled` are read and written only on the loop's thread (both the
// insertion and the cancellation run there).
private final class TimerHandle: @unchecked Sendable {
    var entry: TimerEntry?
    var isCancelled = false
}

// MARK: - Executors

extension EpollEventLoop: SerialExecutor, TaskExecutor {
    /// Runs a Swift concurrency job on the loop, so an actor whose executor is this loop, or a task
    /// started with `Task(executorPreference: loop)`, runs on the loop's thread with no hop.
    ///
    /// Once the loop has shut down, a job runs at once on the thread that enqueued it: the loop's
    /// thread is gone, so nothing can run concurrently with it, and the task finishes instead of
    /// hanging forever.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unownedJob = UnownedJob(job)
        let accepted = tryExecute { [self] in
            unownedJob.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        }
        if !accepted {
            unownedJob.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
        }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor { UnownedTaskExecutor(ordinary: self) }
    public func isSameExclusiveExecutionContext(other: EpollEventLoop) -> Bool { other === self }
    public func checkIsolated() { preconditionInEventLoop() }
}
