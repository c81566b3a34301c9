import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

final class PosixSocketTests: XCTestCase {
    /// Descriptors to close in `tearDown`.
    private var openDescriptors: [CInt] = []

    override func tearDown() {
        for fd in openDescriptors.reversed() {
            try? Posix.live.close(fd)
        }
        openDescriptors = []
        super.tearDown()
    }

    // MARK: - Helpers

    @discardableResult
    private func track(_ fd: CInt) -> CInt {
        openDescriptors.append(fd)
        return fd
    }

    /// Closes `fd` now instead of in `tearDown`.
    private func closeNow(_ fd: CInt) throws {
        openDescriptors.removeAll { $0 == fd }
        try Posix.live.close(fd)
    }

    private func tcpSocket(_ domain: CInt = AF_INET) throws -> CInt {
        track(try Posix.live.socket(domain: domain, type: CInt(SOCK_STREAM.rawValue)))
    }

    /// Waits (at most about 5 s, never sleeping) until `fd` reports any of `events` (or an error or
    /// hang-up, which epoll always reports); returns the reported bits, or 0 on timeout.
    private func waitFor(_ events: UInt32, on fd: CInt) throws -> UInt32 {
        let epfd = try Posix.live.epollCreate()
        defer { try? Posix.live.close(epfd) }
        try Posix.live.epollControl(epfd, op: Posix.EPOLL_CTL_ADD, fd: fd, events: events, data: UInt64(fd))
        var event = Posix.EpollEvent()
        for _ in 0..<50 {
            if try Posix.live.epollWait(epfd, events: &event, maxEvents: 1, timeoutMs: 100) == 1 {
                XCTAssertEqual(event.data, UInt64(fd))
                return event.events
            }
        }
        XCTFail("fd \(fd) did not become ready for \(events) within 5 s")
        return 0
    }

    /// A listener on 127.0.0.1 with a kernel-chosen port, and its address.
    private func loopbackListener() throws -> (fd: CInt, address: SocketAddress) {
        let listener = try tcpSocket()
        try Posix.live.setOption(listener, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
        try Posix.live.bind(listener, to: .loopbackV4(port: 0))
        try Posix.live.listen(listener, backlog: Posix.somaxconn())
        return (listener, try Posix.live.localAddress(listener))
    }

    /// A connected client/server socket pair over loopback, connected without blocking.
    private func connectedPair() throws -> (client: CInt, server: CInt) {
        let (listener, address) = try loopbackListener()
        let client = try tcpSocket()
        if try !Posix.live.connect(client, to: address) {
            XCTAssertNotEqual(try waitFor(Posix.EPOLLOUT, on: client) & Posix.EPOLLOUT, 0)
        }
        XCTAssertEqual(try Posix.live.socketError(client), 0)
        XCTAssertNotEqual(try waitFor(Posix.EPOLLIN, on: listener) & Posix.EPOLLIN, 0)
        guard case .processed(let server) = try Posix.live.accept(listener) else {
            XCTFail("no connection to accept after EPOLLIN")
            throw IOError(errnoCode: EAGAIN, function: "accept4(2)")
        }
        track(server)
        return (client, server)
    }

    /// Reads exactly `count` bytes from non-blocking `fd`, waiting for readiness as needed.
    private func readExactly(_ count: Int, from fd: CInt) throws -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while received.count < count {
            let result = try chunk.withUnsafeMutableBytes { try Posix.live.read(fd, into: $0) }
            switch result {
            case .processed(0):
                XCTFail("unexpected EOF after \(received.count) of \(count) bytes")
                return received
            case .processed(let n):
                received += chunk[..<n]
            case .wouldBlock:
                guard try waitFor(Posix.EPOLLIN, on: fd) != 0 else { return received }
            }
        }
        return received
    }

    // MARK: - Tests

    func testALoopbackConnectionCarriesWritesAndGatheringWritesBothWays() throws {
        let (listener, address) = try loopbackListener()
        XCTAssertNotEqual(address.port, 0)
        XCTAssertEqual(address.ipAddress, "127.0.0.1")
        XCTAssertEqual(try Posix.live.accept(listener), .wouldBlock)

        let client = try tcpSocket()
        if try !Posix.live.connect(client, to: address) {
            XCTAssertNotEqual(try waitFor(Posix.EPOLLOUT, on: client) & Posix.EPOLLOUT, 0)
        }
        XCTAssertEqual(try Posix.live.socketError(client), 0)
        XCTAssertNotEqual(try waitFor(Posix.EPOLLIN, on: listener) & Posix.EPOLLIN, 0)
        guard case .processed(let server) = try Posix.live.accept(listener) else {
            return XCTFail("no connection to accept after EPOLLIN")
        }
        track(server)
        XCTAssertEqual(try Posix.live.accept(listener), .wouldBlock)
        XCTAssertEqual(try Posix.live.remoteAddress(server), try Posix.live.localAddress(client))
        XCTAssertEqual(try Posix.live.remoteAddress(client), address)

        // Accepted sockets are non-blocking: an empty read says so instead of hanging.
        var empty = [UInt8](repeating: 0, count: 16)
        XCTAssertEqual(try empty.withUnsafeMutableBytes { try Posix.live.read(server, into: $0) }, .wouldBlock)

        let hello = Array("hello".utf8)
        XCTAssertEqual(try hello.withUnsafeBytes { try Posix.live.write(client, from: $0) }, .processed(5))
        XCTAssertEqual(try readExactly(5, from: server), hello)

        let first = Array("wor".utf8)
        let second = Array("ld!".utf8)
        let written = try first.withUnsafeBytes { a in
            try second.withUnsafeBytes { b in
                var vectors = [
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count),
                ]
                return try Posix.live.writev(server, &vectors, count: CInt(vectors.count))
            }
        }
        XCTAssertEqual(written, .processed(6))
        XCTAssertEqual(try readExactly(6, from: client), first + second)

        // Half-close: the server reads EOF, and can still write back.
        try Posix.live.shutdown(client, how: .write)
        XCTAssertNotEqual(try waitFor(Posix.EPOLLIN | Posix.EPOLLRDHUP, on: server), 0)
        XCTAssertEqual(try empty.withUnsafeMutableBytes { try Posix.live.read(server, into: $0) }, .processed(0))
        XCTAssertEqual(try hello.withUnsafeBytes { try Posix.live.write(server, from: $0) }, .processed(5))
        XCTAssertEqual(try readExactly(5, from: client), hello)
    }

    func testConnectingToAPortNobodyListensOnIsRefused() throws {
        // A socket bound to a kernel-chosen port but never listening holds that port for the whole
        // test, so nothing else can start listening there, and a SYN to it is answered with RST.
        let placeholder = try tcpSocket()
        try Posix.live.bind(placeholder, to: .loopbackV4(port: 0))
        let address = try Posix.live.localAddress(placeholder)

        let client = try tcpSocket()
        do {
            if try Posix.live.connect(client, to: address) {
                return XCTFail("connected to \(address), where nothing listens")
            }
        } catch {
            // Some kernels refuse a loopback connect at once instead of reporting it later.
            XCTAssertEqual(error.errnoCode, ECONNREFUSED, "\(error)")
            return
        }
        let events = try waitFor(Posix.EPOLLOUT, on: client)
        XCTAssertNotEqual(events & (Posix.EPOLLERR | Posix.EPOLLHUP), 0)
        XCTAssertEqual(try Posix.live.socketError(client), ECONNREFUSED)
        XCTAssertEqual(try Posix.live.socketError(client), 0, "reading SO_ERROR clears it")
    }

    func testAnEventfdWriteFromAnotherThreadWakesABlockedEpollWait() throws {
        let epfd = track(try Posix.live.epollCreate())
        let eventfd = track(try Posix.live.eventfdCreate())
        let token: UInt64 = 0xFEED_FACE_CAFE_BEEF  // both 32-bit halves matter on x86_64
        try Posix.live.epollControl(epfd, op: Posix.EPOLL_CTL_ADD, fd: eventfd, events: Posix.EPOLLIN, data: token)

        var events = [Posix.EpollEvent](repeating: .init(), count: 4)
        let poll = { (timeoutMs: CInt) throws -> Int in
            try events.withUnsafeMutableBufferPointer { buffer in
                try Posix.live.epollWait(epfd, events: buffer.baseAddress!, maxEvents: CInt(buffer.count), timeoutMs: timeoutMs)
            }
        }
        XCTAssertEqual(try poll(0), 0, "nothing written yet")
        XCTAssertEqual(try Posix.live.eventfdDrain(eventfd), 0, "draining an unsignalled eventfd does not block")

        Thread.detachNewThread {
            try? Posix.live.eventfdWrite(eventfd)
        }
        var ready = 0
        for _ in 0..<50 where ready == 0 {
            ready = try poll(100)
        }
        XCTAssertEqual(ready, 1)
        XCTAssertEqual(events[0].data, token)
        XCTAssertNotEqual(events[0].events & Posix.EPOLLIN, 0)

        XCTAssertEqual(try Posix.live.eventfdDrain(eventfd), 1)
        XCTAssertEqual(try poll(0), 0, "draining makes it unreadable again")

        for _ in 0..<3 { try Posix.live.eventfdWrite(eventfd) }
        XCTAssertEqual(try poll(0), 1)
        XCTAssertEqual(try Posix.live.eventfdDrain(eventfd), 3, "writes coalesce into one wake-up")
    }

    func testEpollControlModifyAndDeleteChangeWhatIsReported() throws {
        let epfd = track(try Posix.live.epollCreate())
        let eventfd = track(try Posix.live.eventfdCreate())
        try Posix.live.eventfdWrite(eventfd)
        var event = Posix.EpollEvent()

        try Posix.live.epollControl(epfd, op: Posix.EPOLL_CTL_ADD, fd: eventfd, events: Posix.EPOLLIN, data: 1)
        XCTAssertEqual(try Posix.live.epollWait(epfd, events: &event, maxEvents: 1, timeoutMs: 0), 1)
        XCTAssertEqual(event.data, 1)

        try Posix.live.epollControl(epfd, op: Posix.EPOLL_CTL_MOD, fd: eventfd, events: Posix.EPOLLIN, data: 2)
        XCTAssertEqual(try Posix.live.epollWait(epfd, events: &event, maxEvents: 1, timeoutMs: 0), 1)
        XCTAssertEqual(event.data, 2)

        try Posix.live.epollControl(epfd, op: Posix.EPOLL_CTL_DEL, fd: eventfd, events: 0, data: 0)
        XCTAssertEqual(try Posix.live.epollWait(epfd, events: &event, maxEvents: 1, timeoutMs: 0), 0)

        XCTAssertThrowsError(
            try Posix.live.epollControl(epfd, op: Posix.EPOLL_CTL_DEL, fd: eventfd, events: 0, data: 0)
        ) { error in
            XCTAssertEqual((error as? IOError)?.errnoCode, ENOENT)
            XCTAssertEqual((error as? IOError)?.function, "epoll_ctl(2)")
        }
    }

    func testWritingToAClosedPeerFailsWithAnErrorInsteadOfRaisingSIGPIPE() throws {
        // Restore SIGPIPE's default action (killing the process) for this test, so that it proves
        // the writes themselves never raise it, whatever `ignoreSIGPIPE()` did earlier.
        var defaultAction = sigaction()
        defaultAction.__sigaction_handler.sa_handler = SIG_DFL
        var previousAction = sigaction()
        XCTAssertEqual(sigaction(SIGPIPE, &defaultAction, &previousAction), 0)
        defer { _ = sigaction(SIGPIPE, &previousAction, nil) }

        let (client, server) = try connectedPair()
        try closeNow(server)
        let byte: [UInt8] = [0x2A]
        var failure: IOError?
        // The first write usually succeeds and draws an RST; a later one then fails. If SIGPIPE were
        // raised instead, the test process would die here.
        for _ in 0..<50 where failure == nil {
            do {
                _ = try byte.withUnsafeBytes { buffer throws(IOError) in try Posix.live.write(client, from: buffer) }
                _ = try waitFor(Posix.EPOLLERR | Posix.EPOLLHUP, on: client)
            } catch let error as IOError {
                failure = error
            }
        }
        XCTAssertTrue([EPIPE, ECONNRESET].contains(failure?.errnoCode ?? 0), "\(String(describing: failure))")
    }

    func testReadAndWriteFallBackToPlainCallsOnNonSockets() throws {
        var fds: [CInt] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        track(fds[0])
        track(fds[1])
        let data = Array("pipe".utf8)
        XCTAssertEqual(try data.withUnsafeBytes { try Posix.live.write(fds[1], from: $0) }, .processed(4))
        let written = try data.withUnsafeBytes { bytes in
            var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
            return try Posix.live.writev(fds[1], &vector, count: 1)
        }
        XCTAssertEqual(written, .processed(4))
        var buffer = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(try buffer.withUnsafeMutableBytes { try Posix.live.read(fds[0], into: $0) }, .processed(8))
        XCTAssertEqual(buffer, data + data)
    }

    func testSocketOptionsCanBeSetAndReadBack() throws {
        let fd = try tcpSocket()
        try Posix.live.setOption(fd, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        XCTAssertNotEqual(try Posix.live.getOption(fd, level: CInt(IPPROTO_TCP), name: TCP_NODELAY), 0)
        try Posix.live.setOption(fd, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 0)
        XCTAssertEqual(try Posix.live.getOption(fd, level: CInt(IPPROTO_TCP), name: TCP_NODELAY), 0)

        let flags = fcntl(fd, F_GETFL)
        XCTAssertNotEqual(flags & O_NONBLOCK, 0, "sockets are created non-blocking")
        XCTAssertNotEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "sockets are created close-on-exec")
    }

    func testAnIPv6LoopbackSocketBindsAndReportsItsAddress() throws {
        let fd = try tcpSocket(AF_INET6)
        do {
            try Posix.live.bind(fd, to: .loopbackV6(port: 0))
        } catch {
            throw XCTSkip("no IPv6 loopback here: \(error)")
        }
        let address = try Posix.live.localAddress(fd)
        XCTAssertEqual(address.ipAddress, "::1")
        XCTAssertNotEqual(address.port, 0)
        XCTAssertThrowsError(try Posix.live.remoteAddress(fd)) { error in
            XCTAssertEqual((error as? IOError)?.errnoCode, ENOTCONN)
        }
    }

    func testFailuresNameTheCallAndTheErrnoText() throws {
        XCTAssertEqual(IOError(errnoCode: ECONNRESET, function: "read(2)").description,
                       "read(2) failed: Connection reset by peer (errno 104)")
        XCTAssertThrowsError(try Posix.live.close(-1)) { error in
            XCTAssertEqual("\(error)", "close(2) failed: Bad file descriptor (errno 9)")
        }
        let fd = try tcpSocket()
        try Posix.live.bind(fd, to: .loopbackV4(port: 0))
        let taken = try Posix.live.localAddress(fd)
        let other = try tcpSocket()
        XCTAssertThrowsError(try Posix.live.bind(other, to: taken)) { error in
            XCTAssertEqual((error as? IOError)?.errnoCode, EADDRINUSE)
            XCTAssertTrue("\(error)".hasPrefix("bind(2) failed: Address already in use"), "\(error)")
        }
    }

    func testIgnoringSIGPIPEIsIdempotentAndSticks() {
        Posix.ignoreSIGPIPE()
        Posix.ignoreSIGPIPE()
        var current = sigaction()
        XCTAssertEqual(sigaction(SIGPIPE, nil, &current), 0)
        let handler = current.__sigaction_handler.sa_handler.map { unsafeBitCast($0, to: UInt.self) }
        XCTAssertEqual(handler, unsafeBitCast(SIG_IGN, to: UInt.self))
    }

    func testSomaxconnIsReadFromProc() {
        XCTAssertGreaterThan(Posix.somaxconn(), 0)
    }

    func testTheHandWrittenEpollEventMatchesTheKernelLayout() {
        #if arch(x86_64)
        XCTAssertEqual(MemoryLayout<Posix.EpollEvent>.size, 12, "packed on x86_64")
        XCTAssertEqual(MemoryLayout<Posix.EpollEvent>.stride, 12)
        #else
        XCTAssertEqual(MemoryLayout<Posix.EpollEvent>.size, 16)
        #endif
        XCTAssertEqual(MemoryLayout<Posix.EpollEvent>.offset(of: \.events), 0)
        var event = Posix.EpollEvent(events: Posix.EPOLLIN, data: 0x0102_0304_0506_0708)
        withUnsafeBytes(of: &event) { raw in
            let dataOffset = MemoryLayout<Posix.EpollEvent>.size - 8
            XCTAssertEqual(raw.loadUnaligned(fromByteOffset: dataOffset, as: UInt64.self), 0x0102_0304_0506_0708)
        }
        event.data = 7
        XCTAssertEqual(event.data, 7)
    }
}
