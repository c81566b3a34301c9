import Glibc

/// A one-time signal a thread can block on, with a deadline: a `pthread_mutex_t` and a
/// `pthread_cond_t` on the monotonic clock (which the thread sanitizer understands, see `Lock`).
// Unchecked: `signalled` is only read and written under the mutex; the mutex and the condition
// live at fixed addresses (allocated once) as pthreads require.
package final class CompletionSignal: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var signalled = false

    /// Creates a signal not yet given.
    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        let mutexResult = pthread_mutex_init(mutex, nil)
        let conditionResult = pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        precondition(mutexResult == 0 && conditionResult == 0, "pthread_mutex_init/pthread_cond_init failed")
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deinitialize(count: 1)
        condition.deallocate()
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Gives the signal, waking every waiter (now and later).
    package func signal() {
        pthread_mutex_lock(mutex)
        signalled = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Blocks until the signal is given or `deadline` passes; returns whether it was given.
    package func wait(until deadline: Deadline) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !signalled {
            if deadline == .distantFuture {
                pthread_cond_wait(condition, mutex)
                continue
            }
            var until = timespec(
                tv_sec: Int(clamping: deadline.uptimeNanoseconds / 1_000_000_000),
                tv_nsec: Int(deadline.uptimeNanoseconds % 1_000_000_000))
            if pthread_cond_timedwait(condition, mutex, &until) == ETIMEDOUT { return signalled }
        }
        return true
    }
}
