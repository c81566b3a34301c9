import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

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

    // MARK: Helpers

    /// The calls made while `count` connections lived and died one after the other, listener set
    /// up beforehand (its calls are not counted).
    private func countCalls(overConnections count: Int) async throws -> [CountedCall: Int] {
        let counter = CallCounter()
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1, systemCalls: counter.systemCalls)
        let log = ServerLog()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandlers([Recorder(log.newRecord()), EchoingHandler()]) }
            .bind(host: "127.0.0.1", port: 0)
        let address = try XCTUnwrap(server.localAddress)
        let before = counter.counts
        for index in 0..<count {
            let record = ConnectionRecord(name: "client \(index)", expectedBytes: 4)
            let client = try await ClientBootstrap(group: group)
                .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
                .connect(to: address).get(within: 10)
            try await client.writeAndFlush(ByteBuffer(string: "ping")).get(within: 10)
            await fulfillment(of: [record.receivedAll], timeout: 10)
            try await client.close().get(within: 10)
            let accepted = try XCTUnwrap(log.records.last)
            await fulfillment(of: [accepted.inactive], timeout: 10)
        }
        let after = counter.counts
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
        XCTAssertEqual(log.records.count, count)
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
