import MetricsTestKit
import Pheromones
import PheromonesP2P
import XCTest

/// A node counts its traffic and what happens to its peers, in a snapshot and through swift-metrics.
final class MetricsTests: GroupTestCase {
    func testAConversationIsCountedInTheSnapshotAndInTheMetricsBackendAlike() async throws {
        let metrics = TestMetrics()
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.metricsFactory = metrics }
        let peer = try await ExampleNode.start("peer", .persistent, .native, group: group)
        try await hub.node.add(peer: "peer", address: peer.address)
        let summary = try await within(10, on: hub.node.eventLoop) { try await hub.node.converse(with: "peer", starting: hub.hello) }
        XCTAssertEqual(summary.transcript, exampleTranscript)

        let statistics = await hub.node.statistics
        // The hub sent its hello and the four requests, and received the peer's hello and four answers;
        // its protocol saw the three answers it answers, and the fourth, which ends the conversation.
        XCTAssertGreaterThanOrEqual(statistics.messagesOut, 5)
        XCTAssertGreaterThanOrEqual(statistics.messagesIn, 5)
        XCTAssertEqual(statistics.delivered, 4)
        XCTAssertEqual(statistics.peersUp, 1)
        XCTAssertEqual(statistics.peersDown, 0)
        XCTAssertGreaterThan(statistics.bytesOut, 0, "the connect request carries a greeting")

        let node = [("node", "hub")]
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_messages_in_total", node).totalValue, Int64(statistics.messagesIn))
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_messages_out_total", node).totalValue, Int64(statistics.messagesOut))
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_delivered_total", node).totalValue, 4)
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_peers_up_total", node).totalValue, 1)
        XCTAssertEqual(try metrics.expectGauge("pheromones_p2p_queued_bytes", node).lastValue, 0)

        await peer.node.shutdown()
        try await hub.waitForClosedConnections(1)
        let after = await hub.node.statistics
        XCTAssertEqual(after.peersDown, 1)
        XCTAssertGreaterThanOrEqual(after.reconnects, 1, "the pinned peer is redialled")
        await hub.node.shutdown()
    }

    func testABroadcastInATriangleCountsForwardedCopiesAndDroppedDuplicates() async throws {
        let nodes = try await [
            ExampleNode.start("a", .persistent, .native, group: group),
            ExampleNode.start("b", .persistent, .native, group: group),
            ExampleNode.start("c", .persistent, .native, group: group),
        ]
        try await nodes[0].node.add(peer: "b", address: nodes[1].address)
        try await nodes[1].node.add(peer: "c", address: nodes[2].address)
        try await nodes[2].node.add(peer: "a", address: nodes[0].address)

        let sent = try await nodes[0].node.broadcast(Envelope(name: "a", operation: "news"), hopLimit: 3)
        XCTAssertEqual(sent, 2)
        // b and c each get the broadcast from a and pass it on to the other, who has it already.
        for index in 1...2 {
            try await nodes[index].events.wait("the broadcast at \(nodes[index].name)", on: nodes[index].node.eventLoop) { events in
                events.contains { if case .handled(_, let message, _) = $0 { message.operation == "news" } else { false } }
            }
        }
        var forwarded = 0
        var duplicates = 0
        let deadline = Deadline.now() + .seconds(10)
        while duplicates < 2, Deadline.now() < deadline {
            forwarded = 0
            duplicates = 0
            for node in nodes {
                let statistics = await node.node.statistics
                forwarded += statistics.forwarded
                duplicates += statistics.duplicatesDropped
            }
            if duplicates < 2 { try await nodes[0].node.eventLoop.scheduleTask(in: .milliseconds(10)) {}.futureResult.get() }
        }
        XCTAssertEqual(forwarded, 2, "b and c each forwarded one copy")
        XCTAssertEqual(duplicates, 2, "b and c each dropped the copy the other forwarded")
        for node in nodes { await node.node.shutdown() }
    }
}
