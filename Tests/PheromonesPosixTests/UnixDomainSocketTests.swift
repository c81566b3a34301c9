import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

/// Unix domain stream sockets, with the same channels and bootstraps as TCP: file system paths
/// (stale socket files handled, the file removed on close) and Linux's abstract namespace.
final class UnixDomainSocketTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pheromones-uds-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// Echoes `text` through a server at `address` and returns the client's view of the addresses.
    private func echo(_ text: String, at address: SocketAddress, group: MultiThreadedEventLoopGroup) async throws -> SocketChannel {
        let connection = try await ClientBootstrap(group: group).connect(to: address) { channel in
            try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
        }
        try await connection.outbound.write(ByteBuffer(string: text))
        var messages = connection.inbound.makeAsyncIterator()
        var received = ""
        while received.utf8.count < text.utf8.count, let message = try await messages.next() { received += String(buffer: message) }
        XCTAssertEqual(received, text)
        return try XCTUnwrap(connection.channel as? SocketChannel)
    }

    func testAnEchoServerOnAFilePathServesAClientAndRemovesItsSocketFileWhenItCloses() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let address = try SocketAddress.unixDomain(path: path("echo.sock"))
        let accepted = LockedValue<SocketChannel?>(nil)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.withLock { $0 = channel }
                try channel.pipeline.addHandler(EchoingHandler())
            }
            .bind(to: address).get(within: 10)
        XCTAssertEqual(server.localAddress, address)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("echo.sock")))

        let client = try await echo("over a unix socket", at: address, group: group)
        XCTAssertEqual(client.remoteAddress, address)
        let child = try XCTUnwrap(accepted.withLock { $0 })
        XCTAssertEqual(child.localAddress, address)
        XCTAssertEqual(child.remoteAddress?.description, "(unnamed)")

        try await client.close().get(within: 10)
        try await server.close().get(within: 10)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("echo.sock")), "the socket file outlived its server")
        try await group.shutdownGracefully()
    }

    func testAnAbstractNameNeedsNoFile() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let address = try SocketAddress.unixDomain(abstractName: "pheromones-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(to: address).get(within: 10)
        XCTAssertEqual(server.localAddress, address)
        XCTAssertTrue(server.localAddress?.description.hasPrefix("@pheromones-test-") ?? false)
        let client = try await echo("abstract", at: address, group: group)
        try await client.close().get(within: 10)
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAStaleSocketFileIsReplacedButALiveServersPathIsNotTaken() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // A server that died: its socket file is still there, and nobody listens on it.
        let stalePath = path("stale.sock")
        let dead = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        let staleAddress = try SocketAddress.unixDomain(path: stalePath)
        XCTAssertEqual(staleAddress.withSockAddr { Glibc.bind(dead, $0, $1) }, 0)
        close(dead)
        XCTAssertTrue(FileManager.default.fileExists(atPath: stalePath))
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(to: staleAddress).get(within: 10)
        let client = try await echo("after the stale file", at: staleAddress, group: group)

        // A live server's path is refused, and that server goes on.
        do {
            _ = try await ServerBootstrap(group: group).bind(to: staleAddress).get(within: 10)
            XCTFail("a second server took a live server's path")
        } catch {
            XCTAssertEqual((error as? IOError)?.errnoCode, EADDRINUSE)
        }
        let again = try await echo("still served", at: staleAddress, group: group)
        // A regular file at the path is nobody's socket: it is left alone, and the bind fails.
        let filePath = path("not-a-socket")
        XCTAssertTrue(FileManager.default.createFile(atPath: filePath, contents: Data("keep me".utf8)))
        do {
            _ = try await ServerBootstrap(group: group).bind(to: try SocketAddress.unixDomain(path: filePath)).get(within: 10)
            XCTFail("a regular file was replaced by a socket")
        } catch {
            XCTAssertEqual((error as? IOError)?.errnoCode, EADDRINUSE)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: filePath), Data("keep me".utf8))
        for channel in [client, again] { try await channel.close().get(within: 10) }
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testPathsThatCannotBeAddressesAreRefusedWithAReadableError() {
        let tooLong = String(repeating: "x", count: SocketAddress.UnixDomain.maximumPathLength + 1)
        for path in ["", tooLong, "a\u{0}b"] {
            XCTAssertThrowsError(try SocketAddress.unixDomain(path: path)) { error in
                XCTAssertEqual(error as? AddressError, .invalidUnixPath(path, maximum: SocketAddress.UnixDomain.maximumPathLength))
            }
        }
        XCTAssertNoThrow(try SocketAddress.unixDomain(path: String(repeating: "x", count: SocketAddress.UnixDomain.maximumPathLength)))
    }
}
