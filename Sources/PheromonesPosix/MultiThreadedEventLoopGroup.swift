import CoreMetrics
import Glibc
import Logging
import PheromonesCore
import Synchronization

/// A group of ``EpollEventLoop``s, each on its own thread.
///
/// ```swift
/// let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
/// defer { group.syncShutdownGracefully() }
/// ```
///
/// `next()` hands out loops round robin; a channel stays on the loop it was given for life.
public final class MultiThreadedEventLoopGroup: EventLoopGroup, Sendable {
    /// The group's loops, in thread order.
    public let epollLoops: [EpollEventLoop]
    private let threads: [LoopThread]
    private let counter = Atomic<Int>(0)

    /// Starts `numberOfThreads` loops (default: one per core).
    public convenience init(numberOfThreads: Int = System.coreCount, logger: Logger = Logger(label: "pheromones.loop")) throws(IOError) {
        try self.init(numberOfThreads: numberOfThreads, logger: logger, posix: .live, metricsFactory: nil)
    }

    /// Starts `numberOfThreads` loops that report their connections, bytes and lag through
    /// `metricsFactory` (see the table of figures in `LoopMetrics` and in `Docs/Guide.md`, "Metrics"): a backend
    /// the application bootstrapped (Prometheus, OpenTelemetry), or `MetricsSystem.factory`.
    public convenience init(
        numberOfThreads: Int = System.coreCount, logger: Logger = Logger(label: "pheromones.loop"), metricsFactory: any MetricsFactory
    ) throws(IOError) {
        try self.init(numberOfThreads: numberOfThreads, logger: logger, posix: .live, metricsFactory: metricsFactory)
    }

    /// Loops reporting through `metricsFactory`, measuring their lag every `lagSamplingInterval`
    /// (instead of every second): for tests.
    package convenience init(numberOfThreads: Int, metricsFactory: any MetricsFactory, lagSamplingInterval: TimeAmount) throws(IOError) {
        try self.init(numberOfThreads: numberOfThreads, logger: Logger(label: "pheromones.loop"), posix: .live,
                      metricsFactory: metricsFactory, lagSamplingInterval: lagSamplingInterval)
    }

    /// Starts `numberOfThreads` loops whose system calls go through `systemCalls`: the seam that
    /// fault-injection tests use.
    package convenience init(
        numberOfThreads: Int, logger: Logger = Logger(label: "pheromones.loop"), systemCalls: SystemCalls
    ) throws(IOError) {
        try self.init(numberOfThreads: numberOfThreads, logger: logger, posix: Posix(calls: systemCalls), metricsFactory: nil)
    }

    private init(
        numberOfThreads: Int, logger: Logger, posix: Posix, metricsFactory: (any MetricsFactory)?,
        lagSamplingInterval: TimeAmount = .seconds(1)
    ) throws(IOError) {
        precondition(numberOfThreads > 0, "a group needs at least one loop")
        var loops: [EpollEventLoop] = []
        for index in 0..<numberOfThreads {
            let metrics = metricsFactory.map { LoopMetrics(loopIndex: index, factory: $0, lagSamplingInterval: lagSamplingInterval) }
            loops.append(try EpollEventLoop(logger: logger, posix: posix, metrics: metrics))
        }
        epollLoops = loops
        threads = loops.map { loop in LoopThread(loop: loop) }
        for thread in threads { thread.waitUntilRunning() }
    }

    public var loops: [any EventLoop] { epollLoops }

    public func next() -> any EventLoop { nextLoop() }

    /// The next loop, round robin, as its concrete type.
    public func nextLoop() -> EpollEventLoop {
        let index = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return epollLoops[index % epollLoops.count]
    }

    public func shutdownGracefully() async throws {
        for loop in epollLoops { loop.initiateShutdown() }
        for thread in threads { await thread.exited() }
        for thread in threads { thread.join() }
    }

    /// Shuts down and blocks the calling thread until every loop has exited.
    ///
    /// For `main` and tests; never call it on one of the group's loops (it would wait for itself).
    public func syncShutdownGracefully() {
        precondition(!epollLoops.contains { $0.inEventLoop }, "syncShutdownGracefully called on one of the group's own loops")
        for loop in epollLoops { loop.initiateShutdown() }
        for thread in threads { thread.join() }
    }
}

/// Facts about the machine.
public enum System {
    /// The number of online processors.
    public static var coreCount: Int { max(1, Int(sysconf(CInt(_SC_NPROCESSORS_ONLN)))) }
}

/// A POSIX thread running one loop, and the means to wait for it to start and to exit.
private final class LoopThread: Sendable {
    private let handle = LockedValue<pthread_t?>(nil)
    private let lifecycle = LockedValue(Lifecycle())

    // Unchecked: only touched under the mutex; the continuations are resumed exactly once.
    private struct Lifecycle: @unchecked Sendable {
        var running = false
        var exited = false
        var exitWaiters: [CheckedContinuation<Void, Never>] = []
        var joined = false
    }

    init(loop: EpollEventLoop) {
        let body = Box { [self] in
            lifecycle.withLock { $0.running = true }
            loop.run()
            let waiters = lifecycle.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.exited = true
                let waiters = state.exitWaiters
                state.exitWaiters = []
                return waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(body).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        precondition(result == 0, "pthread_create failed: \(result)")
        handle.withLock { $0 = thread }
    }

    /// Spins briefly until the loop has recorded its thread (so `inEventLoop` is right from the start).
    func waitUntilRunning() {
        while !lifecycle.withLock({ $0.running }) { sched_yield() }
    }

    func exited() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = lifecycle.withLock { state -> Bool in
                if state.exited { return true }
                state.exitWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    func join() {
        let thread = lifecycle.withLock { state -> pthread_t? in
            guard !state.joined else { return nil }
            state.joined = true
            return handle.withLock { $0 }
        }
        if let thread { pthread_join(thread, nil) }
    }

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
}
