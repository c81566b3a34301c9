import CEpoll
import CTLSClient
import Glibc

/// A neutral TCP load generator on plain syscalls: one thread, one epoll instance, non-blocking
/// sockets, level-triggered. It favours no server: the same bytes, the same calls, whoever answers.
///
/// pingpong and stream keep a fixed number of messages in flight on every connection (a reply sends
/// the next one), warm up, then measure replies per second, reply bytes per second, latency (each
/// message's send-to-reply time) and the server's CPU time. conns opens many connections, a bounded
/// number at a time, does one round trip on each, and measures how long until all were answered and
/// how much the server's resident memory grew. churn keeps connections cycling (connect, one round
/// trip, close, connect again) and measures connections per second.
///
/// With TLS (`plan.tls`) each connection is OpenSSL's client on the same socket (`CTLSClient`: TLS
/// 1.3, TLS_AES_128_GCM_SHA256, X25519, no certificate verification, whole socket reads), the
/// handshake done before the connection counts as connected; replies are checked as plaintext.
final class LoadGenerator {
    private enum Phase { case connecting, warmingUp, measuring, holding, stopped }

    private let plan: LoadPlan
    private let pattern: MessagePattern
    private let checker: ReplyChecker
    private let epoll: CInt
    private let connections: [LoadConnection]
    private let readBuffer: UnsafeMutableRawBufferPointer
    private let ready: UnsafeMutablePointer<cepoll_ready>
    private static let readyCapacity = 512

    private var phase = Phase.connecting
    private var result = LoadResult()
    private var histogram = LatencyHistogram()
    private var pending = 0
    private var measuredBytes = 0
    private var lastAnswer: UInt64 = 0
    /// TLS: what every connection shares (a `ctls_client`), nil for plaintext.
    private let tlsClient: OpaquePointer?
    /// churn mode: measured connections whose handshake resumed a session.
    private var resumedMeasured = 0

    init(plan: LoadPlan) throws(LoadError) {
        self.plan = plan
        pattern = MessagePattern(proto: plan.proto, size: plan.size, minimumMessages: plan.messagesInFlight)
        checker = ReplyChecker(pattern: pattern, proto: plan.proto, size: plan.size, verify: plan.verify)
        epoll = cepoll_create()
        guard epoll >= 0 else { throw LoadError.system("epoll_create1", errno) }
        connections = (0..<plan.connections).map { LoadConnection(index: $0, messagesInFlight: plan.messagesInFlight) }
        readBuffer = .allocate(byteCount: 256 * 1024, alignment: 16)
        ready = .allocate(capacity: Self.readyCapacity)
        if let mode = plan.tls {
            guard let client = ctls_client_new(mode == .resumed ? 1 : 0) else {
                throw LoadError.tls(String(cString: ctls_error()))
            }
            tlsClient = client
        } else {
            tlsClient = nil
        }
    }

    deinit {
        ctls_client_free(tlsClient)
        Glibc.close(epoll)
        readBuffer.deallocate()
        ready.deallocate()
    }

    /// Runs the plan and returns what it measured.
    func run() -> LoadResult {
        switch plan.mode {
        case .pingpong, .stream: runLoad()
        case .conns: runConnections()
        case .churn: runChurn()
        }
        closeAll()
        return result
    }

    // MARK: Scenarios

    private func runLoad() {
        connectAll(deadline: monotonicNanoseconds() + Self.nanoseconds(plan.timeout))
        guard result.connected > 0 else { return }
        phase = .warmingUp
        let start = monotonicNanoseconds()
        for connection in connections where connection.state == .connected { fillWindow(connection, at: start) }
        run(until: start + Self.nanoseconds(plan.warmup))

        measureLoad()
    }

    private func runConnections() {
        let rssBefore = plan.serverPID.flatMap(ProcessStats.residentKiB(of:))
        let start = monotonicNanoseconds()
        connectAll(deadline: start + Self.nanoseconds(plan.timeout))
        result.secondsToAllAnswered = lastAnswer > 0 ? Double(lastAnswer - start) / 1e9 : nil
        phase = .holding
        run(until: monotonicNanoseconds() + 100_000_000)
        var rssAfter = plan.serverPID.flatMap(ProcessStats.residentKiB(of:))
        run(until: monotonicNanoseconds() + Self.nanoseconds(plan.hold))
        if let later = plan.serverPID.flatMap(ProcessStats.residentKiB(of:)) { rssAfter = max(rssAfter ?? 0, later) }
        phase = .stopped
        summarizeConnections(rssBefore: rssBefore, rssAfter: rssAfter)
    }

    private func runChurn() {
        phase = .warmingUp
        let start = monotonicNanoseconds()
        for connection in connections { startConnect(connection) }
        run(until: start + Self.nanoseconds(plan.warmup))

        measureLoad()
        if plan.tls != nil, histogram.total > 0 { result.resumedFraction = Double(resumedMeasured) / Double(histogram.total) }
    }

    /// Runs the measured window and summarizes it, with the server's CPU over exactly that window.
    private func measureLoad() {
        let cpuBefore = plan.serverPID.flatMap(ProcessStats.cpuSeconds(of:))
        let measureStart = monotonicNanoseconds()
        phase = .measuring
        run(until: measureStart + Self.nanoseconds(plan.duration))
        phase = .stopped
        let seconds = Double(monotonicNanoseconds() - measureStart) / 1e9
        let cpuAfter = plan.serverPID.flatMap(ProcessStats.cpuSeconds(of:))
        summarizeLoad(seconds: seconds, serverCPU: cpuBefore.flatMap { before in cpuAfter.map { $0 - before } })
    }

    private func summarizeLoad(seconds: Double, serverCPU: Double?) {
        let messages = Int(histogram.total)
        result.seconds = seconds
        result.messages = messages
        result.messagesPerSecond = Double(messages) / seconds
        result.megabytesPerSecond = Double(measuredBytes) / seconds / 1e6
        recordPercentiles()
        if let serverCPU, messages > 0 { result.serverMicrosecondsPerMessage = serverCPU * 1e6 / Double(messages) }
    }

    private func summarizeConnections(rssBefore: Int?, rssAfter: Int?) {
        recordPercentiles()
        result.serverRSSBeforeKiB = rssBefore
        result.serverRSSAfterKiB = rssAfter
        if let rssBefore, let rssAfter, result.answered > 0 {
            result.serverBytesPerConnection = Double(rssAfter - rssBefore) * 1024 / Double(result.answered)
        }
    }

    private func recordPercentiles() {
        result.latencyP50 = histogram.percentile(0.5) / 1000
        result.latencyP99 = histogram.percentile(0.99) / 1000
        result.latencyP999 = histogram.percentile(0.999) / 1000
    }

    // MARK: The event loop

    /// Serves events until `deadline` (monotonic nanoseconds).
    private func run(until deadline: UInt64) {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return }
            poll(timeoutMilliseconds: Int32(min(10, (deadline - now) / 1_000_000 + 1)))
        }
    }

    private func poll(timeoutMilliseconds: Int32) {
        let count = cepoll_wait(epoll, ready, Int32(Self.readyCapacity), timeoutMilliseconds)
        for index in 0..<max(0, Int(count)) {
            let event = ready[index]
            dispatch(event.events, on: connections[Int(event.data)])
        }
    }

    private func dispatch(_ events: UInt32, on connection: LoadConnection) {
        guard connection.isOpen else { return }
        if connection.state == .connecting {
            if events & UInt32(CEPOLL_OUT | CEPOLL_ERR | CEPOLL_HUP) != 0 { finishConnect(connection) }
            return
        }
        if connection.state == .handshaking {
            advanceHandshake(connection)
            return
        }
        if events & UInt32(CEPOLL_IN | CEPOLL_ERR | CEPOLL_HUP) != 0 {
            readReplies(on: connection)
            guard connection.isOpen else { return }
        }
        if events & UInt32(CEPOLL_OUT) != 0, !writeOwed(on: connection) {
            drop(connection, error: errno)
        }
    }

    // MARK: Connecting

    /// Opens every connection, at most `connectsInFlight` pending at once, until all are settled
    /// (conns mode: answered) or `deadline` passes; whatever is still pending then has failed.
    private func connectAll(deadline: UInt64) {
        var next = 0
        while true {
            while next < connections.count && pending < plan.connectsInFlight {
                startConnect(connections[next])
                next += 1
            }
            if next == connections.count && pending == 0 { break }
            if monotonicNanoseconds() > deadline { break }
            poll(timeoutMilliseconds: 10)
        }
        for connection in connections where connection.isUnsettled {
            fail(connection, error: ETIMEDOUT)
        }
    }

    private func startConnect(_ connection: LoadConnection) {
        let fd = cepoll_connect_tcp4(plan.host, Int32(plan.port))
        guard fd >= 0 else {
            fail(connection, error: -fd)
            return
        }
        connection.reset()
        connection.fd = fd
        connection.state = .connecting
        connection.startedAt = monotonicNanoseconds()
        pending += 1
        guard cepoll_add(epoll, fd, UInt32(CEPOLL_OUT), UInt64(connection.index)) == 0 else {
            fail(connection, error: errno)
            return
        }
    }

    private func finishConnect(_ connection: LoadConnection) {
        let error = cepoll_socket_error(connection.fd)
        guard error == 0 else {
            fail(connection, error: error)
            return
        }
        result.connected += 1
        watch(connection, output: false)
        if let tlsClient {
            guard let tls = ctls_connection_new(tlsClient, connection.fd) else {
                failTLS(connection)
                return
            }
            connection.tls = tls
            connection.state = .handshaking
            advanceHandshake(connection)
        } else {
            connectionReady(connection)
        }
    }

    /// TLS: drives the handshake on; once done, the connection is ready.
    private func advanceHandshake(_ connection: LoadConnection) {
        guard let tls = connection.tls else { return }
        switch ctls_handshake(tls) {
        case Int32(CTLS_DONE):
            if connection.wantsOutput { watch(connection, output: false) }
            connectionReady(connection)
        case Int32(CTLS_WANT_READ):
            if connection.wantsOutput { watch(connection, output: false) }
        case Int32(CTLS_WANT_WRITE):
            if !connection.wantsOutput { watch(connection, output: true) }
        default:
            failTLS(connection)
        }
    }

    /// Connected (TLS: handshaken): conns and churn send their one message, the others count it
    /// settled.
    private func connectionReady(_ connection: LoadConnection) {
        if plan.mode == .conns || plan.mode == .churn {
            connection.state = .awaitingFirstReply
            connection.queueMessage(wireLength: pattern.wireLength, at: monotonicNanoseconds())
            if !writeOwed(on: connection) { drop(connection, error: errno) }
        } else {
            connection.state = .connected
            pending -= 1
        }
    }

    // MARK: Reading and writing

    private func readReplies(on connection: LoadConnection) {
        if let tls = connection.tls {
            readTLSReplies(on: connection, tls: tls)
            return
        }
        let count = read(connection.fd, readBuffer.baseAddress, readBuffer.count)
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return }
        guard count > 0 else {
            drop(connection, error: count == 0 ? ECONNRESET : errno)
            return
        }
        consumeReplies(count, on: connection)
    }

    /// TLS: decrypts until OpenSSL needs more from the socket (it may hold records it read ahead,
    /// which the level-triggered epoll would not report again).
    private func readTLSReplies(on connection: LoadConnection, tls: OpaquePointer) {
        while connection.isOpen && connection.tls == tls {
            let count = ctls_read(tls, readBuffer.baseAddress, readBuffer.count)
            if count == CTLS_WANT_READ || count == CTLS_WANT_WRITE { return }
            guard count > 0 else {
                if count == CTLS_CLOSED {
                    drop(connection, error: ECONNRESET)
                } else {
                    dropTLS(connection)
                }
                return
            }
            consumeReplies(count, on: connection)
        }
    }

    /// The first `count` bytes of the read buffer are replies received on `connection`.
    private func consumeReplies(_ count: Int, on connection: LoadConnection) {
        let now = monotonicNanoseconds()
        guard let completed = checker.consume(UnsafeRawBufferPointer(rebasing: readBuffer[0..<count]), on: connection) else {
            reject(connection)
            return
        }
        if phase == .measuring { measuredBytes += count }
        for _ in 0..<completed { recordReply(sentAt: connection.completeOldest(), now: now, on: connection) }
        if connection.state == .awaitingFirstReply {
            if connection.outstanding == 0 {
                if plan.mode == .churn {
                    completeCycle(connection, at: now)
                } else {
                    markAnswered(connection, at: now)
                }
            }
        } else if completed > 0 && (phase == .warmingUp || phase == .measuring) {
            fillWindow(connection, at: now)
        }
    }

    private func recordReply(sentAt sent: UInt64, now: UInt64, on connection: LoadConnection) {
        guard plan.mode != .churn else { return }
        if phase == .measuring || connection.state == .awaitingFirstReply {
            histogram.record(nanoseconds: now > sent ? now - sent : 0)
        }
    }

    private func markAnswered(_ connection: LoadConnection, at time: UInt64) {
        connection.state = .answered
        result.answered += 1
        lastAnswer = time
        pending -= 1
    }

    /// churn mode: the connection's round trip is done; it closes (TLS: with `close_notify`) and
    /// its slot connects again. Its time counts from its connect to its reply.
    private func completeCycle(_ connection: LoadConnection, at time: UInt64) {
        if phase == .measuring {
            histogram.record(nanoseconds: time > connection.startedAt ? time - connection.startedAt : 0)
            if let tls = connection.tls, ctls_session_reused(tls) != 0 { resumedMeasured += 1 }
        }
        pending -= 1
        if let tls = connection.tls { ctls_shutdown(tls) }
        releaseTLS(connection)
        Glibc.close(connection.fd)
        connection.fd = -1
        connection.state = .closed
        if phase == .warmingUp || phase == .measuring { startConnect(connection) }
    }

    /// Tops the connection up to its messages in flight and writes them.
    private func fillWindow(_ connection: LoadConnection, at time: UInt64) {
        while connection.outstanding < plan.messagesInFlight {
            connection.queueMessage(wireLength: pattern.wireLength, at: time)
        }
        if !writeOwed(on: connection) { drop(connection, error: errno) }
    }

    /// Writes what the connection owes, from the pattern; false if the socket failed.
    private func writeOwed(on connection: LoadConnection) -> Bool {
        while connection.bytesOwed > 0 {
            let offset = connection.bytesWritten % pattern.wireLength
            let length = min(pattern.bytes.count - offset, connection.bytesOwed)
            if let tls = connection.tls {
                let written = ctls_write(tls, pattern.bytes.baseAddress! + offset, length)
                if written > 0 {
                    connection.bytesOwed -= written
                    connection.bytesWritten += written
                    continue
                } else if written == CTLS_WANT_WRITE {
                    if !connection.wantsOutput { watch(connection, output: true) }
                    return true
                } else if written == CTLS_WANT_READ {
                    return true
                }
                noteTLSError()
                return false
            }
            let written = write(connection.fd, pattern.bytes.baseAddress! + offset, length)
            if written > 0 {
                connection.bytesOwed -= written
                connection.bytesWritten += written
            } else if written < 0 && errno == EINTR {
                continue
            } else if written < 0 && errno == EAGAIN {
                if !connection.wantsOutput { watch(connection, output: true) }
                return true
            } else {
                return false
            }
        }
        if connection.wantsOutput { watch(connection, output: false) }
        return true
    }

    private func watch(_ connection: LoadConnection, output: Bool) {
        connection.wantsOutput = output
        let events = UInt32(CEPOLL_IN) | (output ? UInt32(CEPOLL_OUT) : 0)
        _ = cepoll_modify(epoll, connection.fd, events, UInt64(connection.index))
    }

    // MARK: Failures and closing

    /// The connection broke while in use: a failed connection in conns mode, dropped otherwise.
    private func drop(_ connection: LoadConnection, error: CInt) {
        if connection.state == .awaitingFirstReply {
            result.failed += 1
        } else if phase != .stopped {
            result.dropped += 1
        }
        close(connection, error: error)
    }

    /// A reply was not what was sent: counted as bad (and, in conns mode, as a failed connection).
    private func reject(_ connection: LoadConnection) {
        result.bad += 1
        if connection.state == .awaitingFirstReply { result.failed += 1 }
        close(connection, error: EPROTO)
    }

    /// The connection could not be established.
    private func fail(_ connection: LoadConnection, error: CInt) {
        result.failed += 1
        close(connection, error: error)
    }

    /// TLS: the client failed to set up or to handshake (counted as a failed connection).
    private func failTLS(_ connection: LoadConnection) {
        noteTLSError()
        fail(connection, error: EPROTO)
    }

    /// TLS: the client failed while in use.
    private func dropTLS(_ connection: LoadConnection) {
        noteTLSError()
        drop(connection, error: EPROTO)
    }

    /// Keeps OpenSSL's reason as the first error, if none was kept yet.
    private func noteTLSError() {
        if result.firstError == nil { result.firstError = "TLS: " + String(cString: ctls_error()) }
    }

    private func releaseTLS(_ connection: LoadConnection) {
        ctls_connection_free(connection.tls)
        connection.tls = nil
    }

    private func close(_ connection: LoadConnection, error: CInt) {
        if connection.isPending { pending -= 1 }
        if result.firstError == nil { result.firstError = String(cString: strerror(error)) }
        releaseTLS(connection)
        if connection.isOpen { Glibc.close(connection.fd) }
        connection.fd = -1
        connection.state = .closed
    }

    private func closeAll() {
        for connection in connections where connection.isOpen {
            releaseTLS(connection)
            cepoll_close_with_reset(connection.fd)
            connection.fd = -1
            connection.state = .closed
        }
    }

    private static func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }
}

/// A load-generator failure before any load ran.
enum LoadError: Error, CustomStringConvertible {
    case system(String, CInt)
    case tls(String)

    var description: String {
        switch self {
        case .system(let call, let code): return "\(call) failed: \(String(cString: strerror(code)))"
        case .tls(let reason): return "the TLS client could not be set up: \(reason)"
        }
    }
}
