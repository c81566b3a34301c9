import Dispatch
import PheromonesCore

/// A future that did not complete in time.
public struct BlockingWaitTimeout: Error {}

/// Blocks until `future` completes (at most `timeout` seconds) and returns its value. Allocation
/// probes block rather than await so that the waiting thread allocates nothing while the loops work.
@discardableResult
public func blockingWait<Value: Sendable>(for future: Future<Value>, timeout: Double = 60) throws -> Value {
    let done = DispatchSemaphore(value: 0)
    future.whenComplete { _ in done.signal() }
    guard done.wait(timeout: .now() + timeout) == .success, let result = future.resultIfAvailable else {
        throw BlockingWaitTimeout()
    }
    return try result.get()
}
