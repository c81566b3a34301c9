import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest
import PheromonesTestSupport

/// Registrations that epoll refuses, injected through the `SystemCalls` seam: an interest change
/// that fails closes its channel with the error (the channel would otherwise wait for events that
/// never come), and a listener that cannot be registered fails the bind with its socket closed
/// exactly once. Every socket the group opens and closes is counted.
final class RegistrationFaultTests: XCTestCase {
    private var faults: FaultInjector!
    private var descriptors: DescriptorLedger!

    override func setUp() {
        faults = FaultInjector()
        descriptors = DescriptorLedger()
    }

    override func tearDown() {
        faults = nil
        descriptors = nil
    }

    func testAnInterestChangeThatEpollRefusesClosesTheChannelWithTheErrorAndTheServerGoesOn() async throws {
        let group = try makeGroup(loops: 1)
        let log = ServerLog()
        // Reading by hand: an accepted channel enters the poller waiting for nothing, and its
        // first interest change is the read its handler asks for once it is active. That fails.
        var manualRead = SocketOptions()
        manualRead.autoRead = false
        let server = try await ServerBootstrap(group: group)
            .childOptions(manualRead)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(log.newRecord()), ReadsOnceActive(), EchoingHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(server.localAddress?.port)
        faults.inject(.error(ENOMEM), into: .epollModify)

        let first = try RawClient.connect(port: port)
        try first.write(Array("lost".utf8))
        XCTAssertEqual(first.read(4), [], "the channel that cannot read closes: its client sees the end of the stream")
        first.close()
        let record = try XCTUnwrap(log.records.first)
        await fulfillment(of: [record.inactive], timeout: 10)
        XCTAssertEqual(record.snapshot.inactiveCount, 1)
        XCTAssertEqual(record.snapshot.errors.map { ($0 as? IOError)?.errnoCode }, [ENOMEM], "\(record.snapshot.errors)")

        let second = try RawClient.connect(port: port)
        try second.write(Array("echo".utf8))
        XCTAssertEqual(String(decoding: second.read(4), as: UTF8.self), "echo")
        second.close()
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
        XCTAssertEqual(descriptors.closedMoreThanOnce, [])
    }

    func testABindWhoseListenerCannotBeRegisteredFailsAndClosesTheListeningSocketExactlyOnce() async throws {
        let group = try makeGroup(loops: 1)
        let before = descriptors.opened
        faults.inject(.error(ENOMEM), into: .epollAdd)

        let bound = ServerBootstrap(group: group).bind(to: .loopbackV4(port: 0))
        let error = await failure(of: bound)
        XCTAssertEqual((error as? IOError)?.errnoCode, ENOMEM, "\(String(describing: error))")
        // Let the loop finish with the closed listener (its pipeline lets go of it on the next turn).
        for loop in group.epollLoops { try await loop.submit {}.get(within: 10) }
        let listeners = Array(descriptors.opened.dropFirst(before.count))
        XCTAssertEqual(listeners.count, 1)
        XCTAssertEqual(listeners.map { descriptors.closeCount(of: $0) }, [1], "the listening socket was not closed exactly once")
        try await group.shutdownGracefully()
        XCTAssertEqual(descriptors.closedMoreThanOnce, [])
    }

    func testAListenerPerLoopBindWhoseSecondListenerCannotBeRegisteredClosesEveryListenerExactlyOnce() async throws {
        let group = try makeGroup(loops: 2)
        var perLoop = ServerSocketOptions()
        perLoop.listenerPerLoop = true
        let before = descriptors.opened
        // The first loop's listener registers; the second loop's cannot.
        faults.inject(.error(ENOMEM), into: .epollAdd, skip: 1)

        let bound = ServerBootstrap(group: group).serverOptions(perLoop).bind(to: .loopbackV4(port: 0))
        let error = await failure(of: bound)
        XCTAssertEqual((error as? IOError)?.errnoCode, ENOMEM, "\(String(describing: error))")
        for _ in 0..<2 {
            for loop in group.epollLoops { try await loop.submit {}.get(within: 10) }
        }
        let listeners = Array(descriptors.opened.dropFirst(before.count))
        XCTAssertEqual(listeners.count, 2)
        XCTAssertEqual(listeners.map { descriptors.closeCount(of: $0) }, [1, 1], "a listening socket was not closed exactly once")
        try await group.shutdownGracefully()
        XCTAssertEqual(descriptors.closedMoreThanOnce, [])
    }

    /// A group whose system calls go through the injector, with every socket and close counted.
    private func makeGroup(loops: Int) throws -> MultiThreadedEventLoopGroup {
        var calls = faults.systemCalls
        let socket = calls.socket, close = calls.close
        calls.socket = { [descriptors] domain, type, proto in
            let fd = socket(domain, type, proto)
            if fd >= 0 { descriptors?.noteOpened(fd) }
            return fd
        }
        calls.close = { [descriptors] fd in
            descriptors?.noteClosed(fd)
            return close(fd)
        }
        return try MultiThreadedEventLoopGroup(numberOfThreads: loops, systemCalls: calls)
    }
}

/// The sockets a group opened, in order, and how many times each number was closed since it was
/// opened last: a number closed twice may have been someone else's descriptor the second time.
private final class DescriptorLedger: Sendable {
    private struct State {
        var opened: [CInt] = []
        var closes: [CInt: Int] = [:]
        var closedTwice: [CInt] = []
    }

    private let state = LockedValue(State())

    func noteOpened(_ fd: CInt) {
        state.withLock { state in
            state.opened.append(fd)
            state.closes[fd] = 0
        }
    }

    func noteClosed(_ fd: CInt) {
        state.withLock { state in
            guard let count = state.closes[fd] else { return }
            state.closes[fd] = count + 1
            if count == 1 { state.closedTwice.append(fd) }
        }
    }

    var opened: [CInt] { state.withLock { $0.opened } }
    func closeCount(of fd: CInt) -> Int { state.withLock { $0.closes[fd, default: 0] } }
    var closedMoreThanOnce: [CInt] { state.withLock { $0.closedTwice } }
}

/// Asks for the first read when the channel becomes active (for channels with auto-read off).
private final class ReadsOnceActive: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        context.read()
    }
}
