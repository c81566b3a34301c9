import CEpoll
import Glibc

/// The chaos clients: one thread, one epoll instance, non-blocking sockets and plain system calls,
/// so that they are independent of the server and of the library under test.
///
/// Every client slot runs sessions back to back, each on a new connection, with a behaviour drawn at
/// random from its own seeded generator (`ChaosSession`); a short random pause separates two
/// sessions. Every reply byte any client reads is checked against what it sent (`ChaosStream`).
/// Timed steps (resets, slow reads, idle ends, connect timeouts, stalls) are checked every
/// millisecond.
final class ChaosDriver {
    let plan: ChaosPlan
    private let epoll: CInt
    private let clients: [ChaosClient]
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let ready: UnsafeMutablePointer<cepoll_ready>
    private static let readyCapacity = 512

    private(set) var counters = ChaosCounters()
    /// Client sockets open right now.
    private(set) var openConnections = 0

    init(plan: ChaosPlan) throws(LoadError) {
        self.plan = plan
        epoll = cepoll_create()
        guard epoll >= 0 else { throw LoadError.system("epoll_create1", errno) }
        let reference = ReferenceBytes(seed: plan.seed)
        clients = (0..<plan.clients).map { ChaosClient(index: $0, seed: plan.seed, reference: reference, proto: plan.proto) }
        readBuffer = .allocate(byteCount: 64 << 10, alignment: 16)
        ready = .allocate(capacity: Self.readyCapacity)
    }

    deinit {
        Glibc.close(epoll)
        readBuffer.deallocate()
        ready.deallocate()
    }

    /// Runs the clients for the plan's duration (or until `monitor` sees the server gone), sampling
    /// through `monitor`, then closes every client connection with a reset.
    func run(monitor: ChaosMonitor) {
        let start = monotonicNanoseconds()
        for client in clients { client.actionAt = start + client.random.nanoseconds(0...0.1) }
        let end = start + Self.nanoseconds(plan.duration)
        var nextScan: UInt64 = 0
        while !monitor.serverExited {
            var now = monotonicNanoseconds()
            guard now < end else { break }
            poll(timeoutMilliseconds: 1)
            now = monotonicNanoseconds()
            if now >= nextScan {
                fireTimers(now: now)
                nextScan = now + 1_000_000
            }
            monitor.tick(now: now, openConnections: openConnections, counters: counters)
        }
        monitor.sampleEnd(now: monotonicNanoseconds(), openConnections: openConnections, counters: counters)
        closeAll()
    }

    // MARK: The event loop

    private func poll(timeoutMilliseconds: Int32) {
        let count = cepoll_wait(epoll, ready, Int32(Self.readyCapacity), timeoutMilliseconds)
        for index in 0..<max(0, Int(count)) {
            let event = ready[index]
            dispatch(event.events, on: clients[Int(event.data)])
        }
    }

    private func dispatch(_ events: UInt32, on client: ChaosClient) {
        guard client.isOpen else { return }
        let now = monotonicNanoseconds()
        let failed = events & UInt32(CEPOLL_ERR | CEPOLL_HUP) != 0
        if client.phase == .connecting {
            if events & UInt32(CEPOLL_OUT) != 0 || failed { finishConnect(client, now: now) }
            return
        }
        if events & UInt32(CEPOLL_IN) != 0 || (failed && client.session.readsContinuously) {
            readAvailable(on: client, limit: readBuffer.count, now: now)
            guard client.isOpen else { return }
        }
        if events & UInt32(CEPOLL_OUT) != 0 {
            send(client, now: now)
            guard client.isOpen else { return }
        }
        if failed && !client.session.readsContinuously {
            let error = cepoll_socket_error(client.fd)
            abort(client, unexpected: error != 0 ? Self.describe(error) : "the server hung up", now: now)
        }
    }

    /// Runs every timed step that is due, and counts stalls.
    private func fireTimers(now: UInt64) {
        let stall = Self.nanoseconds(plan.stallTimeout)
        for client in clients {
            if client.actionAt != 0 && now >= client.actionAt {
                client.actionAt = 0
                act(on: client, now: now)
            } else if client.awaitsReply && now > client.lastProgress + stall {
                abort(client, unexpected: "no reply byte for \(plan.stallTimeout) s (\(client.received) of \(client.written) back)", now: now)
            }
        }
    }

    private func act(on client: ChaosClient, now: UInt64) {
        switch client.phase {
        case .pausing: startSession(client, now: now)
        case .connecting:
            counters.connectFailed("connect: timed out after \(plan.connectTimeout) s")
            closeSocket(client, reset: true)
            pause(client, now: now)
        case .open, .draining: timerFired(on: client, now: now)
        }
    }

    // MARK: Connecting

    private func startSession(_ client: ChaosClient, now: UInt64) {
        let session = ChaosSession.random(using: &client.random, wireOverhead: plan.proto.headerLength)
        client.begin(session)
        counters.countSession(session.kind)
        let fd = cepoll_connect_tcp4(ChaosPlan.host, Int32(plan.port))
        guard fd >= 0 else {
            counters.connectFailed("connect: \(Self.describe(-fd))")
            pause(client, now: now)
            return
        }
        client.fd = fd
        openConnections += 1
        client.lastProgress = now
        if case .resetBeforeAccept = session.behaviour {
            end(client, reset: true, now: now)
            return
        }
        client.phase = .connecting
        client.actionAt = now + Self.nanoseconds(plan.connectTimeout)
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_OUT), UInt64(client.index)) == 0 else {
            abort(client, unexpected: "epoll_ctl: \(Self.describe(errno))", now: now)
            return
        }
        client.registered = UInt32(CEPOLL_OUT)
    }

    private func finishConnect(_ client: ChaosClient, now: UInt64) {
        let error = cepoll_socket_error(client.fd)
        guard error == 0 else {
            counters.connectFailed("connect: \(Self.describe(error))")
            closeSocket(client, reset: true)
            pause(client, now: now)
            return
        }
        client.phase = .open
        client.actionAt = 0
        client.lastProgress = now
        connected(client, now: now)
        if client.isOpen { updateInterest(client) }
    }

    // MARK: Reading and writing

    /// Writes what the session has asked for so far; when a half-closing client has written it
    /// all, shuts its write side. A failed write is unexpected.
    func send(_ client: ChaosClient, now: UInt64) {
        guard flush(client, now: now) else {
            abort(client, unexpected: "write: \(Self.describe(errno))", now: now)
            return
        }
        if case .halfClose = client.session.behaviour, client.phase == .open, client.written == client.target {
            guard cepoll_shutdown_write(client.fd) == 0 else {
                abort(client, unexpected: "shutdown: \(Self.describe(errno))", now: now)
                return
            }
            client.phase = .draining
        }
        updateInterest(client)
    }

    /// Writes staged stream bytes until the target is reached or the socket is full; false (with
    /// errno set) if the socket failed.
    private func flush(_ client: ChaosClient, now: UInt64) -> Bool {
        guard let staging = client.staging.baseAddress else { return false }
        while true {
            if client.stagedCount == 0 {
                let length = min(client.staging.count, client.target - client.written)
                guard length > 0 else { break }
                client.stream.copy(from: client.written, into: UnsafeMutableRawBufferPointer(rebasing: client.staging[0..<length]))
                client.stagedOffset = 0
                client.stagedCount = length
            }
            let count = Glibc.send(client.fd, staging + client.stagedOffset, client.stagedCount, Int32(MSG_NOSIGNAL))
            if count > 0 {
                client.stagedOffset += count
                client.stagedCount -= count
                client.written += count
                client.lastProgress = now
                counters.bytesSent += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                client.blocked = true
                return true
            } else {
                return false
            }
        }
        client.blocked = false
        return true
    }

    /// One read of at most `limit` bytes: verified and handed to the behaviour, or EOF, or an error.
    func readAvailable(on client: ChaosClient, limit: Int, now: UInt64) {
        let count = read(client.fd, readBuffer.baseAddress, min(limit, readBuffer.count))
        if count > 0 {
            consume(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), on: client, now: now)
        } else if count == 0 {
            endOfInput(on: client, now: now)
        } else if errno != EAGAIN && errno != EINTR {
            readFailed(on: client, error: errno, now: now)
        }
    }

    private func consume(_ bytes: UnsafeRawBufferPointer, on client: ChaosClient, now: UInt64) {
        guard client.received + bytes.count <= client.written else {
            counters.verificationFailed(
                "\(client.session.kind.rawValue): \(bytes.count) bytes arrived with \(client.written - client.received) outstanding")
            abort(client, now: now)
            return
        }
        guard client.stream.matches(bytes, at: client.received) else {
            counters.verificationFailed(
                "\(client.session.kind.rawValue): reply bytes \(client.received)..<\(client.received + bytes.count) differ from what was sent")
            abort(client, now: now)
            return
        }
        let answeredBefore = client.messagesAnswered
        client.received += bytes.count
        client.lastProgress = now
        counters.bytesReceived += bytes.count
        if case .pingPong = client.session.behaviour { counters.roundTrips += client.messagesAnswered - answeredBefore }
        replied(client, now: now)
    }

    private func updateInterest(_ client: ChaosClient) {
        guard client.isOpen else { return }
        var events: UInt32 = client.session.readsContinuously ? UInt32(CEPOLL_IN) : 0
        if client.blocked { events |= UInt32(CEPOLL_OUT) }
        guard events != client.registered else { return }
        client.registered = events
        _ = cepoll_modify(epoll, client.fd, events, UInt64(client.index))
    }

    // MARK: Ending sessions

    /// Ends the session as its behaviour meant to: a close, or a reset the client chose (counted).
    func end(_ client: ChaosClient, reset: Bool, now: UInt64) {
        if reset { counters.resets += 1 }
        closeSocket(client, reset: reset)
        pause(client, now: now)
    }

    /// Ends the session after a problem (already counted, or counted here as unexpected), with a
    /// reset that is not counted as one of the clients' chosen resets.
    func abort(_ client: ChaosClient, unexpected problem: String? = nil, now: UInt64) {
        if let problem { counters.unexpected("\(client.session.kind.rawValue): \(problem)") }
        closeSocket(client, reset: true)
        pause(client, now: now)
    }

    private func pause(_ client: ChaosClient, now: UInt64) {
        client.phase = .pausing
        client.actionAt = now + client.random.nanoseconds(plan.pause)
    }

    private func closeSocket(_ client: ChaosClient, reset: Bool) {
        guard client.isOpen else { return }
        if reset { cepoll_close_with_reset(client.fd) } else { Glibc.close(client.fd) }
        client.fd = -1
        client.registered = 0
        openConnections -= 1
    }

    private func closeAll() {
        for client in clients {
            closeSocket(client, reset: true)
            client.phase = .pausing
            client.actionAt = 0
        }
    }

    // MARK: Helpers

    func countShortHalfClose(_ what: String) { counters.halfCloseWasShort(what) }
    func countCompleteHalfClose() { counters.completeHalfCloses += 1 }

    static func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }

    static func describe(_ error: CInt) -> String { String(cString: strerror(error)) }
}
