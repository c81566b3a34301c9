import CEpoll
import Glibc

/// The short-router flooder: on the short router a connection carries one request and one reply,
/// so pipelining over one connection means nothing there. This flooder opens connections as fast
/// as the node accepts them, up to `P2PSlowPeerPlan.connections`, sends one `getreq` with a large
/// payload on each (the flood spread over them) and never reads nor closes them until it leaves.
///
/// A node bounds this by how much it reads of each request before answering, how many requests it
/// reads at once, and by closing each connection once it has answered. With
/// `P2PSlowPeerPlan.withholdLastByte` the flooder keeps back the last byte of every request: the
/// node cannot answer, and holds what it read of each until its reply timeout closes the connection.
///
/// Its connections live in an epoll instance of its own, which the run's loop watches as one
/// descriptor (an epoll descriptor is readable while it has ready events): the loop dispatches by
/// descriptor, one per client.
final class PeerConnectionFlooder: PeerFlooder {
    private enum State {
        case connecting, sending
        /// The request went, or the flood ended first: nothing more is written.
        case holding
        /// The node shut its side of the connection (having answered, as a short server does);
        /// the socket stays open, unread, as the rest.
        case shutByNode
        case closed
    }

    /// One connection and how far its request got.
    private struct Connection {
        var fd: CInt
        var state = State.connecting
        var sent = 0
    }

    private let plan: P2PSlowPeerPlan
    private let epoll: CInt
    private let request: UnsafeMutableRawBufferPointer
    /// The bytes of it each connection sends: all, or all but the last.
    private let sendLength: Int
    /// Each connection's own copy of the request's head, holding its message id (native wire).
    private let headLength: Int
    private var heads: [[UInt8]] = []
    private var connections: [Connection] = []
    private let ready: UnsafeMutablePointer<cepoll_ready>
    private static let readyCapacity = 256

    /// The connections' epoll instance: what the run's loop watches.
    private(set) var fd: CInt
    private var port = 0
    private(set) var outcome: FloodOutcome?
    private var detail = ""
    private var startedAt: UInt64 = 0
    private var lastProgress: UInt64 = 0
    private var secondsToLastByte: Double?
    private var seconds: Double?
    private var accepted = 0
    private var established = 0
    private var shutByNode = 0
    private var cutOff = 0
    private var connectFailures = 0
    private var firstConnectError: String?
    /// Whether connecting stopped for good (the descriptors ran out, or the flood ended).
    private var connectingStopped = false

    init(plan: P2PSlowPeerPlan, epoll: CInt) throws(LoadError) {
        self.plan = plan
        self.epoll = epoll
        let bytes = PeerMessages.getRequest(
            from: P2PSlowPeerPlan.flooderName, payload: plan.floodPayload, messageID: 1, wire: plan.wire)
        request = .allocate(byteCount: bytes.count, alignment: 16)
        request.copyBytes(from: bytes)
        sendLength = bytes.count - (plan.withholdLastByte ? 1 : 0)
        headLength = min(sendLength, PeerMessages.nativeMessageIDOffset + 8)
        ready = .allocate(capacity: Self.readyCapacity)
        fd = cepoll_create()
        guard fd >= 0 else { throw LoadError.system("epoll_create1", errno) }
    }

    deinit {
        leave()
        Glibc.close(fd)
        request.deallocate()
        ready.deallocate()
    }

    var figures: PeerFloodFigures {
        var figures = PeerFloodFigures()
        figures.bytesOffered = plan.connections * sendLength
        figures.bytesAccepted = accepted
        figures.requestsOffered = plan.connections
        figures.requestsAccepted = count { $0.sent == sendLength }
        figures.outcome = outcome
        figures.detail = detail
        figures.secondsToLastByte = secondsToLastByte
        figures.seconds = seconds
        figures.connectionsOpened = connections.count
        figures.connectionsEstablished = established
        figures.closedByNode = shutByNode
        figures.cutOff = cutOff
        figures.connectFailures = connectFailures
        return figures
    }

    func connect(port: Int, now: UInt64) {
        self.port = port
        startedAt = now
        lastProgress = now
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_IN), UInt64(fd)) == 0 else {
            return end(.connectFailed, "epoll_ctl: \(ChaosDriver.describe(errno))", now: now)
        }
        openConnections(now: now)
    }

    func leave() {
        for index in connections.indices where connections[index].state != .closed {
            cepoll_close_with_reset(connections[index].fd)
            connections[index].state = .closed
        }
    }

    /// The loop saw the flooder's epoll descriptor readable: handles its connections' events.
    func handle(_ events: UInt32, now: UInt64) {
        let count = cepoll_wait(fd, ready, Int32(Self.readyCapacity), 0)
        for index in 0..<max(0, Int(count)) {
            handle(ready[index].events, connection: Int(ready[index].data), now: now)
        }
        openConnections(now: now)
    }

    func check(now: UInt64) {
        guard outcome == nil else { return }
        openConnections(now: now)
        let inProgress = connections.contains { $0.state == .connecting || $0.state == .sending }
        if connectingStopped && !inProgress {
            finish(now: now)
        } else if now > lastProgress + ChaosDriver.nanoseconds(plan.stallSeconds) {
            end(.stalled, "no byte accepted and no connection established for "
                + "\(NumberText.format(plan.stallSeconds, decimals: 1)) s", now: now)
        } else if now > startedAt + ChaosDriver.nanoseconds(plan.floodTimeout) {
            end(.timedOut, "still taking bytes after \(NumberText.format(plan.floodTimeout, decimals: 1)) s", now: now)
        }
    }

    // MARK: Connections

    /// Opens connections while fewer than the plan's connects are in progress, until all are open.
    private func openConnections(now: UInt64) {
        guard outcome == nil, !connectingStopped else { return }
        var connecting = count { $0.state == .connecting }
        while connecting < plan.connectsInProgress && connections.count < plan.connections {
            guard open() else { break }
            connecting += 1
        }
        if connections.count >= plan.connections { connectingStopped = true }
    }

    /// Opens one connection; false if it could not (counted as a failed connect).
    private func open() -> Bool {
        let socket = cepoll_connect_tcp4(P2PSlowPeerPlan.host, Int32(port))
        guard socket >= 0 else {
            connectFailed(ChaosDriver.describe(-socket))
            // Out of descriptors: what this process holds is the cap, whatever was asked.
            if -socket == EMFILE || -socket == ENFILE { connectingStopped = true }
            return false
        }
        let index = connections.count
        guard cepoll_add(fd, socket, UInt32(CEPOLL_OUT), UInt64(index)) == 0 else {
            connectFailed("epoll_ctl: \(ChaosDriver.describe(errno))")
            cepoll_close_with_reset(socket)
            return false
        }
        connections.append(Connection(fd: socket))
        heads.append(head(for: index))
        return true
    }

    /// The request's first bytes with message id `index + 1` on the native wire (distinct per
    /// connection, as a real dialer's are); the JSON wire has no ids.
    private func head(for index: Int) -> [UInt8] {
        var head = Array(UnsafeRawBufferPointer(rebasing: request[0..<headLength]))
        if plan.wire == .native {
            head.withUnsafeMutableBytes { PeerMessages.stampMessageID(UInt64(index + 1), intoFrameAt: $0.baseAddress!) }
        }
        return head
    }

    private func handle(_ events: UInt32, connection index: Int, now: UInt64) {
        switch connections[index].state {
        case .connecting:
            if events & UInt32(CEPOLL_ERR | CEPOLL_HUP) != 0 {
                return drop(index, connectError: cepoll_socket_error(connections[index].fd), now: now)
            }
            established(index, now: now)
        case .sending:
            if events & UInt32(CEPOLL_ERR | CEPOLL_HUP) != 0 { return cut(index) }
            send(index, now: now)
        case .holding:
            if events & UInt32(CEPOLL_ERR | CEPOLL_HUP) != 0 { return close(index) }
            // Counted, and no longer watched but for a reset (a level-triggered RDHUP would
            // report it on every wait).
            shutByNode += 1
            connections[index].state = .shutByNode
            _ = cepoll_modify(fd, connections[index].fd, 0, UInt64(index))
        case .shutByNode:
            close(index)
        case .closed:
            break
        }
    }

    private func established(_ index: Int, now: UInt64) {
        let error = cepoll_socket_error(connections[index].fd)
        guard error == 0 else { return drop(index, connectError: error, now: now) }
        connections[index].state = .sending
        established += 1
        lastProgress = now
        send(index, now: now)
    }

    /// Writes the connection's request until the socket is full or all of it went.
    private func send(_ index: Int, now: UInt64) {
        let fd = connections[index].fd
        while connections[index].sent < sendLength {
            let sent = connections[index].sent
            let count = sent < headLength
                ? heads[index].withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, headLength - sent, Int32(MSG_NOSIGNAL)) }
                : Glibc.send(fd, request.baseAddress! + sent, sendLength - sent, Int32(MSG_NOSIGNAL))
            if count > 0 {
                connections[index].sent += count
                accepted += count
                lastProgress = now
                secondsToLastByte = Double(now - startedAt) / 1e9
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && errno == EAGAIN {
                return
            } else {
                return cut(index)
            }
        }
        hold(index)
    }

    /// Writes nothing more on the connection: from now on only the node's end of it matters.
    private func hold(_ index: Int) {
        connections[index].state = .holding
        _ = cepoll_modify(fd, connections[index].fd, UInt32(CEPOLL_RDHUP), UInt64(index))
    }

    /// The node reset or closed the connection before its whole request went.
    private func cut(_ index: Int) {
        cutOff += 1
        close(index)
    }

    /// Closes a connection the node reset: epoll would report it on every wait.
    private func close(_ index: Int) {
        cepoll_close_with_reset(connections[index].fd)
        connections[index].state = .closed
    }

    private func drop(_ index: Int, connectError: CInt, now: UInt64) {
        connectFailed(ChaosDriver.describe(connectError))
        close(index)
    }

    private func connectFailed(_ why: String) {
        connectFailures += 1
        if firstConnectError == nil { firstConnectError = why }
    }

    private func count(where predicate: (Connection) -> Bool) -> Int {
        connections.reduce(0) { $0 + (predicate($1) ? 1 : 0) }
    }

    // MARK: Ending

    /// Every connection was opened and is done with its request (or failed).
    private func finish(now: UInt64) {
        guard established > 0 else {
            return end(.connectFailed, "no connection established; first error: \(firstConnectError ?? "?")", now: now)
        }
        var problems: [String] = []
        if cutOff > 0 { problems.append("\(cutOff) request(s) cut off by the node") }
        if connectFailures > 0 { problems.append("\(connectFailures) connect(s) failed, first: \(firstConnectError ?? "?")") }
        guard problems.isEmpty else { return end(.closedByServer, problems.joined(separator: "; "), now: now) }
        let what = plan.withholdLastByte ? "every request but its last byte" : "every request"
        end(.allSent, "\(what) accepted on \(connections.count) connections", now: now)
    }

    private func end(_ outcome: FloodOutcome, _ detail: String, now: UInt64) {
        self.outcome = outcome
        self.detail = detail
        seconds = Double(now - startedAt) / 1e9
        connectingStopped = true
        // Connections still connecting or sending write nothing more but stay open until `leave()`.
        for index in connections.indices where connections[index].state == .sending || connections[index].state == .connecting {
            hold(index)
        }
    }
}
