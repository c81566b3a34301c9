import Dispatch
import Pheromones
import PheromonesNoise
import PheromonesP2P
import XCTest

/// A listening address a peer claims in its hello is not proof (issue 10): a peer that connects
/// first claiming where another listens must not lock that peer out. This node's own dial of the
/// address is what decides: the route is the id the dial proves, and the claimant is refused.
/// Real sockets on 127.0.0.1, every wait bounded.
final class AddressClaimTests: GroupTestCase {
    /// A node that answers nothing (so a scripted peer's `sync` works), reporting its events.
    private func startTarget(
        configure: @escaping (inout Node.Configuration) -> Void = { _ in }
    ) async throws -> (node: Node, address: SocketAddress, events: Recorder<NodeEvent>) {
        let events = Recorder<NodeEvent>()
        let (node, address, _) = try await startAnswerTableNode("node", .persistent, .native, group: group) {
            $0.observer = { events.append($0) }
            $0.dialTimeout = .seconds(5)
            configure(&$0)
        }
        return (node, address, events)
    }

    private func waitForIdentified(_ count: Int, _ direction: ConnectionDirection, in events: Recorder<NodeEvent>, on node: Node) async throws {
        try await events.wait("\(count) \(direction) connections identified", within: 10, on: node.eventLoop) { events in
            events.filter { if case .connectionIdentified(_, direction) = $0 { true } else { false } }.count >= count
        }
    }

    func testADialOfOursOverridesAnEarlierClaimOfTheAddressAndTheClaimantIsRefused() async throws {
        let (node, address, events) = try await startTarget()
        let real = try await ExampleNode.start("real", .persistent, .native, group: group)
        let squatter = try await ScriptedPeer.nativeNode("real", listeningAt: real.address, connectingTo: address, group: group)
        try await waitForIdentified(1, .inbound, in: events, on: node)
        let claimed = await node.peers.map(\.peerID)
        XCTAssertEqual(claimed, [squatter.identity.peerID], "the claim gave the squatter a learned route at the address")

        try await within(10, on: node.eventLoop) { try await node.add(peer: "real", address: real.address) }
        let reply = try await within(10, on: node.eventLoop) {
            try await node.dispatch(to: real.address, Envelope(name: "node", operation: "noticereq"))
        }
        XCTAssertEqual(reply?.operation, "noticeresp")
        XCTAssertEqual(real.handledOperations, ["noticereq"], "the real peer answered")
        try await squatter.ended.wait("the node to close the squatter", within: 10, on: node.eventLoop) { !$0.isEmpty }
        XCTAssertFalse(squatter.received.all.contains { $0.operation == "noticereq" }, "nothing for the real peer reached the squatter")

        let routes = await node.peers
        XCTAssertEqual(routes.map(\.peerID), [real.node.peerID], "the route is the id our dial proved")
        XCTAssertEqual(routes.map(\.isConnected), [true])
        let byID = try await within(10, on: node.eventLoop) {
            try await node.dispatch(to: .peer(real.node.peerID), Envelope(name: "node", operation: "noticereq"))
        }
        XCTAssertEqual(byID?.operation, "noticeresp")
        let refused = await node.statistics.peersRefused
        XCTAssertEqual(refused, 1, "the squatter, counted")
        await squatter.close()
        await node.shutdown()
        await real.node.shutdown()
    }

    func testAClaimMadeWhileOurDialIsUnderWayWaitsForItAndIsRefused() async throws {
        let (node, address, events) = try await startTarget()
        // The real peer on a loop of its own, held still so that our dial stays under way (the
        // kernel accepts the connection; the Noise handshake waits for the loop).
        let realGroup = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let real = try await ExampleNode.start("real", .persistent, .native, group: realGroup)
        let hold = DispatchSemaphore(value: 0)
        realGroup.next().execute { hold.wait() }
        var held = true
        defer { if held { hold.signal() } }

        let added = Task { try await within(10, on: node.eventLoop) { try await node.add(peer: "real", address: real.address) } }
        // `add` plants the route (dialing) on the node's loop before anything else it does there.
        var polls = 0
        while await node.peers.isEmpty, polls < 100_000 {
            polls += 1
            await Task.yield()
        }
        let dialing = await node.peers
        XCTAssertEqual(dialing.map(\.isConnected), [false], "our dial is under way")

        let squatter = try await ScriptedPeer.nativeNode("real", listeningAt: real.address, connectingTo: address, group: group)
        try await squatter.sync(1)  // the node has read its hello
        let meanwhile = await node.peers
        XCTAssertEqual(meanwhile.map(\.peerID), [nil], "the claim is not believed")
        XCTAssertTrue(squatter.ended.all.isEmpty, "it waits for our dial")

        hold.signal()
        held = false
        try await added.value
        let reply = try await within(10, on: node.eventLoop) {
            try await node.dispatch(to: real.address, Envelope(name: "node", operation: "noticereq"))
        }
        XCTAssertEqual(reply?.operation, "noticeresp")
        XCTAssertEqual(real.handledOperations, ["noticereq"])
        try await squatter.ended.wait("the node to close the squatter", within: 10, on: node.eventLoop) { !$0.isEmpty }
        let routes = await node.peers
        XCTAssertEqual(routes.map(\.peerID), [real.node.peerID])
        let refused = await node.statistics.peersRefused
        XCTAssertEqual(refused, 1)
        XCTAssertEqual(events.all.filter { if case .connectionIdentified(_, .inbound) = $0 { true } else { false } }.count, 0)
        await squatter.close()
        await node.shutdown()
        await real.node.shutdown()
        try await realGroup.shutdownGracefully()
    }

    func testAClaimOfARouteThatIsDownAndBoundToNobodyMakesUsDialItToVerify() async throws {
        // No redial of our own for a minute: only the claim can make the node dial.
        let (node, address, events) = try await startTarget { $0.reconnectDelay = .seconds(60) }
        let real = try await ExampleNode.start("real", .persistent, .native, group: group)
        try await within(10, on: node.eventLoop) { try await node.add(peer: "real", address: real.address) }
        try await real.node.delete(peer: address)
        try await events.wait("the route to go down", within: 10, on: node.eventLoop) { events in
            events.contains { if case .reconnectScheduled = $0 { true } else { false } }
        }
        let down = await node.peers
        XCTAssertEqual(down.map(\.isConnected), [false])
        XCTAssertEqual(down.map(\.peerID), [nil], "down, the route is bound to nobody")

        let squatter = try await ScriptedPeer.nativeNode("real", listeningAt: real.address, connectingTo: address, group: group)
        try await waitForIdentified(2, .outbound, in: events, on: node)
        try await squatter.ended.wait("the node to close the squatter", within: 10, on: node.eventLoop) { !$0.isEmpty }
        let routes = await node.peers
        XCTAssertEqual(routes.map(\.peerID), [real.node.peerID], "our dial found the real peer there")
        XCTAssertEqual(routes.map(\.isConnected), [true])
        let refused = await node.statistics.peersRefused
        XCTAssertEqual(refused, 1)

        // The real peer claiming its own address is verified the same way, and let in.
        try await within(10, on: real.node.eventLoop) { try await real.node.add(peer: "node", address: address) }
        let reply = try await within(10, on: real.node.eventLoop) {
            try await real.node.dispatch(to: address, Envelope(name: "real", operation: "sync"))
        }
        XCTAssertNil(reply)
        let after = await node.statistics.peersRefused
        XCTAssertEqual(after, 1, "the real peer is not refused")
        await squatter.close()
        await node.shutdown()
        await real.node.shutdown()
    }

    func testTheRealPeerClaimingItsAddressHeldByASquatterIsVerifiedByOurDial() async throws {
        let (node, address, events) = try await startTarget()
        let real = try await ExampleNode.start("real", .persistent, .native, group: group)
        let squatter = try await ScriptedPeer.nativeNode("real", listeningAt: real.address, connectingTo: address, group: group)
        try await waitForIdentified(1, .inbound, in: events, on: node)

        // The real peer dials the node and claims its own address: two claims; our dial decides.
        try await within(10, on: real.node.eventLoop) { try await real.node.add(peer: "node", address: address) }
        try await squatter.ended.wait("the node to close the squatter", within: 10, on: node.eventLoop) { !$0.isEmpty }
        try await waitForIdentified(1, .outbound, in: events, on: node)
        let routes = await node.peers
        XCTAssertEqual(routes.map(\.peerID), [real.node.peerID])
        let reply = try await within(10, on: node.eventLoop) {
            try await node.dispatch(to: .peer(real.node.peerID), Envelope(name: "node", operation: "noticereq"))
        }
        XCTAssertEqual(reply?.operation, "noticeresp")
        let refused = await node.statistics.peersRefused
        XCTAssertEqual(refused, 1)
        await squatter.close()
        await node.shutdown()
        await real.node.shutdown()
    }

    func testAPinnedRouteStillRefusesAnotherKeyAndPinningTheRealIDRefusesTheSquatterAtOnce() async throws {
        let (node, address, events) = try await startTarget()
        let real = try await ExampleNode.start("real", .persistent, .native, group: group)
        let squatter = try await ScriptedPeer.nativeNode("real", listeningAt: real.address, connectingTo: address, group: group)
        try await waitForIdentified(1, .inbound, in: events, on: node)

        let stranger = NodeIdentity().peerID
        let outcome = await Result { try await within(10, on: node.eventLoop) { try await node.add(peer: "real", address: real.address, expecting: stranger) } }
        assertFailure(outcome, is: .unexpectedPeer(expected: stranger, actual: real.node.peerID))
        try await squatter.ended.wait("the pin to refuse the squatter", within: 10, on: node.eventLoop) { !$0.isEmpty }
        XCTAssertEqual(real.handledOperations, [])

        let squatter2 = try await ScriptedPeer.nativeNode("real", listeningAt: real.address, connectingTo: address, group: group)
        try await squatter2.ended.wait("the pinned route to refuse another key", within: 10, on: node.eventLoop) { !$0.isEmpty }

        try await within(10, on: node.eventLoop) { try await node.add(peer: "real", address: real.address, expecting: real.node.peerID) }
        let reply = try await within(10, on: node.eventLoop) {
            try await node.dispatch(to: real.address, Envelope(name: "node", operation: "noticereq"))
        }
        XCTAssertEqual(reply?.operation, "noticeresp")
        let routes = await node.peers
        XCTAssertEqual(routes.map(\.peerID), [real.node.peerID])
        for peer in [squatter, squatter2] { await peer.close() }
        await node.shutdown()
        await real.node.shutdown()
    }
}
