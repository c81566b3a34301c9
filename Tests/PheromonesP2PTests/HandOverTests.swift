import Pheromones
import PheromonesP2P
import XCTest

/// TODO 3: a new connection for a peer whose connection carries a conversation waits until the old
/// one is idle, then the old one closes; past the hand-over timeout the old conversation fails
/// with `connectionReplaced` and the new connection takes over. Replies stay with their connection.
final class HandOverTests: GroupTestCase {
    func testANewConnectionWaitsForTheOldOneToFinishItsConversationAndThenTakesOver() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group)
        let gate = Gate(loop: hub.node.eventLoop)
        defer { gate.open() }
        let arrivals = Recorder<String>()
        let (peer, peerAddress) = try await startGatedNode(
            "peer", .persistent, .native, gating: "fetchreq", gate: gate, arrivals: arrivals, group: group)
        try await hub.node.add(peer: "peer", address: peerAddress)

        // The conversation stops at fetchreq, on the first connection.
        let conversation = Task { try await hub.node.converse(with: "peer", starting: hub.hello) }
        try await arrivals.wait("the conversation to reach fetchreq", on: hub.node.eventLoop) { $0.contains("fetchreq") }

        // Reconnecting dials a second connection; the first stays open while it is busy.
        try await within(10, on: hub.node.eventLoop) { try await hub.node.add(peer: "peer", address: peerAddress) }
        let open = await hub.node.openConnectionCount
        XCTAssertEqual(open, 2)
        XCTAssertTrue(hub.connections.all.contains { if case .connectionDraining(_, .outbound) = $0 { return true } else { return false } })

        // A dispatch made now waits for the hand-over rather than overtaking the conversation.
        let dispatch = Task { try await hub.node.dispatch(to: "peer", Envelope(name: "hub", operation: "getreq")) }
        gate.open()
        let summary = try await within(10, on: hub.node.eventLoop) { try await conversation.value }
        XCTAssertEqual(summary.transcript, exampleTranscript)
        let reply = try await within(10, on: hub.node.eventLoop) { try await dispatch.value }
        XCTAssertEqual(reply?.operation, "getresp")
        XCTAssertEqual(Array(arrivals.all.prefix(5)), ["connectreq", "getreq", "fetchreq", "noticereq", "getreq"],
                       "the dispatch reached the peer only after the conversation's last message")

        try await hub.waitForClosedConnections(1)
        let remaining = await hub.node.openConnectionCount
        XCTAssertEqual(remaining, 1)
        let peers = await hub.node.peers
        XCTAssertEqual(peers.map(\.isConnected), [true])
        await hub.node.shutdown()
        await peer.shutdown()
    }

    func testAnOldConnectionStillBusyAfterTheHandOverTimeoutFailsItsConversationWithConnectionReplaced() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.handOverTimeout = .milliseconds(300) }
        let gate = Gate(loop: hub.node.eventLoop)
        defer { gate.open() }
        let arrivals = Recorder<String>()
        let (peer, peerAddress) = try await startGatedNode(
            "peer", .persistent, .native, gating: "fetchreq", gate: gate, arrivals: arrivals, group: group) { $0.handOverTimeout = .milliseconds(300) }
        try await hub.node.add(peer: "peer", address: peerAddress)
        let conversation = Task { try await hub.node.converse(with: "peer", starting: hub.hello) }
        try await arrivals.wait("the conversation to reach fetchreq", on: hub.node.eventLoop) { $0.contains("fetchreq") }

        try await within(10, on: hub.node.eventLoop) { try await hub.node.add(peer: "peer", address: peerAddress) }
        let (outcome, elapsed) = await timed { await conversation.result }
        assertFailure(outcome, is: .connectionReplaced(peerAddress))
        XCTAssertLessThan(elapsed, .seconds(5))

        // The new connection carries the route, and its replies are its own: the stuck fetchresp
        // of the old conversation, released now, reaches nobody.
        let reply = try await within(10, on: hub.node.eventLoop) {
            try await hub.node.dispatch(to: "peer", Envelope(name: "hub", operation: "noticereq"))
        }
        XCTAssertEqual(reply?.operation, "noticeresp")
        gate.open()
        let again = try await within(10, on: hub.node.eventLoop) {
            try await hub.node.dispatch(to: "peer", Envelope(name: "hub", operation: "noticereq"))
        }
        XCTAssertEqual(again?.operation, "noticeresp")
        XCTAssertFalse(hub.handledOperations.contains("fetchresp"), "the old conversation's late reply was not delivered")
        await hub.node.shutdown()
        await peer.shutdown()
    }

    func testWhatIsSentOnAReplacedConnectionBeforeTheHandOverIsAnsweredThere() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group)
        let peer = try await ExampleNode.start("peer", .persistent, .native, group: group)
        try await hub.node.add(peer: "peer", address: peer.address)
        // Many dispatches in flight on the first connection while the second one is dialed.
        let replies = try await within(20, on: hub.node.eventLoop) {
            try await withThrowingTaskGroup(of: Envelope?.self) { tasks in
                for _ in 0..<50 {
                    tasks.addTask { try await hub.node.dispatch(to: "peer", Envelope(name: "hub", operation: "noticereq")) }
                }
                try await hub.node.add(peer: "peer", address: peer.address)
                for _ in 0..<50 {
                    tasks.addTask { try await hub.node.dispatch(to: "peer", Envelope(name: "hub", operation: "noticereq")) }
                }
                return try await tasks.reduce(into: []) { $0.append($1) }
            }
        }
        XCTAssertEqual(replies.count, 100)
        XCTAssertTrue(replies.allSatisfy { $0?.operation == "noticeresp" })
        try await hub.waitForClosedConnections(1)
        try await peer.waitForClosedConnections(1)
        let hubOpen = await hub.node.openConnectionCount
        let peerOpen = await peer.node.openConnectionCount
        XCTAssertEqual([hubOpen, peerOpen], [1, 1])
        await hub.node.shutdown()
        await peer.node.shutdown()
    }
}
