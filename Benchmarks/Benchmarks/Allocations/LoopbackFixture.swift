import Benchmark
import BenchmarkSupport
import Glibc
import Synchronization

/// An echo server on 127.0.0.1 that counts the connections it has seen close.
protocol LoopbackEchoServer: AnyObject {
    /// Starts listening on a free port and returns it.
    func start(counting closed: ClosedConnections) async throws -> Int
    func stop() async throws
}

/// Connections whose server side has gone inactive (incremented on the server's loop).
final class ClosedConnections: Sendable {
    private let count = Atomic<Int>(0)

    func increment() { count.add(1, ordering: .releasing) }
    var value: Int { count.load(ordering: .acquiring) }
}

/// A server, plus a warm client connection for the round-trip benchmark.
final class LoopbackFixture {
    private let server: any LoopbackEchoServer
    private let closed = ClosedConnections()
    private var port = 0
    private var client: BlockingClient?
    static let messageSize = 64

    init(_ server: any LoopbackEchoServer) {
        self.server = server
    }

    func start() async throws {
        port = try await server.start(counting: closed)
    }

    /// Starts the server and warms up one connection with 1,000 round trips.
    func startWithConnection() async throws {
        try await start()
        let client = try BlockingClient(port: port, messageSize: Self.messageSize)
        for _ in 0..<1000 { try client.roundTrip() }
        self.client = client
    }

    func stop() async throws {
        client?.close()
        client = nil
        try await server.stop()
    }

    /// Measures `count` round trips on the warm connection.
    func roundTrips(_ count: Int, benchmark: Benchmark) throws {
        guard let client else { throw ClientError(call: "roundTrip (no connection)", code: ENOTCONN) }
        benchmark.startMeasurement()
        for _ in 0..<count { try client.roundTrip() }
        benchmark.stopMeasurement()
    }

    /// Measures one connection: connect, one round trip, close, and the server noticing the close.
    func connectionLifecycle(benchmark: Benchmark) throws {
        let closedBefore = closed.value
        benchmark.startMeasurement()
        let client = try BlockingClient(port: port, messageSize: Self.messageSize)
        try client.roundTrip()
        client.close()
        while closed.value == closedBefore { sched_yield() }
        benchmark.stopMeasurement()
    }
}
