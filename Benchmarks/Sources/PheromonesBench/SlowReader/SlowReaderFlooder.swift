import CEpoll
import Glibc

/// How a flood ended.
enum FloodOutcome: String, Codable, Sendable {
    /// Every byte offered was accepted by the socket.
    case allSent = "all sent"
    /// The socket accepted nothing for the stall time: the server stopped reading (back pressure).
    case stalled
    /// The server closed or reset the connection.
    case closedByServer = "closed by the server"
    /// The flood timeout passed while the socket still took bytes now and then.
    case timedOut = "timed out"
    /// The connection was never established.
    case connectFailed = "connect failed"
}

/// The client that pipelines as fast as the socket takes it and never reads.
///
/// It writes `SlowReaderPlan.floodBytes` from one buffer of whole messages (framed: 16 frames of
/// 64 KiB payload after a 4-byte big-endian length), sent over and over, so its stream is valid
/// for the server whatever it is cut into. The socket's receive buffer fills with the server's
/// answers and stays full, so a server that writes back must hold them or stop reading.
final class SlowReaderFlooder: SlowReaderClient {
    private let plan: SlowReaderPlan
    private let epoll: CInt
    private let buffer: UnsafeMutableRawBufferPointer
    private let total: Int
    /// Bytes written in one `handle` at most, so that the ping-pong client is not starved while a
    /// server that reads everything keeps the socket writable.
    private static let burst = 4 << 20

    private(set) var fd: CInt = -1
    private var connected = false

    /// Bytes the socket accepted (copied into the kernel; not necessarily read by the server yet).
    private(set) var accepted = 0
    private(set) var outcome: FloodOutcome?
    /// What ended the flood, in words.
    private(set) var detail = ""
    private var connectedAt: UInt64 = 0
    private var lastProgress: UInt64 = 0
    /// When the connection was established, when the socket last took a byte, when the flood ended.
    private(set) var secondsToLastByte: Double?
    private(set) var seconds: Double?

    init(plan: SlowReaderPlan, epoll: CInt, reference: ReferenceBytes) {
        self.plan = plan
        self.epoll = epoll
        total = plan.floodBytes
        var stream = ChaosStream(reference: reference, proto: plan.proto)
        stream.messageSize = plan.floodPayload
        buffer = .allocate(byteCount: 16 * stream.wireLength, alignment: 16)
        stream.copy(from: 0, into: buffer)
    }

    deinit {
        if fd >= 0 { cepoll_close_with_reset(fd) }
        buffer.deallocate()
    }

    /// Starts connecting to the server on `port`; a failure ends the flood at once.
    func connect(port: Int, now: UInt64) {
        connectedAt = now
        let socket = cepoll_connect_tcp4(SlowReaderPlan.host, Int32(port))
        guard socket >= 0 else { return end(.connectFailed, ChaosDriver.describe(-socket), now: now) }
        fd = socket
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_OUT), UInt64(fd)) == 0 else {
            return end(.connectFailed, "epoll_ctl: \(ChaosDriver.describe(errno))", now: now)
        }
    }

    /// Leaves with a reset (SO_LINGER 0, then close): the socket's receive queue is full of unread
    /// answers, so Linux would send a reset on a plain close anyway; this makes it explicit and
    /// leaves no lingering socket behind.
    func leave() {
        guard fd >= 0 else { return }
        cepoll_close_with_reset(fd)
        fd = -1
    }

    func handle(_ events: UInt32, now: UInt64) {
        let failed = events & UInt32(CEPOLL_ERR | CEPOLL_HUP) != 0
        if !connected {
            finishConnect(now: now)
        } else if failed {
            serverClosed(error: cepoll_socket_error(fd), now: now)
        } else if outcome == nil && events & UInt32(CEPOLL_OUT) != 0 {
            send(now: now)
        }
    }

    func check(now: UInt64) {
        guard outcome == nil else { return }
        if !connected {
            if now > connectedAt + ChaosDriver.nanoseconds(plan.connectTimeout) {
                end(.connectFailed, "timed out after \(NumberText.format(plan.connectTimeout, decimals: 1)) s", now: now)
            }
        } else if now > lastProgress + ChaosDriver.nanoseconds(plan.stallSeconds) {
            end(.stalled, "no byte accepted for \(NumberText.format(plan.stallSeconds, decimals: 1)) s", now: now)
        } else if now > connectedAt + ChaosDriver.nanoseconds(plan.floodTimeout) {
            end(.timedOut, "still taking bytes after \(NumberText.format(plan.floodTimeout, decimals: 1)) s", now: now)
        }
    }

    private func finishConnect(now: UInt64) {
        let error = cepoll_socket_error(fd)
        guard error == 0 else { return end(.connectFailed, ChaosDriver.describe(error), now: now) }
        connected = true
        connectedAt = now
        lastProgress = now
        send(now: now)
    }

    /// Writes until the socket is full, everything is sent or a burst is done.
    private func send(now: UInt64) {
        var written = 0
        while accepted < total && written < Self.burst {
            let offset = accepted % buffer.count
            let length = min(buffer.count - offset, total - accepted)
            let count = Glibc.send(fd, buffer.baseAddress! + offset, length, Int32(MSG_NOSIGNAL))
            if count > 0 {
                accepted += count
                written += count
                lastProgress = now
                secondsToLastByte = Double(now - connectedAt) / 1e9
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return
            } else {
                return serverClosed(error: errno, now: now)
            }
        }
        if accepted >= total { end(.allSent, "every byte accepted", now: now) }
    }

    /// The connection failed under the flooder: a reset or a close by the server. The socket is
    /// closed at once, since epoll would report the hang-up on every wait.
    private func serverClosed(error: CInt, now: UInt64) {
        let why = error != 0 ? ChaosDriver.describe(error) : "the server hung up"
        if outcome == nil {
            end(.closedByServer, why, now: now)
        } else {
            detail += "; then the server closed the connection (\(why))"
        }
        leave()
    }

    private func end(_ outcome: FloodOutcome, _ detail: String, now: UInt64) {
        self.outcome = outcome
        self.detail = detail
        seconds = connected ? Double(now - connectedAt) / 1e9 : nil
        if !connected {
            leave()
        } else if fd >= 0 {
            // No more writes, but the socket stays connected until `leave()`; epoll still reports
            // a hang-up with no events asked for.
            _ = cepoll_modify(epoll, fd, 0, UInt64(fd))
        }
    }
}
