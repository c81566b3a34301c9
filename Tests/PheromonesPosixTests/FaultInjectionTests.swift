import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest
import PheromonesTestSupport

/// System calls that fail the way the kernel lets them fail, injected through the `SystemCalls`
/// seam into the server's loop: interrupted calls, spurious wake-ups, short reads and writes,
/// resets, broken pipes, descriptor exhaustion, and a failing epoll. Each case is something a real
/// server meets; the channels above must lose no byte, close at most once, and keep serving.
final class FaultInjectionTests: XCTestCase {
    private var faults: FaultInjector!
    private var serverGroup: MultiThreadedEventLoopGroup!
    private var clientGroup: MultiThreadedEventLoopGroup!

    override func setUp() async throws {
        faults = FaultInjector()
        serverGroup = try MultiThreadedEventLoopGroup(numberOfThreads: 1, systemCalls: faults.systemCalls)
        clientGroup = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() async throws {
        faults.clear()
        try await clientGroup.shutdownGracefully()
        try await serverGroup.shutdownGracefully()
        // XCTest keeps every test case object until the process exits: let the groups go now.
        clientGroup = nil
        serverGroup = nil
        faults = nil
    }

    // MARK: Interrupted and spurious calls

    func testReadsAndWritesInterruptedWithEINTRAreRetriedAndLoseNoByte() async throws {
        faults.inject(.error(EINTR), into: .read, times: 20)
        faults.inject(.error(EINTR), into: .writev, times: 10)
        faults.inject(.error(EINTR), into: .write, times: 10)
        try await assertEchoes(bytes: 256 * 1024)
        XCTAssertGreaterThan(faults.injectedCount(.read), 0)
    }

    func testAnAcceptAndAnEpollWaitInterruptedWithEINTRAreRetried() async throws {
        faults.inject(.error(EINTR), into: .accept, times: 3)
        faults.inject(.error(EINTR), into: .epollWait, times: 5)
        try await assertEchoes(bytes: 1024)
        XCTAssertEqual(faults.injectedCount(.accept), 3)
    }

    func testAConnectInterruptedWithEINTRCompletesInTheBackground() async throws {
        // The injected group dials this time: EINTR from connect(2) means the kernel goes on
        // connecting, so the channel must wait for writability, not fail.
        faults.inject(.errorAfterCalling(EINTR), into: .connect)
        let server = try await ServerBootstrap(group: clientGroup)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        let record = ConnectionRecord(name: "client", expectedBytes: 5)
        let client = try await ClientBootstrap(group: serverGroup)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
        try await client.writeAndFlush(ByteBuffer(string: "hello")).get(within: 10)
        await fulfillment(of: [record.receivedAll], timeout: 10)
        XCTAssertEqual(faults.injectedCount(.connect), 1)
        try await client.close().get(within: 10)
        try await server.close().get(within: 10)
    }

    func testASpuriousWakeUpWhoseReadSaysEAGAINIsNeitherEndOfInputNorAnError() async throws {
        faults.inject(.error(EAGAIN), into: .read, times: 5)
        let log = try await assertEchoes(bytes: 4096)
        let server = try XCTUnwrap(log.records.first).snapshot
        XCTAssertTrue(server.errors.isEmpty, "errors: \(server.errors)")
        XCTAssertEqual(faults.injectedCount(.read), 5)
    }

    // MARK: Short reads and writes

    func testShortReadsOfSevenBytesStillDeliverEveryByteInOrder() async throws {
        faults.inject(.atMost(7), into: .read, times: nil)
        try await assertEchoes(bytes: 64 * 1024)
    }

    func testShortWritesOfFiveBytesStillSendEveryByteInOrder() async throws {
        faults.inject(.atMost(5), into: .writev, times: nil)
        faults.inject(.atMost(5), into: .write, times: nil)
        try await assertEchoes(bytes: 64 * 1024)
        XCTAssertGreaterThan(faults.injectedCount(.writev) + faults.injectedCount(.write), 1000)
    }

    func testWritePromisesCompleteInOrderWhenEveryWriteIsShort() async throws {
        faults.inject(.atMost(3), into: .writev, times: nil)
        faults.inject(.atMost(3), into: .write, times: nil)
        let (server, log, client, _) = try await echoPair()
        let serverChannel = try await waitForServerChannel(log)
        let order = LockedValue<[Int]>([])
        let futures = try await serverGroup.epollLoops[0].submit { () -> [Future<Void>] in
            var futures: [Future<Void>] = []
            for index in 0..<200 {
                let promise = serverChannel.eventLoop.makePromise(of: Void.self)
                promise.futureResult.whenComplete { _ in order.withLock { $0.append(index) } }
                serverChannel.pipeline.write(ByteBuffer(string: "0123456789"), promise: promise)
                futures.append(promise.futureResult)
            }
            serverChannel.pipeline.flush()
            return futures
        }.get(within: 10)
        for future in futures { try await future.get(within: 10) }
        XCTAssertEqual(order.withLock { $0 }, Array(0..<200))
        try await client.close().get(within: 10)
        try await server.close().get(within: 10)
    }

    // MARK: Resets and broken pipes

    func testAReadFailingWithECONNRESETClosesTheChannelOnceWithConnectionReset() async throws {
        faults.inject(.error(ECONNRESET), into: .read)
        let (server, log, client, _) = try await echoPair()
        try await client.writeAndFlush(ByteBuffer(string: "ping")).get(within: 10)
        let record = try XCTUnwrap(log.records.first)
        await fulfillment(of: [record.inactive], timeout: 10)
        let snapshot = record.snapshot
        XCTAssertEqual(snapshot.inactiveCount, 1)
        XCTAssertEqual(snapshot.errors.count, 1)
        XCTAssertEqual(snapshot.errors.first as? ChannelError, .connectionReset)
        try await assertServerStillServes(server)
        try await server.close().get(within: 10)
    }

    func testAWriteFailingWithEPIPEFailsItsPromiseAndClosesTheChannelOnce() async throws {
        let (server, log, _, _) = try await echoPair()
        let serverChannel = try await waitForServerChannel(log)
        faults.inject(.error(EPIPE), into: .write)
        faults.inject(.error(EPIPE), into: .writev)
        let written = try await serverGroup.epollLoops[0].submit {
            serverChannel.writeAndFlush(ByteBuffer(string: "doomed"))
        }.get(within: 10)
        let error = await failure(of: written)
        XCTAssertNotNil(error)
        let record = try XCTUnwrap(log.records.first)
        await fulfillment(of: [record.inactive], timeout: 10)
        XCTAssertEqual(record.snapshot.inactiveCount, 1)
        XCTAssertEqual(record.snapshot.errors.count, 1, "errors: \(record.snapshot.errors)")
        try await assertServerStillServes(server)
        try await server.close().get(within: 10)
    }

    // MARK: Running out of descriptors

    func testAcceptFailingWithEMFILEENFILEOrENOBUFSPausesAcceptingAndThenServesTheConnection() async throws {
        for code in [EMFILE, ENFILE, ENOBUFS] {
            faults.inject(.error(code), into: .accept)
            var options = ServerSocketOptions()
            options.acceptBackoff = .milliseconds(20)
            let log = ServerLog()
            let server = try await ServerBootstrap(group: serverGroup)
                .serverOptions(options)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandlers([Recorder(log.newRecord()), EchoingHandler()])
                }
                .bind(host: "127.0.0.1", port: 0)
            try await assertEchoes(through: server, bytes: 100)
            let pauses = try await server.loop.submit { server.acceptPauses }.get(within: 10)
            XCTAssertEqual(pauses, 1, "errno \(code)")
            try await server.close().get(within: 10)
        }
    }

    func testAnAcceptFailingForAnotherReasonIsReportedAndTheListenerGoesOn() async throws {
        faults.inject(.error(EPERM), into: .accept)
        let listenerErrors = LockedValue<[any Error]>([])
        let server = try await ServerBootstrap(group: serverGroup)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        try await server.loop.submit {
            try server.pipeline.addHandler(ErrorCollector(listenerErrors))
        }.get(within: 10)
        try await assertEchoes(through: server, bytes: 100)
        XCTAssertEqual(listenerErrors.withLock { $0.count }, 1)
        try await server.close().get(within: 10)
    }

    func testASocketCallFailingWithEMFILEFailsTheConnectFutureWithThatError() async throws {
        faults.inject(.error(EMFILE), into: .socket)
        let server = try await ServerBootstrap(group: clientGroup)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        let connected = ClientBootstrap(group: serverGroup).connect(to: try XCTUnwrap(server.localAddress))
        let error = await failure(of: connected)
        XCTAssertEqual((error as? IOError)?.errnoCode, EMFILE)
        try await server.close().get(within: 10)
    }

    // MARK: epoll itself failing

    func testRegisteringAnAcceptedConnectionFailingClosesOnlyThatConnection() async throws {
        let log = ServerLog()
        let server = try await ServerBootstrap(group: serverGroup)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(log.newRecord()), EchoingHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)
        faults.inject(.error(ENOMEM), into: .epollAdd)
        // The first connection cannot be registered: its socket is closed, so the client sees the
        // end of the stream; nothing fires on a channel that never became active.
        let first = try await connectRawClient(to: server)
        defer { close(first) }
        XCTAssertEqual(try readUntilEndOfStream(first), 0)
        try await assertEchoes(through: server, bytes: 100)
        try await server.close().get(within: 10)
    }

    func testAnEpollWaitThatFailsForGoodShutsTheLoopDownLoudlyInsteadOfSpinning() async throws {
        let (server, log, _, _) = try await echoPair()
        let serverChannel = try await waitForServerChannel(log)
        let waitsBefore = faults.count(.epollWait)
        faults.inject(.error(EBADF), into: .epollWait, times: nil)
        // Wake the loop so that it calls epoll_wait again.
        serverGroup.epollLoops[0].execute {}
        try await serverChannel.closeFuture.get(within: 10)
        try await server.closeFuture.get(within: 10)
        // The channels close before the loop closes its inbox, and a task that races in between
        // still runs (the loop drains what it accepted); once the inbox is closed, one fails.
        // Bounded: every accepted task is awaited, and the loop closes its inbox once it is idle.
        let loop = serverGroup.epollLoops[0]
        var refusal: (any Error)?
        for _ in 0..<10_000 where refusal == nil {
            do { _ = try await loop.submit { 1 }.get(within: 10) } catch { refusal = error }
        }
        XCTAssertEqual(refusal as? EventLoopError, .shutDown, "failed with \(String(describing: refusal))")
        XCTAssertLessThan(faults.count(.epollWait) - waitsBefore, 10, "the loop spun on a broken epoll")
    }

    // MARK: Helpers

    /// Starts an echo server on the injected group, then sends `bytes` and checks they come back.
    @discardableResult
    private func assertEchoes(bytes: Int, file: StaticString = #filePath, line: UInt = #line) async throws -> ServerLog {
        let log = ServerLog()
        let server = try await echoServer(log: log)
        try await assertEchoes(through: server, bytes: bytes, file: file, line: line)
        try await server.close().get(within: 10)
        return log
    }

    private func assertEchoes(
        through server: ServerSocketChannel, bytes: Int, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        var generator = SeededGenerator(seed: UInt64(bytes))
        let payload = randomBuffer(count: bytes, using: &generator)
        let record = ConnectionRecord(name: "client", expectedBytes: bytes)
        let client = try await ClientBootstrap(group: clientGroup)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
        try await client.writeAndFlush(payload).get(within: 10)
        await fulfillment(of: [record.receivedAll], timeout: 20)
        assertSameBytes(record.snapshot.received, payload, file: file, line: line)
        try await client.close().get(within: 10)
    }

    private func assertServerStillServes(_ server: ServerSocketChannel) async throws {
        faults.clear()
        try await assertEchoes(through: server, bytes: 100)
    }

    private func echoServer(log: ServerLog) async throws -> ServerSocketChannel {
        try await ServerBootstrap(group: serverGroup)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(log.newRecord()), EchoingHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)
    }

    /// An echo server on the injected group and one client connected to it.
    private func echoPair() async throws -> (ServerSocketChannel, ServerLog, SocketChannel, ConnectionRecord) {
        let log = ServerLog()
        let server = try await echoServer(log: log)
        let record = ConnectionRecord(name: "client")
        let client = try await ClientBootstrap(group: clientGroup)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
        return (server, log, client, record)
    }

    /// The server side of the first accepted connection, once it is active.
    private func waitForServerChannel(_ log: ServerLog) async throws -> SocketChannel {
        let deadline = Deadline.now() + .seconds(10)
        while Deadline.now() < deadline {
            if let record = log.records.first {
                await fulfillment(of: [record.active], timeout: 10)
                if let channel = record.channel { return channel }
            }
            try await serverGroup.epollLoops[0].submit {}.get(within: 10)
        }
        XCTFail("no connection was accepted")
        throw TestTimeout()
    }

    private func connectRawClient(to server: ServerSocketChannel) async throws -> CInt {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(try XCTUnwrap(server.localAddress?.port)).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(result, 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Reads until the peer's end of stream (or a reset) and returns how many bytes came first.
    private func readUntilEndOfStream(_ fd: CInt) throws -> Int {
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 || (count < 0 && errno == ECONNRESET) { return total }
            guard count > 0 else { throw IOError(errnoCode: errno, function: "recv(2)") }
            total += count
        }
    }
}

/// Collects the errors that reach it.
private final class ErrorCollector: ChannelInboundHandler {
    typealias InboundIn = Never
    let errors: LockedValue<[any Error]>
    init(_ errors: LockedValue<[any Error]>) { self.errors = errors }
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.withLock { $0.append(error) }
        context.fireErrorCaught(error)
    }
}
