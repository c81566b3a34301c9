import Pheromones
import PheromonesP2P
import XCTest

/// What goes wrong: unknown and ambiguous peers, dead and slow peers, peers that die mid-way,
/// timeouts, and a node that shuts down.
final class FailureTests: GroupTestCase {
    // MARK: Unknown and ambiguous peers

    func testDispatchingToAnUnknownPeerFailsWithUnknownPeerAndLeavesTheTableUsable() async throws {
        for connectionType in ConnectionType.allCases {
            let hub = try await ExampleNode.start("hub", connectionType, .native, group: group)
            let peer = try await ExampleNode.start("peer", connectionType, .native, group: group)
            await assertThrows(P2PError.unknownPeer("nobody")) { _ = try await hub.node.dispatch(to: "nobody", hub.hello) }
            await assertThrows(P2PError.unknownPeer("\(peer.address)")) { _ = try await hub.node.dispatch(to: peer.address, hub.hello) }
            await assertThrows(P2PError.unknownPeer("nobody")) { try await hub.node.delete(peer: "nobody") }
            // The original deadlocks here (Dispatch returns holding its read lock); this table has no lock.
            try await hub.node.add(peer: "peer", address: peer.address)
            let reply = try await hub.node.dispatch(to: "peer", hub.hello)
            XCTAssertEqual(reply?.operation, "connectresp", "\(connectionType)")
            await hub.node.shutdown()
            await peer.node.shutdown()
        }
    }

    func testANameSharedByTwoPeersIsAmbiguousButEachIsReachableByItsListeningAddress() async throws {
        for connectionType in ConnectionType.allCases {
            let hub = try await ExampleNode.start("hub", connectionType, .native, group: group)
            let first = try await ExampleNode.start("twin", connectionType, .native, group: group)
            let second = try await ExampleNode.start("twin", connectionType, .native, group: group)
            try await hub.node.add(peer: "twin", address: first.address)
            try await hub.node.add(peer: "twin", address: second.address)

            let twins = await hub.node.peers(named: "twin")
            XCTAssertEqual(Set(twins.map(\.address)), [first.address, second.address], "\(connectionType)")
            await assertThrows(P2PError.ambiguousPeer(name: "twin", addresses: twins.map(\.address))) {
                _ = try await hub.node.dispatch(to: "twin", hub.hello)
            }

            let summary = try await within(10, on: hub.node.eventLoop) { try await hub.node.converse(with: second.address, starting: hub.hello) }
            XCTAssertEqual(summary.transcript, exampleTranscript)
            XCTAssertEqual(summary.peer, PeerKey(name: "twin", address: second.address))
            XCTAssertEqual(second.handledOperations, ["connectreq", "getreq", "fetchreq", "noticereq"])
            XCTAssertEqual(first.handledOperations, [])

            try await hub.node.delete(peer: first.address)
            let reply = try await hub.node.dispatch(to: "twin", hub.hello)
            XCTAssertEqual(reply?.operation, "connectresp")
            for node in [hub, first, second] { await node.node.shutdown() }
        }
    }

    func testARouteToTheNodeItselfOrToAnAddressThatIsNotIPAndPortIsRefused() async throws {
        let node = try await ExampleNode.start("self", .persistent, .native, group: group)
        await assertThrows(P2PError.wrongAddressKind("\(node.address) is this node's own listening address")) {
            try await node.node.add(peer: "self", address: node.address)
        }
        await assertThrows(P2PError.emptyAddress) { try await node.node.add(peer: "nobody", address: "") }
        do {
            try await node.node.add(peer: "host", address: "localhost:80")
            XCTFail("a host name is not an ip:port")
        } catch P2PError.wrongAddressKind {
        }
        let peers = await node.node.peers
        XCTAssertEqual(peers, [])
        await node.node.shutdown()
    }

    // MARK: Dead and slow peers

    func testDispatchAllToShortPeersReportsTheDeadAndTheSlowAndCostsOnlyTheSlowOnesTimeout() async throws {
        let hub = try await ExampleNode.start("hub", .short, .native, group: group) { $0.replyTimeout = .milliseconds(800) }
        let alive = try await ExampleNode.start("alive", .short, .native, group: group)
        let slow = try SilentListener()
        defer { slow.close() }
        let dead = try deadAddress()
        try await hub.node.add(peer: "alive", address: alive.address)
        try await hub.node.add(peer: "slow", address: slow.address)
        try await hub.node.add(peer: "dead", address: dead)

        let (results, elapsed) = try await timed {
            try await within(10, on: hub.node.eventLoop) { await hub.node.dispatchAll(hub.hello) }
        }
        XCTAssertEqual(results.count, 3)
        XCTAssertEqual(try results[PeerKey(name: "alive", address: alive.address)]?.get()?.operation, "connectresp")
        assertFailure(results[PeerKey(name: "slow", address: slow.address)], is: .readTimeout(peer: "\(slow.address)"))
        guard case .failure(P2PError.connectFailed(dead, _))? = results[PeerKey(name: "dead", address: dead)] else {
            return XCTFail("the dead peer's result is \(String(describing: results[PeerKey(name: "dead", address: dead)]))")
        }
        XCTAssertLessThan(elapsed, .milliseconds(800 + 1_500), "only the slow peer's own timeout")
        await hub.node.shutdown()
        await alive.node.shutdown()
    }

    func testDispatchAllToPersistentPeersReportsTheDeadAndTheStuckAndCostsOnlyTheStuckOnesTimeout() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.replyTimeout = .milliseconds(800) }
        let alive = try await ExampleNode.start("alive", .persistent, .native, group: group)
        let doomed = try await ExampleNode.start("doomed", .persistent, .native, group: group)
        let gate = Gate(loop: hub.node.eventLoop)
        defer { gate.open() }
        let (stuck, stuckAddress) = try await startGatedNode(
            "stuck", .persistent, .native, gating: "connectreq", gate: gate, arrivals: Recorder(), group: group)
        for peer in [alive, doomed] { try await hub.node.add(peer: peer.name, address: peer.address) }
        try await hub.node.add(peer: "stuck", address: stuckAddress)
        await doomed.node.shutdown()
        try await hub.waitForClosedConnections(1)

        let (results, elapsed) = try await timed {
            // Every route: the dead peer's is down, and only `.allRoutes` dials it.
            try await within(10, on: hub.node.eventLoop) { await hub.node.dispatchAll(hub.hello, to: .allRoutes) }
        }
        XCTAssertEqual(try results[PeerKey(name: "alive", address: alive.address)]?.get()?.operation, "connectresp")
        assertFailure(results[PeerKey(name: "stuck", address: stuckAddress)], is: .readTimeout(peer: "\(stuckAddress)"))
        guard case .failure(P2PError.connectFailed(doomed.address, _))? = results[PeerKey(name: "doomed", address: doomed.address)] else {
            return XCTFail("the dead peer's result is \(String(describing: results[PeerKey(name: "doomed", address: doomed.address)]))")
        }
        XCTAssertLessThan(elapsed, .milliseconds(800 + 1_500), "only the stuck peer's own timeout")
        gate.open()
        for node in [hub.node, alive.node, stuck] { await node.shutdown() }
    }

    // MARK: Peers that die mid-way

    func testAPeerKilledMidConversationFailsTheConversationAndADispatchPromptlyWithConnectionLost() async throws {
        for (connectionType, wire) in [(ConnectionType.persistent, WireFormat.native), (.persistent, .json), (.short, .native)] {
            let hub = try await ExampleNode.start("hub", connectionType, wire, group: group) { $0.replyTimeout = .seconds(30) }
            let gate = Gate(loop: hub.node.eventLoop)
            let arrivals = Recorder<String>()
            let (victim, victimAddress) = try await startGatedNode(
                "victim", connectionType, wire, gating: "getreq", gate: gate, arrivals: arrivals, group: group)
            try await hub.node.add(peer: "victim", address: victimAddress)

            let conversation = Task { try await hub.node.converse(with: "victim", starting: hub.hello) }
            try await arrivals.wait("the conversation to reach getreq", on: hub.node.eventLoop) { $0.contains("getreq") }
            let (outcome, elapsed) = await timed { () -> Result<ConversationSummary, any Error> in
                await victim.shutdown()
                return await conversation.result
            }
            assertFailure(outcome, is: .connectionLost(victimAddress), "\(connectionType) \(wire)")
            XCTAssertLessThan(elapsed, .seconds(5), "well before the 30 s reply timeout")
            gate.open()
            await hub.node.shutdown()
        }
    }

    func testAPendingPersistentDispatchFailsAtOnceWhenThePeersConnectionDrops() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.replyTimeout = .seconds(30) }
        let gate = Gate(loop: hub.node.eventLoop)
        defer { gate.open() }
        let arrivals = Recorder<String>()
        let (victim, victimAddress) = try await startGatedNode(
            "victim", .persistent, .native, gating: "getreq", gate: gate, arrivals: arrivals, group: group)
        try await hub.node.add(peer: "victim", address: victimAddress)
        let dispatch = Task { try await hub.node.dispatch(to: victimAddress, Envelope(name: "hub", operation: "getreq")) }
        try await arrivals.wait("the dispatch to arrive", on: hub.node.eventLoop) { $0.contains("getreq") }
        let (outcome, elapsed) = await timed { () -> Result<Envelope?, any Error> in
            await victim.shutdown()
            return await dispatch.result
        }
        assertFailure(outcome, is: .connectionLost(victimAddress))
        XCTAssertLessThan(elapsed, .seconds(5))
        let peers = await hub.node.peers
        XCTAssertEqual(peers.map(\.isConnected), [false], "the route is marked down")
        await hub.node.shutdown()
    }

    // MARK: Timeouts and shutting down

    func testAPeerThatDoesNotAnswerInTimeFailsTheDispatchWithReadTimeout() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.replyTimeout = .milliseconds(300) }
        let gate = Gate(loop: hub.node.eventLoop)
        defer { gate.open() }
        let (stuck, stuckAddress) = try await startGatedNode(
            "stuck", .persistent, .native, gating: "getreq", gate: gate, arrivals: Recorder(), group: group)
        try await hub.node.add(peer: "stuck", address: stuckAddress)
        await assertThrows(P2PError.readTimeout(peer: "\(stuckAddress)")) {
            _ = try await hub.node.dispatch(to: "stuck", Envelope(name: "hub", operation: "getreq"))
        }
        // A late answer is not handed to anyone else: the next dispatch gets its own reply.
        gate.open()
        let reply = try await hub.node.dispatch(to: "stuck", Envelope(name: "hub", operation: "fetchreq"))
        XCTAssertEqual(reply?.operation, "fetchresp")
        await hub.node.shutdown()
        await stuck.shutdown()
    }

    func testShuttingDownFailsWhatWaitsAndEverythingAfterwardsWithNodeShutDown() async throws {
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.replyTimeout = .seconds(30) }
        let gate = Gate(loop: hub.node.eventLoop)
        defer { gate.open() }
        let arrivals = Recorder<String>()
        let (peer, peerAddress) = try await startGatedNode(
            "peer", .persistent, .native, gating: "getreq", gate: gate, arrivals: arrivals, group: group)
        try await hub.node.add(peer: "peer", address: peerAddress)
        let dispatch = Task { try await hub.node.dispatch(to: "peer", Envelope(name: "hub", operation: "getreq")) }
        try await arrivals.wait("the dispatch to arrive", on: hub.node.eventLoop) { $0.contains("getreq") }
        await hub.node.shutdown()
        assertFailure(await dispatch.result, is: .nodeShutDown)
        await assertThrows(P2PError.nodeShutDown) { _ = try await hub.node.dispatch(to: "peer", hub.hello) }
        await assertThrows(P2PError.nodeShutDown) { try await hub.node.add(peer: "peer", address: peerAddress) }
        await peer.shutdown()
    }

    func testANodeWithItsOwnLoopShutsItDown() async throws {
        let node = try Node(configuration: .init(name: "solo", logger: testLogger("solo")), protocol: ExampleProtocol())
        let address = try await node.listen(on: .loopbackV4(port: 0))
        XCTAssertEqual(address.ipAddress, "127.0.0.1")
        let listening = await node.listeningAddress
        XCTAssertEqual(listening, address)
        await node.shutdown()
        await assertThrows(P2PError.nodeShutDown) { _ = try await node.listen(on: .loopbackV4(port: 0)) }
    }
}

/// Asserts that `body` throws `expected`.
func assertThrows<E: Error & Equatable>(
    _ expected: E, file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> Void
) async {
    do {
        try await body()
        XCTFail("expected \(expected), but nothing was thrown", file: file, line: line)
    } catch {
        XCTAssertEqual(error as? E, expected, "got \(error)", file: file, line: line)
    }
}

/// Asserts that `result` is a failure with `expected`.
func assertFailure<T>(
    _ result: Result<T, any Error>?, is expected: P2PError, _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard case .failure(let error)? = result else {
        return XCTFail("expected \(expected), got \(String(describing: result)) \(message)", file: file, line: line)
    }
    XCTAssertEqual(error as? P2PError, expected, "got \(error) \(message)", file: file, line: line)
}
