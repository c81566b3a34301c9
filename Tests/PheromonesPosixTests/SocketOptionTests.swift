import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// Typed socket options: set by a bootstrap or on a live channel, read back from the kernel, with
/// values an option cannot take refused before any socket is touched. Loopback, port 0.
final class SocketOptionTests: XCTestCase {
    private final class Accepted: Sendable {
        let channel = LockedValue<SocketChannel?>(nil)
        let arrived = XCTestExpectation(description: "a connection was accepted")
    }

    private func serve(_ bootstrap: (ServerBootstrap) -> ServerBootstrap, group: MultiThreadedEventLoopGroup) async throws
        -> (ServerSocketChannel, Accepted)
    {
        let accepted = Accepted()
        let server = try await bootstrap(ServerBootstrap(group: group))
            .childChannelInitializer { channel in
                accepted.channel.withLock { $0 = channel }
                accepted.arrived.fulfill()
            }
            .bind(to: .loopbackV4(port: 0)).get(within: 10)
        return (server, accepted)
    }

    /// Checks that `future` succeeds with `expected`.
    private func expect<Value: Equatable & Sendable>(
        _ future: Future<Value>, _ expected: Value, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let value = try await future.get(within: 10, file: file, line: line)
        XCTAssertEqual(value, expected, file: file, line: line)
    }

    func testOptionsGivenToTheBootstrapsAreOnTheAcceptedAndTheDialedSocketsAsTheKernelReportsThem() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (server, accepted) = try await serve({
            $0.serverSocketOption(.reusePort, true)
                .childSocketOption(.keepAlive, true)
                .childSocketOption(.keepAliveIdle, .seconds(30))
                .childSocketOption(.keepAliveInterval, .seconds(5))
                .childSocketOption(.keepAliveCount, 4)
                .childSocketOption(.tcpUserTimeout, .milliseconds(20_000))
                .childSocketOption(.linger, Linger(timeout: .seconds(3)))
        }, group: group)
        let client = try await ClientBootstrap(group: group)
            .socketOption(.ipTypeOfService, 0x10)
            .socketOption(.tcpNoDelay, false)
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
        await fulfillment(of: [accepted.arrived], timeout: 10)
        let child = try XCTUnwrap(accepted.channel.withLock { $0 })

        try await expect(server.socketOption(.reusePort), true)
        try await expect(child.socketOption(.keepAlive), true)
        try await expect(child.socketOption(.keepAliveIdle), .seconds(30))
        try await expect(child.socketOption(.keepAliveInterval), .seconds(5))
        try await expect(child.socketOption(.keepAliveCount), 4)
        try await expect(child.socketOption(.tcpUserTimeout), .seconds(20))
        try await expect(child.socketOption(.linger), Linger(timeout: .seconds(3)))
        try await expect(client.socketOption(.ipTypeOfService), 0x10)
        // The bootstrap's own default (on) is overridden by the option given after it.
        try await expect(client.socketOption(.tcpNoDelay), false)
        // The escape hatch reads the same option as bytes.
        let raw = try await child.socketOption(.raw(level: SOL_SOCKET, name: SO_KEEPALIVE)).get(within: 10)
        XCTAssertEqual(raw, withUnsafeBytes(of: CInt(1)) { Array($0) })

        try await client.close().get(within: 10)
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testALingerOfZeroSetOnALiveChannelMakesItsCloseAResetThePeerSees() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let (server, accepted) = try await serve({ $0 }, group: group)
        let peer = try RawClient.connect(port: try XCTUnwrap(server.localAddress?.port))
        await fulfillment(of: [accepted.arrived], timeout: 10)
        let child = try XCTUnwrap(accepted.channel.withLock { $0 })
        try await expect(child.socketOption(.linger), nil)

        try await child.setSocketOption(.linger, to: Linger(timeout: .zero)).get(within: 10)
        try await expect(child.socketOption(.linger), Linger(timeout: .zero))
        try await child.close().get(within: 10)
        var byte: UInt8 = 0
        var descriptor = pollfd(fd: peer.fd, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&descriptor, 1, 10_000), 1)
        XCTAssertEqual(recv(peer.fd, &byte, 1, 0), -1)
        XCTAssertEqual(errno, ECONNRESET, "the close was not a reset")
        peer.close()
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAValueAnOptionCannotTakeFailsTheBindTheConnectOrTheSetBeforeAnySocketChanges() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let invalidIdle = SocketOptionError.invalidValue(option: "TCP_KEEPIDLE", value: "\(TimeAmount.zero)")
        do {
            _ = try await ServerBootstrap(group: group).childSocketOption(.keepAliveIdle, .zero)
                .bind(to: .loopbackV4(port: 0)).get(within: 10)
            XCTFail("the bind succeeded")
        } catch {
            XCTAssertEqual(error as? SocketOptionError, invalidIdle)
        }
        let (server, accepted) = try await serve({ $0 }, group: group)
        do {
            _ = try await ClientBootstrap(group: group).socketOption(.keepAliveCount, 0)
                .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
            XCTFail("the connect succeeded")
        } catch {
            XCTAssertEqual(error as? SocketOptionError, .invalidValue(option: "TCP_KEEPCNT", value: "0"))
        }
        let client = try await ClientBootstrap(group: group).connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
        await fulfillment(of: [accepted.arrived], timeout: 10)
        for invalid in [-1, 256] {
            do {
                try await client.setSocketOption(.ipTypeOfService, to: invalid).get(within: 10)
                XCTFail("IP_TOS took \(invalid)")
            } catch {
                XCTAssertEqual(error as? SocketOptionError, .invalidValue(option: "IP_TOS", value: "\(invalid)"))
            }
        }
        // A closed channel refuses both directions.
        try await client.close().get(within: 10)
        do {
            _ = try await client.socketOption(.keepAlive).get(within: 10)
            XCTFail("a closed channel read an option")
        } catch {
            XCTAssertEqual(error as? ChannelError, .ioOnClosedChannel)
        }
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }
}
