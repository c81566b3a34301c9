import Glibc
import PheromonesCore
@testable import PheromonesPosix
import Synchronization
import XCTest

/// What happens at the edges of a loop's life: futures completed after their loop exited, connects
/// from a group that has shut down, connections accepted for one, and servers with one listener per
/// loop.
final class LoopLifetimeTests: XCTestCase {
    func testGetReturnsWhenThePromiseIsCompletedFromAnotherThreadAfterItsLoopExited() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let promise = group.next().makePromise(of: Int.self)
        let waiter = Task { try await promise.futureResult.get() }
        try await group.shutdownGracefully()

        promise.succeed(42)
        let value = try await waiter.value
        XCTAssertEqual(value, 42)
    }

    func testTransformationsOfAFutureWhoseLoopExitedStillComplete() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let promise = group.next().makePromise(of: Int.self)
        let doubled = promise.futureResult.map { $0 * 2 }.flatMap { value in
            promise.futureResult.eventLoop.makeSucceededFuture(value + 1)
        }
        try await group.shutdownGracefully()

        promise.succeed(20)
        let value = try await doubled.get()
        XCTAssertEqual(value, 41)
    }

    func testAnActorOnALoopThatHasShutDownStillRunsItsMethodsInsteadOfHanging() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counter = LoopCounter(loop: group.epollLoops[0])
        let before = await counter.increment()
        try await group.shutdownGracefully()

        let after = await counter.increment()
        XCTAssertEqual([before, after], [1, 2])
    }

    func testConnectingFromAGroupThatHasShutDownFailsAtOnceWithShutDown() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try await group.shutdownGracefully()

        do {
            _ = try await ClientBootstrap(group: group).connect(to: .loopbackV4(port: 9)).get()
            XCTFail("a connect from a dead group succeeded")
        } catch EventLoopError.shutDown {
            // expected
        }
    }

    func testAConnectionAcceptedForAChildGroupThatHasShutDownIsClosedInsteadOfLeaked() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let childGroup = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group, childGroup: childGroup).bind(host: "127.0.0.1", port: 0)
        guard case .v4(let address) = try XCTUnwrap(server.localAddress) else { return XCTFail("not IPv4") }
        try await childGroup.shutdownGracefully()

        // A plain blocking socket, so the test sees exactly what the peer of such a server sees.
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var peer = address.sockaddrIn
        let connected = withUnsafePointer(to: &peer) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        XCTAssertEqual(connected, 0, "connect: errno \(errno)")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        let count = read(fd, &byte, 1)
        XCTAssertEqual(count, 0, "the server closes the connection it cannot serve (read: errno \(errno))")

        try await server.close().get()
        try await group.shutdownGracefully()
    }

    func testAListenerPerLoopServerEchoesOnEveryLoopAndClosesAllItsListenersTogether() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var options = ServerSocketOptions()
        options.listenerPerLoop = true
        let server = try await ServerBootstrap(group: group)
            .serverOptions(options)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(LoopRecordingEcho()) }
            .bind(host: "127.0.0.1", port: 0)
        let address = try XCTUnwrap(server.localAddress)

        for index in 0..<32 {
            let reply = try await exchange(ByteBuffer(string: "hello \(index)"), with: address, group: group)
            XCTAssertEqual(reply, ByteBuffer(string: "hello \(index)"))
        }
        XCTAssertEqual(LoopRecordingEcho.loopsSeen.withLock { $0.count }, 2,
                       "the kernel spreads 32 connections over both listeners (odds of all on one: 2^-31)")

        try await server.close().get()
        do {
            _ = try await exchange(ByteBuffer(string: "late"), with: address, group: group)
            XCTFail("a listener outlived the server's close")
        } catch ChannelError.connectionRefused {
            // expected: every listener is gone
        }
        try await group.shutdownGracefully()
    }

    /// Connects, sends `message`, and returns what comes back before the server closes.
    private func exchange(_ message: ByteBuffer, with address: SocketAddress, group: MultiThreadedEventLoopGroup) async throws -> ByteBuffer {
        let collector = ReplyCollector(expected: message.readableBytes, loop: group.next())
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(collector.makeHandler()) }
            .connect(to: address).get()
        try await channel.writeAndFlush(message).get()
        let reply = try await collector.reply.futureResult.get()
        try await channel.close().get()
        return reply
    }
}

/// Echoes, and records which loops served connections.
private final class LoopRecordingEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let loopsSeen = LockedValue<Set<ObjectIdentifier>>([])

    func channelActive(context: ChannelHandlerContext) {
        let loop = ObjectIdentifier(context.eventLoop)
        _ = Self.loopsSeen.withLock { $0.insert(loop) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.write(data) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}

/// Collects a reply of a known length on a client channel.
private final class ReplyCollector: Sendable {
    let expected: Int
    let reply: Promise<ByteBuffer>

    init(expected: Int, loop: any EventLoop) {
        self.expected = expected
        reply = loop.makePromise(of: ByteBuffer.self)
    }

    func makeHandler() -> Handler { Handler(owner: self) }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let owner: ReplyCollector
        var received = ByteBuffer()
        init(owner: ReplyCollector) { self.owner = owner }

        func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
            var data = data
            received.writeBuffer(&data)
            if received.readableBytes >= owner.expected { owner.reply.trySucceed(received) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            owner.reply.tryFail(ChannelError.connectionReset)
            context.fireChannelInactive()
        }
    }
}

/// An actor isolated to an event loop.
private actor LoopCounter {
    private let loop: EpollEventLoop
    private var count = 0

    init(loop: EpollEventLoop) {
        self.loop = loop
    }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    func increment() -> Int {
        count += 1
        return count
    }
}
