import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest
import PheromonesTestSupport

/// What a connection's life costs in system calls beyond the kernel's unavoidable ones, counted
/// through the `SystemCalls` seam on one loop that both dials and accepts: each connection is
/// dialed, echoes one message, and is closed by the client; both ends' calls are counted.
final class ConnectionSyscallTests: XCTestCase {
    private static let connections = 4

    func testClosingAConnectionTakesItOutOfEpollWithoutAnEpollCtlDelete() async throws {
        let counts = try await countCalls(overConnections: Self.connections)
        // Closing the socket, its only descriptor, removes it from epoll by itself.
        XCTAssertEqual(counts[.epollDelete], 0, "\(counts)")
    }

    func testAConnectionEntersEpollWithTheInterestItWaitsForFirst() async throws {
        let counts = try await countCalls(overConnections: Self.connections)
        // The client enters epoll after its connect, waiting for writability, and switches to
        // reading once connected; the accepted end enters it waiting to read (auto-read).
        XCTAssertEqual(counts[.epollAdd], 2 * Self.connections, "\(counts)")
        XCTAssertEqual(counts[.epollModify], Self.connections, "\(counts)")
    }

    func testTheAddressesOfBothEndsCostOneCallTheClientsOwnPort() async throws {
        let counts = try await countCalls(overConnections: Self.connections)
        // The accepted end's peer comes with accept4, its own address is the listener's; the
        // client's peer is the address it dialed. Only the client's ephemeral port is asked for.
        XCTAssertEqual(counts[.getsockname], Self.connections, "\(counts)")
        XCTAssertEqual(counts[.getpeername], 0, "\(counts)")
    }

    func testAConnectionToAWildcardListenerDialedAtTheWildcardGetsItsAddressesFromTheKernel() async throws {
        // 0.0.0.0 is no one address: the kernel says which one each end has (here 127.0.0.1).
        let counts = try await countCalls(overConnections: 1, listeningOn: "0.0.0.0", dialingListenAddress: true)
        XCTAssertEqual(counts[.getsockname], 2, "\(counts)")
        XCTAssertEqual(counts[.getpeername], 1, "\(counts)")
    }

    // MARK: Helpers

    /// The calls made while `count` connections lived and died one after the other, listener set
    /// up beforehand (its calls are not counted). Checks each connection's addresses on the way:
    /// both ends agree, and none is a wildcard. The client dials 127.0.0.1, or the listening
    /// address itself with `dialingListenAddress`.
    private func countCalls(
        overConnections count: Int, listeningOn host: String = "127.0.0.1", dialingListenAddress: Bool = false,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> [CountedCall: Int] {
        let counter = CallCounter()
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1, systemCalls: counter.systemCalls)
        let log = ServerLog()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandlers([Recorder(log.newRecord()), EchoingHandler()]) }
            .bind(host: host, port: 0)
        let listening = try XCTUnwrap(server.localAddress)
        let loopback = try SocketAddress(ipAddress: "127.0.0.1", port: listening.port)
        let before = counter.counts
        for index in 0..<count {
            let record = ConnectionRecord(name: "client \(index)", expectedBytes: 4)
            let client = try await ClientBootstrap(group: group)
                .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
                .connect(to: dialingListenAddress ? listening : loopback).get(within: 10)
            try await client.writeAndFlush(ByteBuffer(string: "ping")).get(within: 10)
            await fulfillment(of: [record.receivedAll], timeout: 10)
            let accepted = try XCTUnwrap(log.records.last)
            let acceptedChannel = try XCTUnwrap(accepted.channel)
            XCTAssertEqual(client.remoteAddress, loopback, file: file, line: line)
            XCTAssertEqual(acceptedChannel.localAddress, loopback, file: file, line: line)
            XCTAssertEqual(acceptedChannel.remoteAddress, client.localAddress, file: file, line: line)
            XCTAssertNotEqual(client.localAddress?.port ?? 0, 0, file: file, line: line)
            try await client.close().get(within: 10)
            await fulfillment(of: [accepted.inactive], timeout: 10)
        }
        let after = counter.counts
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
        XCTAssertEqual(log.records.count, count, file: file, line: line)
        return after.merging(before) { $0 - $1 }
    }
}

/// The calls ``CallCounter`` counts.
enum CountedCall: Hashable, Sendable {
    case epollAdd, epollModify, epollDelete, getsockname, getpeername, setsockopt, accept
}

/// The kernel's calls, counted.
private final class CallCounter: Sendable {
    private let storage = LockedValue<[CountedCall: Int]>([:])

    var counts: [CountedCall: Int] {
        storage.withLock { counts in
            var all = counts
            for call in [CountedCall.epollAdd, .epollModify, .epollDelete, .getsockname, .getpeername, .setsockopt, .accept] {
                all[call, default: 0] += 0
            }
            return all
        }
    }

    private func note(_ call: CountedCall) { storage.withLock { $0[call, default: 0] += 1 } }

    var systemCalls: SystemCalls {
        var calls = SystemCalls.live
        let live = SystemCalls.live
        calls.epollCtl = { [self] epfd, op, fd, event in
            note(op == Posix.EPOLL_CTL_ADD ? .epollAdd : op == Posix.EPOLL_CTL_MOD ? .epollModify : .epollDelete)
            return live.epollCtl(epfd, op, fd, event)
        }
        calls.getsockname = { [self] fd, address, length in
            note(.getsockname)
            return live.getsockname(fd, address, length)
        }
        calls.getpeername = { [self] fd, address, length in
            note(.getpeername)
            return live.getpeername(fd, address, length)
        }
        calls.setsockopt = { [self] fd, level, name, value, length in
            note(.setsockopt)
            return live.setsockopt(fd, level, name, value, length)
        }
        calls.accept4 = { [self] fd, address, length, flags in
            note(.accept)
            return live.accept4(fd, address, length, flags)
        }
        return calls
    }
}
