import Glibc
import PheromonesCore
import Synchronization

// The reactor's small surface, after mio: a `Poller` (the epoll instance), `Token`s that name
// registrations, `Interest`s, and a `Waker`. The readiness contract, written down once:
//
// - Registrations are level-triggered. While a descriptor is readable (or writable, if that
//   interest is on) every `wait` reports it again, so a handler may stop early (fairness) and lose
//   nothing.
// - Writable interest is on only while bytes wait to be sent; otherwise every wait would report
//   the socket as writable and the loop would spin.
// - A token carries the descriptor and a generation. Closing a descriptor bumps its generation, so
//   an event already collected for the old registration, or for a new socket that reused the
//   number, is recognised and dropped.
// - Interest changes are recorded and applied in one pass just before the loop sleeps, so a channel
//   that turns write interest on and off within one turn costs no system call.

/// What a registration waits for.
package struct Interest: OptionSet, Sendable, Hashable {
    package let rawValue: UInt8
    package init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Readable, or a listener with a connection to accept, or the peer's end of stream.
    package static let readable = Interest(rawValue: 1)
    /// Writable, or a non-blocking connect that finished.
    package static let writable = Interest(rawValue: 2)

    /// The epoll event bits for this interest. Errors and hang-ups are always reported.
    var epollEvents: UInt32 {
        var events: UInt32 = 0
        // End of stream only matters to a channel that reads: a half-closed channel that stopped
        // reading would otherwise be woken, level-triggered, on every turn.
        if contains(.readable) { events |= Posix.EPOLLIN | Posix.EPOLLRDHUP }
        if contains(.writable) { events |= Posix.EPOLLOUT }
        return events
    }
}

/// Names a registration: a descriptor and the generation of its registration, packed into epoll's
/// 64-bit user data.
package struct Token: Sendable, Hashable {
    package var fd: CInt
    package var generation: UInt32

    @inline(__always) var packed: UInt64 { UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd)) }

    @inline(__always) init(fd: CInt, generation: UInt32) {
        self.fd = fd
        self.generation = generation
    }

    @inline(__always) init(packed: UInt64) {
        fd = CInt(bitPattern: UInt32(truncatingIfNeeded: packed))
        generation = UInt32(truncatingIfNeeded: packed >> 32)
    }
}

/// Readiness reported for one registration: the registration's token and the epoll event bits.
package struct Readiness: Sendable {
    package var token: Token
    package var events: UInt32
}

extension UInt32 {
    /// Input is ready, or the peer closed its output.
    var hasInput: Bool { self & (Posix.EPOLLIN | Posix.EPOLLRDHUP) != 0 }
    /// Output is ready (or a non-blocking connect finished).
    var hasOutput: Bool { self & Posix.EPOLLOUT != 0 }
    /// The connection failed or both directions are down.
    var hasHangUpOrError: Bool { self & (Posix.EPOLLHUP | Posix.EPOLLERR) != 0 }
}

/// One epoll instance and the buffer its `wait` fills.
package struct Poller: ~Copyable {
    let epollFD: CInt
    private let posix: Posix
    private let events: UnsafeMutablePointer<Posix.EpollEvent>
    private let capacity: Int

    package init(capacity: Int = 1024, posix: Posix) throws(IOError) {
        self.posix = posix
        epollFD = try posix.epollCreate()
        self.capacity = capacity
        events = .allocate(capacity: capacity)
        events.initialize(repeating: Posix.EpollEvent(), count: capacity)
    }

    deinit {
        events.deallocate()
        try? posix.close(epollFD)
    }

    package func register(_ token: Token, interest: Interest) throws(IOError) {
        try posix.epollControl(epollFD, op: Posix.EPOLL_CTL_ADD, fd: token.fd, events: interest.epollEvents, data: token.packed)
    }

    package func reregister(_ token: Token, interest: Interest) throws(IOError) {
        try posix.epollControl(epollFD, op: Posix.EPOLL_CTL_MOD, fd: token.fd, events: interest.epollEvents, data: token.packed)
    }

    package func deregister(fd: CInt) throws(IOError) {
        try posix.epollControl(epollFD, op: Posix.EPOLL_CTL_DEL, fd: fd, events: 0, data: 0)
    }

    /// Waits up to `timeoutMs` (-1: forever) and returns how many entries of ``readiness(at:)`` are valid.
    package func wait(timeoutMs: CInt) throws(IOError) -> Int {
        try posix.epollWait(epollFD, events: events, maxEvents: CInt(capacity), timeoutMs: timeoutMs)
    }

    @inline(__always)
    package func readiness(at index: Int) -> Readiness {
        let event = events[index]
        return Readiness(token: Token(packed: event.data), events: event.events)
    }
}

/// Wakes a sleeping loop from other threads through an eventfd, at most once per sleep.
///
/// `wake()` writes the eventfd only if no wake-up is already pending; the loop calls
/// `takeWakeUp()` just before it drains its inbox, so a task submitted after that drain causes a
/// new write and is never stranded. Many submitters between two sleeps cost one write, and a turn
/// that nobody woke skips the inbox (and its lock) altogether.
package final class Waker: Sendable {
    package let fd: CInt
    private let posix: Posix
    private let pending = Atomic<Bool>(false)
    private let writes = Atomic<Int>(0)

    package init(posix: Posix) throws(IOError) {
        self.posix = posix
        fd = try posix.eventfdCreate()
    }

    deinit { try? posix.close(fd) }

    /// Makes the loop's next (or current) `epoll_wait` return.
    package func wake() {
        guard !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        writes.wrappingAdd(1, ordering: .relaxed)
        try? posix.eventfdWrite(fd)
    }

    /// How many times `wake()` wrote the eventfd (the others found a wake-up pending): for tests.
    package var writeCount: Int { writes.load(ordering: .relaxed) }

    /// Consumes the eventfd's count after it fired.
    package func drain() { _ = try? posix.eventfdDrain(fd) }

    /// Whether a wake-up is pending (a task may be waiting in the inbox).
    package var isWakeUpPending: Bool { pending.load(ordering: .acquiring) }

    /// Clears a pending wake-up and reports whether there was one, so that the next `wake()` writes
    /// again. Called by the loop before it drains its inbox; false means no task arrived since.
    package func takeWakeUp() -> Bool { pending.exchange(false, ordering: .acquiringAndReleasing) }
}

/// Something registered with a loop's poller: it is told when its descriptor is ready.
package protocol Selectable: AnyObject {
    /// The descriptor is ready: `events` holds the epoll bits (see `hasInput`, `hasOutput`,
    /// `hasHangUpOrError`).
    func handleReadiness(_ events: UInt32)
    /// The loop is shutting down: close now.
    func closeForShutdown()
    /// The loop could not apply an interest change (`epoll_ctl` failed): close with `error`, since
    /// the registration no longer reports what the channel waits for. Called from the loop's
    /// before-sleep hook, once the loop has finished applying the other changes, so closing (and
    /// whatever handlers do in `channelInactive`) is safe there.
    func registrationFailed(_ error: IOError)
}
