import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// A server that runs out of file descriptors pauses accepting instead of spinning or crashing,
/// and serves the waiting connection once descriptors free up.
final class AcceptBackoffTests: XCTestCase {
    func testAServerOutOfDescriptorsPausesAcceptingAndRecoversWhenDescriptorsFreeUp() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var options = ServerSocketOptions()
        options.acceptBackoff = .milliseconds(50)
        let server = try await ServerBootstrap(group: group)
            .serverOptions(options)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(BackoffEcho()) }
            .bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(server.localAddress?.port)

        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let original = limit
        defer { var restored = original; setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &restored) }

        // Fill every descriptor slot under a low limit, then free exactly one for the client's
        // socket: the server's accept(2) then has none and fails with EMFILE.
        limit.rlim_cur = rlim_t(openDescriptorCount() + 16)
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit), 0)
        var fillers: [CInt] = []
        while true {
            let fd = open("/dev/null", O_RDONLY)
            if fd < 0 { break }
            fillers.append(fd)
        }
        XCTAssertEqual(errno, EMFILE)
        close(fillers.removeLast())

        let client = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(client, 0)
        defer { close(client) }
        try connectBlocking(client, port: port)
        XCTAssertEqual(send(client, "ping", 4, 0), 4)

        // The connection waits in the backlog while the server cannot take it: wait (bounded) until
        // the server has hit EMFILE and paused, then free the descriptors.
        let deadline = Deadline.now() + .seconds(10)
        while try await server.loop.submit({ server.acceptPauses }).get() == 0 {
            XCTAssertLessThan(Deadline.now(), deadline, "the server never reported running out of descriptors")
            if Deadline.now() > deadline { return }
        }
        for fd in fillers { close(fd) }
        fillers.removeAll()

        let reply = try readWithDeadline(client, count: 4, seconds: 10)
        XCTAssertEqual(String(decoding: reply, as: UTF8.self), "ping", "the server recovered and echoed")

        try await server.close().get()
        try await group.shutdownGracefully()
    }

    private func openDescriptorCount() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 64 }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return count
    }

    private func connectBlocking(_ fd: CInt, port: Int) throws {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { throw IOError(errnoCode: errno, function: "connect(2)") }
    }

    /// Reads exactly `count` bytes, waiting at most `seconds` (poll(2), no sleeping).
    private func readWithDeadline(_ fd: CInt, count: Int, seconds: Int) throws -> [UInt8] {
        var received: [UInt8] = []
        let deadline = Deadline.now() + .seconds(Int64(seconds))
        while received.count < count {
            let remaining = deadline - Deadline.now()
            guard remaining.nanoseconds > 0 else { throw EventLoopError.timedOut(.seconds(Int64(seconds))) }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(clamping: remaining.nanoseconds / 1_000_000 + 1))
            guard ready > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: count - received.count)
            let read = recv(fd, &chunk, chunk.count, 0)
            guard read > 0 else { throw IOError(errnoCode: errno, function: "recv(2)") }
            received += chunk.prefix(read)
        }
        return received
    }
}

/// Echoes what it reads.
private final class BackoffEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.writeAndFlush(data) }
}
