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

/// The bytes a ``PipelineFlooder`` sends: handed out in contiguous pieces, as the socket takes them.
protocol FloodBytes: AnyObject {
    /// The bytes of the whole flood.
    var total: Int { get }
    /// The bytes accepted by the socket so far.
    var position: Int { get }
    /// The next contiguous bytes to send (empty once everything was accepted).
    func nextBytes() -> UnsafeRawBufferPointer
    /// Records that the socket accepted `count` of the bytes `nextBytes()` handed out.
    func consumed(_ count: Int)
}

/// The waits a flood is bounded by, in seconds.
struct FloodLimits {
    /// For the connection to be established.
    var connect: Double
    /// Without a byte accepted, after which the flood counts as stalled (the peer stopped reading).
    var stall: Double
    /// For the whole flood, even if the socket still takes bytes now and then.
    var flood: Double
}

/// One connection that sends `bytes` as fast as the socket takes them and never reads: the
/// flooder of `slow-reader` (against the echo server) and of `p2p-slow-peer`'s persistent rows
/// (against a node). The peer's answers fill the socket's receive buffer and stay there, so a peer
/// that keeps reading must hold its answers, or stop reading.
final class PipelineFlooder: SlowReaderClient {
    private let bytes: any FloodBytes
    private let limits: FloodLimits
    private let epoll: CInt
    /// What the other end is called in the flood's account ("server", "node").
    private let peer: String
    /// Bytes written in one `handle` at most, so that the ping-pong client is not starved while a
    /// peer that reads everything keeps the socket writable.
    private static let burst = 4 << 20

    private(set) var fd: CInt = -1
    private var connected = false
    private(set) var outcome: FloodOutcome?
    /// What ended the flood, in words.
    private(set) var detail = ""
    private var connectedAt: UInt64 = 0
    private var lastProgress: UInt64 = 0
    /// Seconds from the connection to the last byte accepted, and to the end of the flood.
    private(set) var secondsToLastByte: Double?
    private(set) var seconds: Double?

    init(bytes: any FloodBytes, limits: FloodLimits, epoll: CInt, peer: String) {
        self.bytes = bytes
        self.limits = limits
        self.epoll = epoll
        self.peer = peer
    }

    deinit {
        if fd >= 0 { cepoll_close_with_reset(fd) }
    }

    /// Bytes the socket accepted (copied into the kernel; not necessarily read by the peer yet).
    var accepted: Int { bytes.position }

    /// Starts connecting to the peer on `port` (127.0.0.1); a failure ends the flood at once.
    func connect(port: Int, now: UInt64) {
        connectedAt = now
        let socket = cepoll_connect_tcp4(ChaosPlan.host, Int32(port))
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
            peerClosed(error: cepoll_socket_error(fd), now: now)
        } else if outcome == nil && events & UInt32(CEPOLL_OUT) != 0 {
            send(now: now)
        }
    }

    func check(now: UInt64) {
        guard outcome == nil else { return }
        if !connected {
            if now > connectedAt + ChaosDriver.nanoseconds(limits.connect) {
                end(.connectFailed, "timed out after \(NumberText.format(limits.connect, decimals: 1)) s", now: now)
            }
        } else if now > lastProgress + ChaosDriver.nanoseconds(limits.stall) {
            end(.stalled, "no byte accepted for \(NumberText.format(limits.stall, decimals: 1)) s", now: now)
        } else if now > connectedAt + ChaosDriver.nanoseconds(limits.flood) {
            end(.timedOut, "still taking bytes after \(NumberText.format(limits.flood, decimals: 1)) s", now: now)
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
        while bytes.position < bytes.total && written < Self.burst {
            let piece = bytes.nextBytes()
            guard let base = piece.baseAddress else { break }
            let count = Glibc.send(fd, base, piece.count, Int32(MSG_NOSIGNAL))
            if count > 0 {
                bytes.consumed(count)
                written += count
                lastProgress = now
                secondsToLastByte = Double(now - connectedAt) / 1e9
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return
            } else {
                return peerClosed(error: errno, now: now)
            }
        }
        if bytes.position >= bytes.total { end(.allSent, "every byte accepted", now: now) }
    }

    /// The connection failed under the flooder: a reset or a close by the peer. The socket is
    /// closed at once, since epoll would report the hang-up on every wait.
    private func peerClosed(error: CInt, now: UInt64) {
        let why = error != 0 ? ChaosDriver.describe(error) : "the \(peer) hung up"
        if outcome == nil {
            end(.closedByServer, why, now: now)
        } else {
            detail += "; then the \(peer) closed the connection (\(why))"
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
