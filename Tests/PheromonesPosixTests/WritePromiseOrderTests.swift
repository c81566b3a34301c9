import PheromonesCore
@testable import PheromonesPosix
import Synchronization
import XCTest

/// Write promises complete in the order the writes were made, even when one's callback closes the
/// channel while later writes are still being reported.
final class WritePromiseOrderTests: XCTestCase {
    func testAPromiseCallbackThatClosesTheChannelDoesNotReorderTheWritesAfterIt() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0)
        let client = try await ClientBootstrap(group: group).connect(to: XCTUnwrap(server.localAddress)).get()

        let outcomes = LockedValue<[String]>([])
        let done = client.loop.makePromise(of: Void.self)
        try await client.loop.submit {
            let first = client.loop.makePromise(of: Void.self)
            let second = client.loop.makePromise(of: Void.self)
            let third = client.loop.makePromise(of: Void.self)
            for (name, promise) in [("first", first), ("second", second), ("third", third)] {
                promise.futureResult.whenComplete { result in
                    outcomes.withLock { $0.append("\(name): \((try? result.get()) != nil ? "sent" : "failed")") }
                    if name == "third" { done.succeed() }
                }
            }
            // Once the first write is reported sent (while the second is still being reported), queue
            // a third and close: the second was sent and must succeed before the third fails.
            first.futureResult.whenComplete { _ in
                client.pipeline.write(ByteBuffer(string: "three"), promise: third)
                client.close()
            }
            client.pipeline.write(ByteBuffer(string: "one"), promise: first)
            client.pipeline.write(ByteBuffer(string: "two"), promise: second)
            client.pipeline.flush()          // one writev sends both
        }.get()
        try await done.futureResult.get()

        XCTAssertEqual(outcomes.withLock { $0 }, ["first: sent", "second: sent", "third: failed"])
        try await server.close().get()
        try await group.shutdownGracefully()
    }
}
