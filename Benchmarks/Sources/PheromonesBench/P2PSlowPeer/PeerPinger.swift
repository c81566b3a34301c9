import CEpoll
import Glibc
import Pheromones
import PheromonesP2P

/// A well-behaved peer: one `getreq` at a time, each answered `getresp` before the next goes, its
/// round trip timed. On the persistent router over one connection (native wire: after the hellos,
/// with the "no reply follows" answer to each `getresp`, as a node's router sends it); on the
/// short router over a connection per round trip, as a short dial does, the connect included in
/// the round trip's time.
///
/// It stops starting round trips after `stopAt` or `limit` of them and closes; the first problem
/// (a failed connect, a reply that is not the answer awaited, the node closing, a reply slower
/// than the reply timeout) ends it too, recorded in `failure`.
final class PeerPinger: SlowReaderClient {
    private enum State { case idle, connecting, sending, awaiting, finished }

    private let plan: P2PSlowPeerPlan
    private let epoll: CInt
    /// No round trip starts at or after `stopAt` (monotonic nanoseconds), nor after `limit` of them.
    private let stopAt: UInt64
    private let limit: Int
    private var state = State.idle
    private var port = 0
    private var reader: PeerReplyReader
    private let readBuffer: UnsafeMutableRawBufferPointer
    /// Bytes to write on the connection, and how many of them went.
    private var outgoing: [UInt8] = []
    private var written = 0
    /// The id of the next request, and of the one whose answer is awaited (native wire).
    private var nextID: UInt64 = 1
    private var awaitedID: UInt64 = 0
    /// Whether the node's hello arrived (persistent native connection).
    private var helloSeen = false

    private(set) var fd: CInt = -1
    private(set) var roundTrips = 0
    private(set) var failure: String?
    /// The round trips' times, from the request's start (short: the connect's) to its answer.
    private(set) var latencies = LatencyHistogram()
    private(set) var slowestNanoseconds: UInt64 = 0
    private var roundTripStartedAt: UInt64 = 0
    /// When the current step (connect, round trip) began: its timeout counts from there.
    private var stepStartedAt: UInt64 = 0
    private var firstStartAt: UInt64?
    private var finishedAt: UInt64?

    init(plan: P2PSlowPeerPlan, epoll: CInt, stopAt: UInt64, limit: Int = .max) {
        self.plan = plan
        self.epoll = epoll
        self.stopAt = stopAt
        self.limit = limit
        reader = PeerReplyReader(wire: plan.wire)
        readBuffer = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit {
        if fd >= 0 { cepoll_close_with_reset(fd) }
        readBuffer.deallocate()
    }

    var isFinished: Bool { state == .finished }
    private var isPersistent: Bool { plan.router == .persistent }

    /// Seconds from the first round trip's start to the last answer (or the failure).
    var seconds: Double {
        guard let firstStartAt, let finishedAt, finishedAt > firstStartAt else { return 0 }
        return Double(finishedAt - firstStartAt) / 1e9
    }

    /// Starts the first round trip against the node on `port`.
    func start(port: Int, now: UInt64) {
        self.port = port
        if isPersistent {
            openConnection(now: now)
        } else {
            startRoundTrip(now: now)
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
            fail("no getresp after \(NumberText.format(plan.replyTimeout, decimals: 1)) s", now: now)
        default: break
        }
    }

    // MARK: Connections

    private func openConnection(now: UInt64) {
        stepStartedAt = now
        reader = PeerReplyReader(wire: plan.wire)
        helloSeen = false
        let socket = cepoll_connect_tcp4(P2PSlowPeerPlan.host, Int32(port))
        guard socket >= 0 else { return fail("connect: \(ChaosDriver.describe(-socket))", now: now) }
        fd = socket
        state = .connecting
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_OUT), UInt64(fd)) == 0 else {
            return fail("epoll_ctl: \(ChaosDriver.describe(errno))", now: now)
        }
    }

    private func finishConnect(now: UInt64) {
        let error = cepoll_socket_error(fd)
        guard error == 0 else { return fail("connect: \(ChaosDriver.describe(error))", now: now) }
        if isPersistent {
            // The first round trip starts once connected: its time is the request's alone.
            if plan.wire == .native { outgoing = PeerMessages.hello(from: P2PSlowPeerPlan.pingerName) }
            startRoundTrip(now: now)
        } else {
            stepStartedAt = now
            send(now: now)
        }
    }

    // MARK: Round trips

    /// Sends the next request (short router: on a new connection), or closes if the time or the
    /// count is up.
    private func startRoundTrip(now: UInt64) {
        guard now < stopAt && roundTrips < limit else { return finish(now: now) }
        roundTripStartedAt = now
        stepStartedAt = now
        if firstStartAt == nil { firstStartAt = now }
        awaitedID = nextID
        nextID += 1
        outgoing += PeerMessages.getRequest(
            from: P2PSlowPeerPlan.pingerName, payload: plan.messageSize, messageID: awaitedID, wire: plan.wire)
        if isPersistent {
            send(now: now)
        } else {
            openConnection(now: now)
        }
    }

    private func send(now: UInt64) {
        while written < outgoing.count {
            let count = outgoing.withUnsafeBytes { bytes in
                Glibc.send(fd, bytes.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                written += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return watch(.sending, events: UInt32(CEPOLL_OUT))
            } else {
                return fail("send: \(ChaosDriver.describe(errno))", now: now)
            }
        }
        outgoing.removeAll(keepingCapacity: true)
        written = 0
        watch(.awaiting, events: UInt32(CEPOLL_IN))
        // Answers read with an earlier batch may be waiting already.
        deliver(now: now)
    }

    private func receive(now: UInt64) {
        let connection = fd
        while state == .awaiting && fd == connection {
            let count = recv(fd, readBuffer.baseAddress, readBuffer.count, 0)
            if count > 0 {
                reader.append(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]))
                deliver(now: now)
            } else if count == 0 {
                return fail("the node closed the connection" + (reader.hasPartialMessage ? " in the middle of a message" : ""), now: now)
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN {
                return
            } else {
                return fail("recv: \(ChaosDriver.describe(errno))", now: now)
            }
        }
    }

    /// Takes every whole message read so far, while the round trip awaits one.
    private func deliver(now: UInt64) {
        let connection = fd
        while state == .awaiting && fd == connection {
            let message: Envelope?
            do {
                message = try reader.next()
            } catch {
                return fail("the node sent what is not a message: \(error)", now: now)
            }
            guard let message else { return }
            accept(message, now: now)
        }
    }

    private func accept(_ message: Envelope, now: UInt64) {
        if isPersistent && plan.wire == .native && !helloSeen {
            guard message.operation == PeerMessages.helloOperation else {
                return fail("'\(message.operation.escapedForTerminal)' before the node's hello", now: now)
            }
            helloSeen = true
            return
        }
        guard message.operation == PeerMessages.getResponse else {
            return fail("'\(message.operation.escapedForTerminal)' where a getresp was awaited", now: now)
        }
        guard plan.wire == .json || message.correlationID == awaitedID else {
            return fail("a getresp answering message \(message.correlationID), not \(awaitedID)", now: now)
        }
        completeRoundTrip(answer: message, now: now)
    }

    private func completeRoundTrip(answer: Envelope, now: UInt64) {
        let nanoseconds = now - roundTripStartedAt
        latencies.record(nanoseconds: nanoseconds)
        slowestNanoseconds = max(slowestNanoseconds, nanoseconds)
        roundTrips += 1
        finishedAt = now
        if isPersistent {
            // Goes out with the next request.
            if plan.wire == .native { outgoing = PeerMessages.noReply(from: P2PSlowPeerPlan.pingerName, answering: answer.messageID) }
        } else {
            // A short connection is done once answered (the node closes its side).
            closeConnection(reset: true)
        }
        startRoundTrip(now: now)
    }

    private func watch(_ next: State, events: UInt32) {
        if state != next { _ = cepoll_modify(epoll, fd, events, UInt64(fd)) }
        state = next
    }

    // MARK: Endings

    /// Done: a plain close of a persistent connection, the conversation being complete.
    private func finish(now: UInt64) {
        state = .finished
        finishedAt = finishedAt ?? now
        closeConnection(reset: false)
    }

    private func fail(_ problem: String, now: UInt64) {
        failure = "round trip \(roundTrips + 1): \(problem)"
        state = .finished
        finishedAt = now
        closeConnection(reset: true)
    }

    /// Closes the connection; with a reset (SO_LINGER 0) when its conversation is cut short, or
    /// when it is a short one the node closes anyway: no TIME_WAIT left behind.
    private func closeConnection(reset: Bool) {
        guard fd >= 0 else { return }
        if reset { cepoll_close_with_reset(fd) } else { Glibc.close(fd) }
        fd = -1
        outgoing.removeAll(keepingCapacity: true)
        written = 0
    }
}
