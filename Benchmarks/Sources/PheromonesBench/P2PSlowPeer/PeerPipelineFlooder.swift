import CEpoll
import Glibc

/// The persistent-router flooder: one connection that pipelines `getreq`s as fast as the socket
/// takes them and never reads (on the native wire after its hello, each request with its own id),
/// as the slow-reader flooder does to the echo server.
///
/// The node's answers fill the socket's receive buffer and stay there, so a node that keeps
/// reading must hold its answers, or stop reading.
final class PeerPipelineFlooder: PeerFlooder {
    private let plan: P2PSlowPeerPlan
    private let epoll: CInt
    private let stream: PeerFloodStream
    /// Bytes written in one `handle` at most, so that the ping-pong client is not starved while a
    /// node that reads everything keeps the socket writable.
    private static let burst = 4 << 20

    private(set) var fd: CInt = -1
    private var connected = false
    private(set) var outcome: FloodOutcome?
    private var detail = ""
    private var connectedAt: UInt64 = 0
    private var lastProgress: UInt64 = 0
    private var secondsToLastByte: Double?
    private var seconds: Double?

    init(plan: P2PSlowPeerPlan, epoll: CInt) {
        self.plan = plan
        self.epoll = epoll
        let request = PeerMessages.getRequest(
            from: P2PSlowPeerPlan.flooderName, payload: plan.floodPayload, messageID: 1, wire: plan.wire)
        let hello = plan.wire == .native ? PeerMessages.hello(from: P2PSlowPeerPlan.flooderName) : []
        let count = ((plan.megabytes << 20) + request.count - 1) / request.count
        stream = PeerFloodStream(prefix: hello, request: request, count: count, stampsIDs: plan.wire == .native)
    }

    deinit {
        if fd >= 0 { cepoll_close_with_reset(fd) }
    }

    var figures: PeerFloodFigures {
        var figures = PeerFloodFigures()
        figures.bytesOffered = stream.total
        figures.bytesAccepted = stream.position
        figures.requestsOffered = stream.count
        figures.requestsAccepted = stream.requestsAccepted
        figures.outcome = outcome
        figures.detail = detail
        figures.secondsToLastByte = secondsToLastByte
        figures.seconds = seconds
        return figures
    }

    func connect(port: Int, now: UInt64) {
        connectedAt = now
        let socket = cepoll_connect_tcp4(P2PSlowPeerPlan.host, Int32(port))
        guard socket >= 0 else { return end(.connectFailed, ChaosDriver.describe(-socket), now: now) }
        fd = socket
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_OUT), UInt64(fd)) == 0 else {
            return end(.connectFailed, "epoll_ctl: \(ChaosDriver.describe(errno))", now: now)
        }
    }

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
            nodeClosed(error: cepoll_socket_error(fd), now: now)
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
        while stream.position < stream.total && written < Self.burst {
            let bytes = stream.nextBytes()
            let count = Glibc.send(fd, bytes.baseAddress!, bytes.count, Int32(MSG_NOSIGNAL))
            if count > 0 {
                stream.consumed(count)
                written += count
                lastProgress = now
                secondsToLastByte = Double(now - connectedAt) / 1e9
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return
            } else {
                return nodeClosed(error: errno, now: now)
            }
        }
        if stream.position >= stream.total { end(.allSent, "every byte accepted", now: now) }
    }

    /// The node reset or closed the connection. The socket is closed at once, since epoll would
    /// report the hang-up on every wait.
    private func nodeClosed(error: CInt, now: UInt64) {
        let why = error != 0 ? ChaosDriver.describe(error) : "the node hung up"
        if outcome == nil {
            end(.closedByServer, why, now: now)
        } else {
            detail += "; then the node closed the connection (\(why))"
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
