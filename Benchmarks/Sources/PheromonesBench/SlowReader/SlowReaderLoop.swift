import CEpoll
import Glibc

/// A client socket that `SlowReaderLoop` drives.
protocol SlowReaderClient: AnyObject {
    /// The socket registered with the loop's epoll instance (negative when closed).
    var fd: CInt { get }
    /// Handles readiness `events` (`CEPOLL_*` bits) on the socket.
    func handle(_ events: UInt32, now: UInt64)
    /// Runs whatever is due at `now`: timeouts, stall detection, the end of its work.
    func check(now: UInt64)
}

/// The event loop of a slow-reader run: one thread, one epoll instance, plain system calls, so that
/// the clients are independent of the server and of the library under test (as the chaos clients).
///
/// The flooder and the ping-pong client share it, and the server's RSS is sampled between two
/// waits: no thread crosses another, and a client that fills its socket hands the thread back.
final class SlowReaderLoop {
    let epoll: CInt
    private let ready: UnsafeMutablePointer<cepoll_ready>
    private static let readyCapacity = 8
    /// The longest single wait, so that timers and samples are never late by more than that.
    private static let waitMilliseconds: Int32 = 2

    init() throws(LoadError) {
        epoll = cepoll_create()
        guard epoll >= 0 else { throw LoadError.system("epoll_create1", errno) }
        ready = .allocate(capacity: Self.readyCapacity)
    }

    deinit {
        Glibc.close(epoll)
        ready.deallocate()
    }

    /// Runs `clients` and `watch` until `finished()` holds, the server is gone or `deadline`
    /// (monotonic nanoseconds) passes, whichever comes first.
    func run(_ clients: [any SlowReaderClient], watch: SlowReaderWatch, deadline: UInt64, until finished: () -> Bool = { false }) {
        while !finished() && watch.serverAlive && monotonicNanoseconds() < deadline {
            let count = cepoll_wait(epoll, ready, Int32(Self.readyCapacity), Self.waitMilliseconds)
            for index in 0..<max(0, Int(count)) {
                let event = ready[index]
                // Tagged with the descriptor: a closed socket has left the epoll set, so a tag
                // always names an open one.
                clients.first { $0.fd >= 0 && UInt64($0.fd) == event.data }?.handle(event.events, now: monotonicNanoseconds())
            }
            let now = monotonicNanoseconds()
            for client in clients { client.check(now: now) }
            watch.tick(now: now)
        }
    }

    /// Monotonic nanoseconds `seconds` from now.
    static func deadline(in seconds: Double) -> UInt64 {
        monotonicNanoseconds() + ChaosDriver.nanoseconds(seconds)
    }
}
