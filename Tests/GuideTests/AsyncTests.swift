import Pheromones
import XCTest

// Guide, "Async/await". Loopback, port 0, bounded waits.

/// An actor whose code runs on an event loop's thread, so it may touch what is confined to that
/// loop (channels' pipelines, handlers) without a hop.
actor LoopBoundCounter {
    let loop: EpollEventLoop
    private(set) var count = 0

    init(loop: EpollEventLoop) { self.loop = loop }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    func increment() -> Bool {
        count += 1
        return loop.inEventLoop  // true: the actor runs on the loop
    }
}

final class AsyncTests: XCTestCase {
    func testAnAsyncServerHandsOutEachConnectionToAForAwaitLoop() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            let server = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0) { channel in
                try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
            }
            let serving = Task {
                for await connection in server {       // ends when the server closes
                    Task {                              // one task per connection
                        for try await message in connection.inbound {
                            try await connection.outbound.write(message)
                        }
                        try await connection.channel.close().get()  // the client has finished
                    }
                }
            }

            for name in ["first", "second"] {
                let client = try await TestClient.connect(to: server.localAddress, group: group)
                try await client.send(name)
                let echoed = try await client.receive(name.utf8.count)
                XCTAssertEqual(echoed, name)
                try await client.close()
            }
            try await server.close()
            await serving.value
            try await group.shutdownGracefully()
        }
    }

    func testAFutureIsAwaitedWithGetAndTransformedWithMap() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            let loop = group.next()
            let answer = loop.submit { 6 * 7 }                   // a Future<Int>, completed on the loop
            let text = answer.map { "the answer is \($0)" }      // runs on the loop too
            print(try await text.get())                          // from any task

            let value = try await answer.get()
            XCTAssertEqual(value, 42)
            try await group.shutdownGracefully()
        }
    }

    func testAFutureIsWaitedForFromCodeThatIsNotAsync() throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { group.syncShutdownGracefully() }

        let answer = group.next().submit { 6 * 7 }
        let value = try answer.wait(timeout: .seconds(5))  // blocks this thread; never call it on the loop

        XCTAssertEqual(value, 42)
    }

    func testATaskAndAnActorRunOnTheLoopTheyAreGiven() async throws {
        try await bounded {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)

            let loop = group.nextLoop()
            let onLoop = await Task(executorPreference: loop) {
                loop.inEventLoop                                 // true
            }.value
            let counter = LoopBoundCounter(loop: loop)
            let actorOnLoop = await counter.increment()          // true

            XCTAssertTrue(onLoop)
            XCTAssertTrue(actorOnLoop)
            try await group.shutdownGracefully()
        }
    }
}
