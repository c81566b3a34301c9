import Glibc
import Synchronization

// Why not `Synchronization.Mutex`: on Linux with Swift 6.3 its lock is invisible to the thread
// sanitizer (four threads appending to an array under one are reported as racing), so real races
// would drown in false ones. The two locks here are made of what TSan does understand: a
// `pthread_mutex_t`, and acquire/release atomics.

/// A mutual-exclusion lock on a `pthread_mutex_t`, as SwiftNIO's `NIOLock`: for state that several
/// threads share for a long time (a loop's inbox, a thread's lifecycle).
// Unchecked: the mutex serialises every access to what it guards; the mutex itself lives at a fixed
// address (allocated once) as pthreads require.
package final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// Creates an unlocked lock.
    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let result = pthread_mutex_init(mutex, nil)
        precondition(result == 0, "pthread_mutex_init failed: \(result)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Blocks until the lock is free, then takes it.
    package func lock() {
        let result = pthread_mutex_lock(mutex)
        precondition(result == 0, "pthread_mutex_lock failed: \(result)")
    }

    /// Releases the lock; the calling thread must hold it.
    package func unlock() {
        let result = pthread_mutex_unlock(mutex)
        precondition(result == 0, "pthread_mutex_unlock failed: \(result)")
    }

    /// Runs `body` holding the lock.
    @inlinable
    package func withLock<Result, Failure: Error>(_ body: () throws(Failure) -> Result) throws(Failure) -> Result {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A value that threads share, guarded by a ``Lock``: touch it only inside ``withLock(_:)``.
// Unchecked: `value` is only reachable inside `withLock`, which holds `lock`.
package final class LockedValue<Value>: @unchecked Sendable {
    @usableFromInline let lock = Lock()
    // `@exclusivity(unchecked)`: accesses from different threads are serialised by `lock`, which the
    // runtime's per-thread exclusivity tracking cannot see.
    @exclusivity(unchecked) @usableFromInline var value: Value

    /// Guards `value`.
    package init(_ value: Value) { self.value = value }

    /// Runs `body` with the value, holding the lock.
    @inlinable
    package func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// A one-word lock for very short critical sections, kept inside the object it guards: a future's
/// state takes it, and a separate allocation per future would cost more than the lock.
///
/// Taking it is one acquiring compare-and-swap; releasing it, one releasing store. A thread that
/// finds it taken yields the processor until it is free, so a holder that was preempted still gets
/// to finish. Hold it only for a few instructions, and never call out while holding it.
package struct AtomicLock: ~Copyable, Sendable {
    private let word = Atomic<Bool>(false)

    /// Creates an unlocked lock.
    package init() {}

    /// Takes the lock, yielding while another thread holds it.
    package borrowing func lock() {
        while !word.weakCompareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            while word.load(ordering: .relaxed) { sched_yield() }
        }
    }

    /// Releases the lock; the calling thread must hold it.
    package borrowing func unlock() {
        word.store(false, ordering: .releasing)
    }
}
