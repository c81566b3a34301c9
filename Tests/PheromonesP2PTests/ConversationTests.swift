import Pheromones
import PheromonesP2P
import XCTest

/// Three nodes on loopback run the original's example (`_example/main.go`): luda adds yoghurt and
/// converses with it, yoghurt converses back with luda (whose route it learned from the greeting),
/// then yoghurt adds diudiu and dispatches to everyone. For both routers and both wires.
final class ConversationTests: XCTestCase {
    func testThreeShortNodesOnTheNativeWireCompleteTheExampleInBothDirections() async throws {
        try await runTheExample(.short, .native)
    }

    func testThreeShortNodesOnTheJSONWireCompleteTheExampleInBothDirections() async throws {
        try await runTheExample(.short, .json)
    }

    func testThreePersistentNodesOnTheNativeWireCompleteTheExampleInBothDirections() async throws {
        try await runTheExample(.persistent, .native)
    }

    func testThreePersistentNodesOnTheJSONWireCompleteTheExampleInBothDirections() async throws {
        try await runTheExample(.persistent, .json)
    }

    private func runTheExample(_ connectionType: ConnectionType, _ wire: WireFormat) async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.next()
        let luda = try await ExampleNode.start("luda", connectionType, wire, group: group)
        let yoghurt = try await ExampleNode.start("yoghurt", connectionType, wire, group: group)
        let diudiu = try await ExampleNode.start("diudiu", connectionType, wire, group: group)

        // Test 1: luda adds yoghurt and runs the conversation.
        try await within(10, on: loop, "luda adds yoghurt") { try await luda.node.add(peer: "yoghurt", address: yoghurt.address) }
        let first = try await within(10, on: loop, "luda's conversation") {
            try await luda.node.converse(with: "yoghurt", starting: luda.hello)
        }
        XCTAssertEqual(first.transcript, exampleTranscript)
        XCTAssertEqual(first.ending, .completedHere)
        XCTAssertEqual(first.peer, PeerKey(name: "yoghurt", address: yoghurt.address))
        XCTAssertEqual(first.received.map(\.name), ["yoghurt", "yoghurt", "yoghurt", "yoghurt"])
        try await luda.waitForFinishedConversations(1)
        XCTAssertEqual(yoghurt.handledOperations, ["connectreq", "getreq", "fetchreq", "noticereq"])
        XCTAssertTrue(yoghurt.events.all.contains {
            if case .routeAdded("yoghurt", "luda", "\(luda.address)") = $0 { return true } else { return false }
        }, "the connect request added luda's route, as in the original")

        // The greeting gave yoghurt a route back to luda, keyed by luda's listening address.
        let yoghurtsPeers = await yoghurt.node.peers
        XCTAssertEqual(yoghurtsPeers.map(\.key), [PeerKey(name: "luda", address: luda.address)])
        XCTAssertEqual(yoghurtsPeers.first?.isConnected, connectionType == .persistent)

        // Test 2: yoghurt converses with luda by the name it learned.
        let second = try await within(10, on: loop, "yoghurt's conversation") {
            try await yoghurt.node.converse(with: "luda", starting: yoghurt.hello)
        }
        XCTAssertEqual(second.transcript, exampleTranscript)
        try await yoghurt.waitForFinishedConversations(1)

        // Test 3: yoghurt adds diudiu and dispatches a connect request to everyone.
        try await within(10, on: loop, "yoghurt adds diudiu") { try await yoghurt.node.add(peer: "diudiu", address: diudiu.address) }
        // Every route, as the original's dispatch to all does (by default a fan-out skips routes that
        // a peer taught the node and that have no connection: luda's, in short mode).
        let replies = try await within(10, on: loop, "dispatchAll") { await yoghurt.node.dispatchAll(yoghurt.hello, to: .allRoutes) }
        XCTAssertEqual(Set(replies.keys), [PeerKey(name: "luda", address: luda.address), PeerKey(name: "diudiu", address: diudiu.address)])
        for (peer, result) in replies {
            let reply = try result.get()
            if connectionType == .persistent && wire == .json {
                XCTAssertNil(reply, "a persistent JSON dispatch returns once written (\(peer))")
            } else {
                XCTAssertEqual(reply?.operation, "connectresp", "\(peer)")
                XCTAssertEqual(reply?.name, peer.name)
            }
        }
        if connectionType == .persistent {
            // The replies also went to yoghurt's protocol, which carried both conversations on.
            try await yoghurt.waitForFinishedConversations(3)
        }

        for node in [luda, yoghurt, diudiu] { await node.node.shutdown() }
        try await group.shutdownGracefully()
    }
}
