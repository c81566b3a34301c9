import Pheromones
import PheromonesP2P
import Synchronization
import XCTest

/// Protocols that await: the node awaits them off the loop and writes their answers on it, one
/// message at a time per connection, and they reach the route table through the async
/// `addRoute`.
final class AsyncProtocolTests: XCTestCase {
    func testAnAsyncProtocolAnswersInOrderAndAddsTheGreetingsRouteFromAnyTask() async throws {
        for (connectionType, wire) in [(ConnectionType.persistent, WireFormat.json), (.persistent, .native), (.short, .native)] {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
            let luda = try await ExampleNode.start("luda", connectionType, wire, group: group)
            let seen = Recorder<String>()
            let configuration = Node.Configuration(name: "slow", connectionType: connectionType, wire: wire, logger: testLogger("slow"))
            let slow = try Node(configuration: configuration, protocol: SlowExample(seen: seen), group: group)
            let slowAddress = try await slow.listen(on: .loopbackV4(port: 0))

            try await luda.node.add(peer: "slow", address: slowAddress)
            let summary = try await within(10, on: luda.node.eventLoop) { try await luda.node.converse(with: "slow", starting: luda.hello) }
            XCTAssertEqual(summary.transcript, exampleTranscript, "\(connectionType) \(wire)")
            XCTAssertEqual(seen.all, ["connectreq", "getreq", "fetchreq", "noticereq"])
            let routes = await slow.peers
            XCTAssertEqual(routes.map(\.key), [PeerKey(name: "luda", address: luda.address)], "\(connectionType) \(wire)")

            // The async protocol also drives this node's side of a short conversation.
            if connectionType == .short {
                let back = try await within(10, on: luda.node.eventLoop) { try await slow.converse(with: "luda", starting: ExampleProtocol.connectRequest(from: "slow", listeningAddress: slowAddress)) }
                XCTAssertEqual(back.transcript, exampleTranscript)
            }
            await slow.shutdown()
            await luda.node.shutdown()
            try await group.shutdownGracefully()
        }
    }
}

/// The example's answers from an async protocol that yields before each one (as if it awaited a
/// database), adding the greeting's route through the async `addRoute`.
private struct SlowExample: AsyncPeerProtocol {
    let seen: Recorder<String>

    func handle(_ message: Envelope, context: PeerContext) async throws -> Envelope? {
        for _ in 0..<3 { await Task.yield() }
        if message.operation.hasSuffix("req") { seen.append(message.operation) }
        if message.operation == "connectreq", let data = message.data {
            let greeting = try Greeting(json: data)
            do {
                try await context.addRoute(name: message.name, address: greeting.address)
            } catch P2PError.routeExists {
                // Bound already (a second connect request on this connection).
            }
        }
        guard let answer = GatedExample.answers[message.operation] else { return nil }
        return Envelope(name: context.localName, operation: answer)
    }
}

/// A task that prefers a node's loop as its executor drives the node without leaving the loop's
/// thread: no thread hop per message.
final class ExecutorPreferenceTests: XCTestCase {
    func testConversationsOnATaskPreferringTheNodesLoopStayOnTheLoopThreadAcrossEveryAwait() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let hub = try await ExampleNode.start("hub", .persistent, .json, group: group)
        let peer = try await ExampleNode.start("peer", .persistent, .json, group: group)
        let loop = hub.node.eventLoop
        let onLoop = try await withTaskExecutorPreference(loop) { () async throws -> [Bool] in
            var seen = [loop.inEventLoop]
            try await hub.node.add(peer: "peer", address: peer.address)
            seen.append(loop.inEventLoop)
            for _ in 0..<20 {
                let summary = try await hub.node.converse(with: "peer", starting: hub.hello)
                XCTAssertEqual(summary.transcript, exampleTranscript)
                seen.append(loop.inEventLoop)
            }
            return seen
        }
        XCTAssertEqual(onLoop, Array(repeating: true, count: 22))
        await peer.node.shutdown()
        await hub.node.shutdown()
        try await group.shutdownGracefully()
    }
}
