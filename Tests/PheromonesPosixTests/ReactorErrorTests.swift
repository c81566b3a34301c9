import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest
import PheromonesTestSupport

/// Errors the reactor reports about a registration: a failed interest change, a hang-up on a socket
/// that has not connected. Each closes its channel once, with the error, instead of being logged and
/// forgotten (or spinning the loop). Driven with the kernel's own calls, by interfering with the
/// descriptors behind the channels' backs (`RegistrationFaultTests` injects the failures instead).
final class ReactorErrorTests: XCTestCase {
    func testAFailedInterestChangeClosesTheChannelWithTheErrorInsteadOfLeavingItStuck() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        var manualRead = SocketOptions()
        manualRead.autoRead = false
        let record = ConnectionRecord(name: "client")
        let client = try await ClientBootstrap(group: group)
            .options(manualRead)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        try await client.loop.submit {
            // Put a fresh socket under the channel's descriptor number: epoll forgets the old one (its
            // last descriptor closed) and has never heard of the new one, so the next interest change,
            // an epoll_ctl(MOD) before the loop sleeps, fails with ENOENT.
            let spare = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
            XCTAssertGreaterThanOrEqual(spare, 0)
            XCTAssertEqual(dup2(spare, client.fd), client.fd)
            Glibc.close(spare)
            client.read()
        }.get(within: 10)

        await fulfillment(of: [record.inactive], timeout: 10)
        try await client.closeFuture.get(within: 10)
        let saw = record.snapshot
        XCTAssertEqual(saw.inactiveCount, 1)
        XCTAssertEqual(saw.errors.count, 1, "\(saw.errors)")
        XCTAssertEqual((saw.errors.first as? IOError)?.errnoCode, ENOENT, "\(saw.errors)")
        XCTAssertFalse(client.isActive)
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAHangUpReportedForASocketThatHasNotConnectedClosesTheChannelInsteadOfBeingIgnored() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.nextLoop()
        let record = ConnectionRecord(name: "unconnected")
        let channel = try await loop.submit { () -> SocketChannel in
            let fd = try loop.posix.socket(domain: AF_INET, type: CInt(SOCK_STREAM.rawValue))
            let channel = SocketChannel(fd: fd, loop: loop, options: SharedSocketOptions(SocketOptions()), parent: nil)
            try channel.pipeline.addHandler(Recorder(record))
            try channel.register(connected: false)
            // What epoll reports, level-triggered, for a TCP socket that never connected.
            channel.handleReadiness(Posix.EPOLLHUP)
            return channel
        }.get(within: 10)

        try await channel.closeFuture.get(within: 10)
        let saw = record.snapshot
        XCTAssertEqual(saw.errors.count, 1, "\(saw.errors)")
        XCTAssertEqual((saw.errors.first as? IOError)?.errnoCode, ENOTCONN, "\(saw.errors)")
        XCTAssertEqual(saw.inactiveCount, 0, "a channel that was never active fires no channelInactive")
        XCTAssertFalse(channel.isActive)
        try await group.shutdownGracefully()
    }

    func testAClientSocketEntersThePollerOnlyWhenItConnectsSoAConnectHeldBackDoesNotSpinTheLoop() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        let hold = TimeAmount.milliseconds(200)
        let observations = HeldConnectObservations()
        let record = ConnectionRecord(name: "client", expectedBytes: 4)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(record), ConnectHolder(hold: hold, observations: observations)])
            }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        let seen = observations.snapshot
        XCTAssertEqual(seen.inPollerWhileHeld, false, "an unconnected socket in epoll reports EPOLLHUP on every wait")
        // While the connect was held the loop slept: a loop spinning on EPOLLHUP would burn the hold's length.
        let busy = try XCTUnwrap(seen.loopCPUWhileHeld)
        XCTAssertLessThan(busy.nanoseconds, hold.nanoseconds / 4, "the loop used \(busy) of CPU while the connect was held for \(hold)")
        try await client.writeAndFlush(ByteBuffer(string: "ping")).get(within: 10)
        await fulfillment(of: [record.receivedAll], timeout: 10)
        try await client.close().get(within: 10)
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }
}

// MARK: - Fixtures

/// What ``ConnectHolder`` saw while it held the connect back.
private final class HeldConnectObservations: Sendable {
    struct Snapshot: Sendable {
        var inPollerWhileHeld: Bool?
        var loopCPUWhileHeld: TimeAmount?
    }

    private let state = LockedValue(Snapshot())
    var snapshot: Snapshot { state.withLock { $0 } }
    func update(_ change: (inout Snapshot) -> Void) { state.withLock { change(&$0) } }
}

/// Holds the connect back for `hold` (as a proxy or a rate limiter might), noting meanwhile whether
/// the socket is in an epoll set and how much CPU the loop's thread used.
private final class ConnectHolder: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let hold: TimeAmount
    private let observations: HeldConnectObservations

    init(hold: TimeAmount, observations: HeldConnectObservations) {
        self.hold = hold
        self.observations = observations
    }

    func connect(context: ChannelHandlerContext, to address: SocketAddress, promise: Promise<Void>?) {
        let started = threadCPUTime()
        let bound = LoopBound((context, promise), eventLoop: context.eventLoop)
        let fd = (context.channel as? SocketChannel)?.fd ?? -1
        context.eventLoop.scheduleTask(in: hold) { [observations] in
            let (context, promise) = bound.value
            let inPoller = descriptorIsInAnEpollSet(fd)
            observations.update {
                $0.inPollerWhileHeld = inPoller
                $0.loopCPUWhileHeld = .nanoseconds(threadCPUTime() - started)
            }
            context.connect(to: address, promise: promise)
        }
    }
}

/// CPU time the calling thread has used, in nanoseconds.
private func threadCPUTime() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

/// Whether any epoll instance of this process watches descriptor `fd` (from `/proc/self/fdinfo`,
/// where an epoll descriptor lists a `tfd:` line per watched descriptor).
private func descriptorIsInAnEpollSet(_ fd: CInt) -> Bool {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fdinfo") else { return false }
    for entry in entries {
        guard let info = try? String(contentsOfFile: "/proc/self/fdinfo/\(entry)", encoding: .utf8) else { continue }
        for line in info.split(separator: "\n") where line.hasPrefix("tfd:") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if fields.count > 1, CInt(fields[1]) == fd { return true }
        }
    }
    return false
}
