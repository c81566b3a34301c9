import Foundation
import Pheromones
import XCTest

/// Thrown by ``bounded(_:file:line:_:)`` after it has reported the timeout as a test failure.
struct GuideTestTimeout: Error {}

/// Runs `body` and waits at most `seconds` for it: a sample that hangs fails its test instead of
/// hanging the suite. (The guide's samples await futures with `get()`, which has no deadline.)
func bounded<T: Sendable>(
    _ seconds: Double = 10, file: StaticString = #filePath, line: UInt = #line,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let task = Task { try await body() }
    let finished = XCTestExpectation(description: "the sample finished")
    Task {
        _ = try? await task.value
        finished.fulfill()
    }
    guard await XCTWaiter().fulfillment(of: [finished], timeout: seconds) == .completed else {
        task.cancel()
        XCTFail("the sample did not finish within \(seconds) s", file: file, line: line)
        throw GuideTestTimeout()
    }
    return try await task.value
}

/// A client on a raw `AsyncChannel`, to talk to the guide's servers from the tests.
struct TestClient: Sendable {
    let connection: AsyncChannel<ByteBuffer, ByteBuffer>

    static func connect(to address: SocketAddress?, group: MultiThreadedEventLoopGroup) async throws -> TestClient {
        let address = try XCTUnwrap(address)
        let connection = try await ClientBootstrap(group: group).connect(to: address) { channel in
            try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
        }
        return TestClient(connection: connection)
    }

    func send(_ text: String) async throws {
        try await connection.outbound.write(ByteBuffer(string: text))
    }

    /// Reads until `count` bytes have arrived (or the stream ends) and returns them as text.
    func receive(_ count: Int) async throws -> String {
        var received = ByteBuffer()
        var messages = connection.inbound.makeAsyncIterator()
        while received.readableBytes < count, let message = try await messages.next() {
            received.writeImmutableBuffer(message)
        }
        return String(buffer: received)
    }

    /// Reads until the server closes the connection; returns what arrived meanwhile.
    func receiveUntilClosed() async throws -> String {
        var received = ByteBuffer()
        for try await message in connection.inbound { received.writeImmutableBuffer(message) }
        return String(buffer: received)
    }

    func close() async throws {
        try await connection.channel.close().get()
    }
}

/// A port nothing listens on: one a server had, closed again.
func closedPort(group: MultiThreadedEventLoopGroup) async throws -> Int {
    let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0)
    let port = try XCTUnwrap(server.localAddress?.port)
    try await server.close().get()
    return port
}
