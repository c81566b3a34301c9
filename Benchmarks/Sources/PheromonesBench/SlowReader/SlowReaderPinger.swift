import CEpoll
import Glibc

/// A well-behaved client: one message at a time (64 bytes of payload, after a 4-byte length when
/// framed), every reply byte compared with what it sent before the next message goes.
///
/// It stops starting round trips after `stopAt` or `limit` of them, lets the last one finish, and
/// closes; the first problem (a failed connect, a wrong or extra reply byte, the server closing, a
/// reply slower than the reply timeout) ends it too, recorded in `failure`.
final class SlowReaderPinger: SlowReaderClient {
    private enum State { case idle, connecting, sending, awaiting, finished }

    private let plan: SlowReaderPlan
    private let epoll: CInt
    /// Round trip k sends the stream's bytes from k × the message's wire length: each message
    /// differs, so a stale or misplaced reply does not match by accident.
    private var stream: ChaosStream
    private let message: UnsafeMutableRawBufferPointer
    private let readBuffer: UnsafeMutableRawBufferPointer
    private var state = State.idle

    private(set) var fd: CInt = -1
    /// No round trip starts at or after `stopAt` (monotonic nanoseconds), nor after `limit` of them.
    private let stopAt: UInt64
    private let limit: Int

    private(set) var roundTrips = 0
    private(set) var failure: String?
    /// The slowest round trip, from the first byte written to the last byte of its reply.
    private(set) var slowestNanoseconds: UInt64 = 0
    private var startedAt: UInt64 = 0
    private var firstSendAt: UInt64?
    private var finishedAt: UInt64?
    /// Bytes of the current message written, and of its reply received.
    private var sent = 0
    private var received = 0
    /// When the current step (connect, round trip) began: its timeout counts from there.
    private var stepStartedAt: UInt64 = 0

    init(plan: SlowReaderPlan, epoll: CInt, reference: ReferenceBytes, stopAt: UInt64, limit: Int = .max) {
        self.plan = plan
        self.epoll = epoll
        self.stopAt = stopAt
        self.limit = limit
        stream = ChaosStream(reference: reference, proto: plan.proto)
        stream.messageSize = plan.messageSize
        message = .allocate(byteCount: stream.wireLength, alignment: 16)
        readBuffer = .allocate(byteCount: 4096, alignment: 16)
    }

    deinit {
        if fd >= 0 { cepoll_close_with_reset(fd) }
        message.deallocate()
        readBuffer.deallocate()
    }

    var isFinished: Bool { state == .finished }

    /// Seconds from the first message written to the last reply (or the failure).
    var seconds: Double {
        guard let firstSendAt, let finishedAt, finishedAt > firstSendAt else { return 0 }
        return Double(finishedAt - firstSendAt) / 1e9
    }

    /// Starts connecting to the server on `port`.
    func connect(port: Int, now: UInt64) {
        startedAt = now
        stepStartedAt = now
        let socket = cepoll_connect_tcp4(SlowReaderPlan.host, Int32(port))
        guard socket >= 0 else { return fail("connect: \(ChaosDriver.describe(-socket))", now: now) }
        fd = socket
        state = .connecting
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_OUT), UInt64(fd)) == 0 else {
            return fail("epoll_ctl: \(ChaosDriver.describe(errno))", now: now)
        }
    }

    func handle(_ events: UInt32, now: UInt64) {
        switch state {
        case .connecting: finishConnect(now: now)
        case .sending: if events & UInt32(CEPOLL_OUT | CEPOLL_ERR | CEPOLL_HUP) != 0 { send(now: now) }
        case .awaiting: if events & UInt32(CEPOLL_IN | CEPOLL_ERR | CEPOLL_HUP) != 0 { receive(now: now) }
        case .idle, .finished: break
        }
    }

    func check(now: UInt64) {
        switch state {
        case .connecting where now > stepStartedAt + ChaosDriver.nanoseconds(plan.connectTimeout):
            fail("connect: timed out after \(NumberText.format(plan.connectTimeout, decimals: 1)) s", now: now)
        case .sending where now > stepStartedAt + ChaosDriver.nanoseconds(plan.replyTimeout),
             .awaiting where now > stepStartedAt + ChaosDriver.nanoseconds(plan.replyTimeout):
            fail("round trip \(roundTrips + 1): \(received) of \(stream.wireLength) reply bytes after "
                + "\(NumberText.format(plan.replyTimeout, decimals: 1)) s", now: now)
        default: break
        }
    }

    private func finishConnect(now: UInt64) {
        let error = cepoll_socket_error(fd)
        guard error == 0 else { return fail("connect: \(ChaosDriver.describe(error))", now: now) }
        startRoundTrip(now: now)
    }

    /// Sends the next message, or closes if the time or the count is up.
    private func startRoundTrip(now: UInt64) {
        guard now < stopAt && roundTrips < limit else { return finish(now: now) }
        stream.copy(from: roundTrips * stream.wireLength, into: message)
        sent = 0
        received = 0
        stepStartedAt = now
        if firstSendAt == nil { firstSendAt = now }
        send(now: now)
    }

    private func send(now: UInt64) {
        while sent < message.count {
            let count = Glibc.send(fd, message.baseAddress! + sent, message.count - sent, Int32(MSG_NOSIGNAL))
            if count > 0 {
                sent += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return watch(.sending, events: UInt32(CEPOLL_OUT))
            } else {
                return fail("round trip \(roundTrips + 1): send: \(ChaosDriver.describe(errno))", now: now)
            }
        }
        watch(.awaiting, events: UInt32(CEPOLL_IN))
    }

    /// Reads what is there of the reply and checks it; a complete reply starts the next round trip.
    private func receive(now: UInt64) {
        let count = read(fd, readBuffer.baseAddress, readBuffer.count)
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0 else {
            let why = count == 0 ? "the server closed the connection" : ChaosDriver.describe(errno)
            return fail("round trip \(roundTrips + 1): \(why) after \(received) reply bytes", now: now)
        }
        guard received + count <= stream.wireLength else {
            return fail("round trip \(roundTrips + 1): \(received + count) reply bytes for a \(stream.wireLength)-byte message", now: now)
        }
        guard stream.matches(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), at: roundTrips * stream.wireLength + received) else {
            return fail("round trip \(roundTrips + 1): reply bytes \(received)..<\(received + count) differ from what was sent", now: now)
        }
        received += count
        guard received == stream.wireLength else { return }
        roundTrips += 1
        slowestNanoseconds = max(slowestNanoseconds, now - stepStartedAt)
        finishedAt = now
        startRoundTrip(now: now)
    }

    private func watch(_ next: State, events: UInt32) {
        if state != next { _ = cepoll_modify(epoll, fd, events, UInt64(fd)) }
        state = next
    }

    /// Done: a plain close, the conversation being complete.
    private func finish(now: UInt64) {
        state = .finished
        finishedAt = finishedAt ?? now
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    private func fail(_ problem: String, now: UInt64) {
        failure = problem
        state = .finished
        finishedAt = now
        if fd >= 0 { cepoll_close_with_reset(fd) }
        fd = -1
    }
}
