import Glibc
import PheromonesCore
import Synchronization

/// Waits for SIGINT or SIGTERM, for servers that shut down gracefully on Ctrl-C or `kill`.
///
/// The signal handler only writes one byte to a pipe (all a handler may safely do); a thread of its
/// own blocks reading that pipe and resumes the waiting task. Call ``install()`` first thing in
/// `main`: a signal that arrives before then ends the process the default way, and one that
/// arrives between `install()` and ``wait()`` is kept for `wait()`.
public enum TerminationSignal {
    /// Catches SIGINT and SIGTERM from now on (``wait()`` does it too, if nothing did before).
    public static func install() {
        _ = installHandlers()
    }

    /// Returns once the process receives SIGINT or SIGTERM.
    public static func wait() async {
        let readFD = installHandlers()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DetachedThread.start {
                var byte: UInt8 = 0
                while Glibc.read(readFD, &byte, 1) < 0 && errno == EINTR {}
                continuation.resume()
            }
        }
    }

    private static let pipeFDs = LockedValue<(read: CInt, write: CInt)?>(nil)

    private static func installHandlers() -> CInt {
        pipeFDs.withLock { fds in
            if let fds { return fds.read }
            var pair: [CInt] = [0, 0]
            _ = pipe(&pair)
            fds = (pair[0], pair[1])
            signalPipeWriteFD.store(pair[1], ordering: .releasing)
            signal(SIGINT, onSignal)
            signal(SIGTERM, onSignal)
            return pair[0]
        }
    }
}

private let signalPipeWriteFD = Atomic<CInt>(-1)

private func onSignal(_ signal: CInt) {
    var byte: UInt8 = 1
    _ = Glibc.write(signalPipeWriteFD.load(ordering: .acquiring), &byte, 1)
}

/// A detached POSIX thread running `body`.
enum DetachedThread {
    static func start(_ body: @escaping @Sendable () -> Void) {
        final class Box {
            let body: @Sendable () -> Void
            init(_ body: @escaping @Sendable () -> Void) { self.body = body }
        }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, context)
        precondition(result == 0, "pthread_create failed: \(result)")
        pthread_detach(thread)
    }
}
