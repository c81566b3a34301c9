import Pheromones
import PheromonesP2P
import XCTest

/// Pinned peers (those the application added) are dialled again by the node itself when their
/// connection drops, with exponential backoff and jitter; a deleted peer never is.
final class ReconnectionTests: GroupTestCase {
    func testAPinnedPeerThatRestartsOnTheSamePortIsReconnectedWithoutAnyMessage() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { configuration in
            configuration.reconnectDelay = .milliseconds(50)
            configuration.maximumReconnectDelay = .milliseconds(200)
        }
        let peer = try await ExampleNode.start("peer", .persistent, .native, group: group)
        try await hub.node.add(peer: "peer", address: peer.address)
        await peer.node.shutdown()
        try await hub.waitForClosedConnections(1)

        // The peer comes back on the same port.
        let restarted = try Node(
            configuration: Node.Configuration(name: "peer", logger: testLogger("p2p.restarted")), protocol: ExampleProtocol(), group: group)
        _ = try await restarted.listen(on: peer.address)
        try await hub.connections.wait("the hub to reconnect", within: 10, on: hub.node.eventLoop) { events in
            events.filter { if case .connectionIdentified(let key, .outbound) = $0 { key.address == peer.address } else { false } }.count == 2
        }
        let reply = try await within(10, on: hub.node.eventLoop) { try await hub.node.dispatch(to: "peer", hub.hello) }
        XCTAssertEqual(reply?.operation, "connectresp")
        await restarted.shutdown()
        await hub.node.shutdown()
    }

    func testRedialsOfAPeerThatStaysDownBackOffWithJitterDoublingUpToTheCap() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { configuration in
            configuration.reconnectDelay = .milliseconds(40)
            configuration.maximumReconnectDelay = .milliseconds(160)
        }
        let peer = try await ExampleNode.start("peer", .persistent, .native, group: group)
        try await hub.node.add(peer: "peer", address: peer.address)
        await peer.node.shutdown()

        let delays = { () -> [TimeAmount] in
            hub.connections.all.compactMap { if case .reconnectScheduled(_, let delay) = $0 { delay } else { nil } }
        }
        try await hub.connections.wait("six scheduled redials", within: 10, on: hub.node.eventLoop) { events in
            events.filter { if case .reconnectScheduled = $0 { true } else { false } }.count >= 6
        }
        // Each delay lies between half and all of 40 ms doubled per failure, capped at 160 ms.
        let ceilings: [Int64] = [40, 80, 160, 160, 160, 160]
        for (delay, ceiling) in zip(delays(), ceilings) {
            XCTAssertGreaterThanOrEqual(delay, .milliseconds(ceiling / 2))
            XCTAssertLessThanOrEqual(delay, .milliseconds(ceiling))
        }
        // Between redials, a message for the peer fails at once rather than dialling again.
        let started = Deadline.now()
        do {
            _ = try await hub.node.dispatch(to: "peer", hub.hello)
            XCTFail("a dispatch to a peer that is down succeeded")
        } catch P2PError.connectFailed {
            XCTAssertLessThan(Deadline.now() - started, .seconds(2))
        }
        await hub.node.shutdown()
    }

    func testADeletedPeerIsNeverRedialled() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { configuration in
            configuration.reconnectDelay = .milliseconds(20)
            configuration.maximumReconnectDelay = .milliseconds(40)
        }
        let peer = try await ExampleNode.start("peer", .persistent, .native, group: group)
        try await hub.node.add(peer: "peer", address: peer.address)
        try await hub.node.delete(peer: "peer")
        try await hub.waitForClosedConnections(1)

        // Ten times the longest delay, timed by the hub's loop.
        try await hub.node.eventLoop.scheduleTask(in: .milliseconds(400)) {}.futureResult.get()
        XCTAssertFalse(hub.connections.all.contains { if case .reconnectScheduled = $0 { true } else { false } })
        let identified = peer.connections.all.filter { if case .connectionIdentified = $0 { true } else { false } }
        XCTAssertEqual(identified.count, 1, "the peer saw only the first connection")
        await peer.node.shutdown()
        await hub.node.shutdown()
    }
}
