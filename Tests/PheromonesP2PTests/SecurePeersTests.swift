import Pheromones
import PheromonesNoise
import PheromonesP2P
import XCTest

/// The native wire inside Noise (issue 10): nodes talk over authenticated, encrypted connections,
/// routes are bound to proven peer ids, and no peer can speak for another, take over another's
/// route, or get past the node's policy. Real sockets on 127.0.0.1, every wait bounded.
final class SecurePeersTests: GroupTestCase {
    // MARK: Talking

    func testTwoNodesConverseOverNoiseAndThePersistentRouteIsKeyedByThePeersProvenID() async throws {
        let luda = try await ExampleNode.start("luda", .persistent, .native, group: group)
        let yoghurt = try await ExampleNode.start("yoghurt", .persistent, .native, group: group)
        try await luda.node.add(peer: "yoghurt", address: yoghurt.address)
        let summary = try await within(10, on: luda.node.eventLoop) { try await luda.node.converse(with: "yoghurt", starting: luda.hello) }
        XCTAssertEqual(summary.transcript, exampleTranscript)

        let observed1 = await luda.node.peers.map(\.peerID)
        XCTAssertEqual(observed1, [yoghurt.node.peerID], "the dialer's route carries the proven id")
        let observed2 = await yoghurt.node.peers.map(\.peerID)
        XCTAssertEqual(observed2, [luda.node.peerID], "the acceptor's learned route too")
        let reply = try await luda.node.dispatch(to: .peer(yoghurt.node.peerID), Envelope(name: "luda", operation: "noticereq"))
        XCTAssertEqual(reply?.operation, "noticeresp", "a peer id picks the route")
        await luda.node.shutdown()
        await yoghurt.node.shutdown()
    }

    func testSeveralNodesDispatchAllOverNoiseInShortAndPersistentModes() async throws {
        for connectionType in [ConnectionType.short, .persistent] {
            let hub = try await ExampleNode.start("hub", connectionType, .native, group: group)
            var spokes: [ExampleNode] = []
            for index in 0..<3 {
                let spoke = try await ExampleNode.start("spoke\(index)", connectionType, .native, group: group)
                try await hub.node.add(peer: spoke.name, address: spoke.address, expecting: spoke.node.peerID)
                spokes.append(spoke)
            }
            let results = await hub.node.dispatchAll(Envelope(name: "hub", operation: "noticereq"), to: .allRoutes)
            XCTAssertEqual(results.count, 3, "\(connectionType)")
            for (peer, result) in results {
                XCTAssertEqual(try result.get()?.operation, "noticeresp", "\(connectionType) \(peer)")
            }
            let reply = try await hub.node.dispatch(to: "spoke1", Envelope(name: "hub", operation: "noticereq"))
            XCTAssertEqual(reply?.operation, "noticeresp", "\(connectionType)")
            let observed3 = await hub.node.statistics.peersRefused
            XCTAssertEqual(observed3, 0, "\(connectionType)")
            for node in [hub] + spokes { await node.node.shutdown() }
        }
    }

    func testInsecureNodesTalkInTheClearAndCannotReachANoiseNode() async throws {
        let insecure: (inout Node.Configuration) -> Void = { $0.security = .insecure }
        let luda = try await ExampleNode.start("luda", .persistent, .native, group: group, configure: insecure)
        let yoghurt = try await ExampleNode.start("yoghurt", .persistent, .native, group: group, configure: insecure)
        let secure = try await ExampleNode.start("secure", .persistent, .native, group: group) { $0.handshakeTimeout = .milliseconds(500) }
        try await luda.node.add(peer: "yoghurt", address: yoghurt.address)
        let summary = try await within(10, on: luda.node.eventLoop) { try await luda.node.converse(with: "yoghurt", starting: luda.hello) }
        XCTAssertEqual(summary.transcript, exampleTranscript)
        let observed4 = await luda.node.peers.map(\.peerID)
        XCTAssertEqual(observed4, [nil], "nothing proven in the clear")

        let outcome = await Result { try await within(10, on: luda.node.eventLoop) { try await luda.node.add(peer: "secure", address: secure.address) } }
        XCTAssertThrowsError(try outcome.get(), "a plaintext hello is not Noise")
        for node in [luda, yoghurt, secure] { await node.node.shutdown() }
    }

    // MARK: Forged identities

    func testAHelloNamingAnotherNodesPeerIDIsRefusedAndPlantsNoRoute() async throws {
        let victim = try await ExampleNode.start("victim", .persistent, .native, group: group)
        let honest = NodeIdentity()
        let forger = try await ScriptedPeer.nativeNode(
            "honest", listeningAt: try SocketAddress(ipAddress: "127.0.0.1", port: 4000), connectingTo: victim.address,
            claimedPeer: honest.peerID, group: group)
        try await forger.ended.wait("the victim to close the forger's connection", within: 10, on: victim.node.eventLoop) { !$0.isEmpty }
        let observed5 = await victim.node.peers
        XCTAssertEqual(observed5, [], "no route planted")
        let observed6 = await victim.node.statistics.peersRefused
        XCTAssertEqual(observed6, 1)
        await forger.close()
        await victim.node.shutdown()
    }

    func testAPinnedPeerIDThatAnotherKeyAnswersIsRefusedWithAnErrorNamingBothIDs() async throws {
        for connectionType in [ConnectionType.persistent, .short] {
            let node = try await ExampleNode.start("node", connectionType, .native, group: group)
            let impostor = try await ExampleNode.start("impostor", connectionType, .native, group: group)
            let expected = NodeIdentity().peerID
            let outcome = await Result {
                try await within(10, on: node.node.eventLoop) {
                    try await node.node.add(peer: "friend", address: impostor.address, expecting: expected)
                    return try await node.node.dispatch(to: "friend", Envelope(name: "node", operation: "noticereq"))
                }
            }
            assertFailure(outcome, is: .unexpectedPeer(expected: expected, actual: impostor.node.peerID), "\(connectionType)")
            if case .failure(let error) = outcome {
                XCTAssertTrue("\(error)".contains(expected.description) && "\(error)".contains(impostor.node.peerID.description), "\(error)")
            }
            XCTAssertEqual(impostor.handledOperations, [], "\(connectionType): nothing reached the impostor's protocol")
            let observed7 = await node.node.statistics.peersRefused
            XCTAssertGreaterThanOrEqual(observed7, 1, "\(connectionType)")
            await node.node.shutdown()
            await impostor.node.shutdown()
        }
    }

    // MARK: Replacement

    func testAReplacementFromAnotherKeyIsRefusedAndTheOriginalRouteStays() async throws {
        let node = try await ExampleNode.start("node", .persistent, .native, group: group)
        let peer = try await ExampleNode.start("peer", .persistent, .native, group: group)
        try await peer.node.add(peer: "node", address: node.address)
        try await node.connections.wait("the peer's connection", on: node.node.eventLoop) { events in
            events.contains { if case .connectionIdentified = $0 { true } else { false } }
        }
        // Claims the peer's listening address with a newer dial generation: the rule that lets a
        // peer replace its own connection, tried with another key.
        let usurper = try await ScriptedPeer.nativeNode(
            "peer", listeningAt: peer.address, connectingTo: node.address, generation: 1_000, group: group)
        try await usurper.ended.wait("the node to close the usurper", within: 10, on: node.node.eventLoop) { !$0.isEmpty }

        let routes = await node.node.peers
        XCTAssertEqual(routes.map(\.peerID), [peer.node.peerID], "the route is still the peer's")
        XCTAssertEqual(routes.map(\.isConnected), [true])
        // The usurper's claim makes the node dial the address to check it (its binding rested on
        // the peer's own claim): that dial reaches the real peer and is resolved like any second
        // connection between two peers, so one connection remains, soon.
        var observed8 = await node.node.openConnectionCount
        for _ in 0..<500 where observed8 != 1 {
            try await node.node.eventLoop.scheduleTask(in: .milliseconds(10)) {}.futureResult.get()
            observed8 = await node.node.openConnectionCount
        }
        XCTAssertEqual(observed8, 1, "the original connection was not drained")
        let reply = try await within(10, on: node.node.eventLoop) {
            try await node.node.dispatch(to: peer.address, Envelope(name: "node", operation: "noticereq"))
        }
        XCTAssertEqual(reply?.operation, "noticeresp", "and it still carries the route")
        let observed9 = await node.node.statistics.peersRefused
        XCTAssertEqual(observed9, 1)
        await usurper.close()
        await node.node.shutdown()
        await peer.node.shutdown()
    }

    // MARK: Policies

    func testADenylistedPeerIsRefusedRightAfterTheHandshakeAndCounted() async throws {
        let banned = NodeIdentity()
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) { $0.peerPolicy = PeerPolicy(denylist: [banned.peerID]) }
        let peer = try await ExampleNode.start("banned", .persistent, .native, group: group) { $0.identity = banned }
        let outcome = await Result { try await within(10, on: peer.node.eventLoop) { try await peer.node.add(peer: "node", address: node.address) } }
        XCTAssertThrowsError(try outcome.get())
        let observed10 = await node.node.peers
        XCTAssertEqual(observed10, [])
        let observed11 = await node.node.statistics.peersRefused
        XCTAssertEqual(observed11, 1)

        // And the node does not dial it either.
        let dialed = await Result { try await within(10, on: node.node.eventLoop) { try await node.node.add(peer: "banned", address: peer.address) } }
        assertFailure(dialed, is: .peerRefused(banned.peerID, .denylisted))
        await node.node.shutdown()
        await peer.node.shutdown()
    }

    func testAClosedNodeAdmitsOnlyAllowlistedPeers() async throws {
        let friend = NodeIdentity()
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.peerPolicy = PeerPolicy(mode: .closed, allowlist: [friend.peerID])
        }
        let allowed = try await ExampleNode.start("friend", .persistent, .native, group: group) { $0.identity = friend }
        let stranger = try await ExampleNode.start("stranger", .persistent, .native, group: group)
        try await within(10, on: allowed.node.eventLoop) { try await allowed.node.add(peer: "node", address: node.address) }
        let refused = await Result { try await within(10, on: stranger.node.eventLoop) { try await stranger.node.add(peer: "node", address: node.address) } }
        XCTAssertThrowsError(try refused.get())
        let observed12 = await node.node.peers.map(\.peerID)
        XCTAssertEqual(observed12, [friend.peerID])
        let observed13 = await node.node.statistics.peersRefused
        XCTAssertEqual(observed13, 1)
        for peer in [node, allowed, stranger] { await peer.node.shutdown() }
    }

    func testTheCallbackDecidesOnPeersOnNeitherList() async throws {
        let welcome = NodeIdentity()
        let asked = Recorder<PeerID>()
        let node = try await ExampleNode.start("node", .short, .native, group: group) {
            $0.peerPolicy = PeerPolicy(decide: { peer, _ in
                asked.append(peer)
                return peer == welcome.peerID
            })
        }
        let guest = try await ExampleNode.start("guest", .short, .native, group: group) { $0.identity = welcome }
        let other = try await ExampleNode.start("other", .short, .native, group: group)
        for sender in [guest, other] { try await sender.node.add(peer: "node", address: node.address) }
        let welcomed = try await guest.node.dispatch(to: "node", Envelope(name: "guest", operation: "noticereq"))
        XCTAssertEqual(welcomed?.operation, "noticeresp")
        let turnedAway = await Result { try await other.node.dispatch(to: "node", Envelope(name: "other", operation: "noticereq")) }
        XCTAssertThrowsError(try turnedAway.get())
        XCTAssertEqual(Set(asked.all), [welcome.peerID, other.node.peerID])
        XCTAssertEqual(node.handledOperations, ["noticereq"], "only the welcome guest reached the protocol")
        let observed14 = await node.node.statistics.peersRefused
        XCTAssertEqual(observed14, 1)
        for peer in [node, guest, other] { await peer.node.shutdown() }
    }
}

extension Result where Failure == any Error {
    /// The outcome of `body`, as a value.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
