import MetricsTestKit
import Pheromones
import PheromonesNoise
@testable import PheromonesP2P
import XCTest

/// Peer exchange over real loopback sockets: a network bootstrapped from one seed, hostile answers
/// and requests, and a node without peer exchange that never dials what it is told.
final class PeerExchangeTests: GroupTestCase {
    private func settings(target: Int) -> PeerExchange {
        var settings = PeerExchange(targetPeerCount: target, interval: .milliseconds(100))
        settings.maximumDialsPerSecond = 20
        return settings
    }

    private func startNode(
        _ name: String, peerExchange: PeerExchange?, configure: (inout Node.Configuration) -> Void = { _ in }
    ) async throws -> (node: Node, address: SocketAddress) {
        let (node, address, _) = try await startAnswerTableNode(name, .persistent, .native, group: group) { configuration in
            configuration.peerExchange = peerExchange
            configure(&configuration)
        }
        return (node, address)
    }

    private static func connectedPeers(of node: Node) async -> Int {
        await node.peers.filter(\.isConnected).count
    }

    /// An answer with one entry per address (no peer ids), as a plaintext node sends it.
    private func answer(_ addresses: [SocketAddress]) -> Envelope {
        PeerExchangeWire.answer(addresses.map { PeerExchangeEntry(address: $0, peerID: nil) }, from: "scripted")
    }

    // MARK: Bootstrapping

    func testTenNodesThatKnowOnlyTheSeedEachReachTheirTargetOfFourPeers() async throws {
        let target = 4
        let seed = try await startNode("seed", peerExchange: settings(target: target))
        var nodes: [Node] = []
        for index in 0..<10 {
            let (node, _) = try await startNode("node\(index)", peerExchange: settings(target: target))
            try await node.add(peer: "seed", address: seed.address)
            nodes.append(node)
        }
        for node in nodes {
            try await eventually("\(node.name) to reach \(target) connected peers", within: 20, on: node.eventLoop) {
                await Self.connectedPeers(of: node) >= target
            }
        }
        var learned = 0
        for node in nodes {
            let statistics = await node.statistics
            XCTAssertGreaterThan(statistics.peerExchangeRequestsSent, 0, node.name)
            learned += statistics.peerExchangeDialsStarted
            // Every route is a distinct peer: peer exchange never dials a route twice.
            let peers = await node.peers
            XCTAssertEqual(Set(peers.compactMap(\.peerID)).count, peers.count, node.name)
        }
        XCTAssertGreaterThan(learned, 0, "the nodes dialled addresses they learned")
        let seedStatistics = await seed.node.statistics
        XCTAssertGreaterThan(seedStatistics.peerExchangeAnswersSent, 0)
        for node in nodes + [seed.node] { await node.shutdown() }
    }

    // MARK: Hostile peers

    func testAnAnswerWithTenThousandEntriesClosesItsConnectionAndTheNodeGoesOn() async throws {
        let (node, address) = try await startNode("target", peerExchange: settings(target: 4)) { $0.security = .insecure }
        let hostile = try await ScriptedPeer.nativeNode(
            "hostile", listeningAt: .loopbackV4(port: 41_000), connectingTo: address, security: .insecure, group: group)
        _ = try await hostile.first("the node's request") { $0.operation == PeerExchangeWire.requestOperation }
        let flood = (0..<10_000).map { SocketAddress.loopbackV4(port: 10_000 + $0 % 50_000) }
        try await hostile.send(answer(flood))
        try await hostile.ended.wait("the node to close the flooding connection", on: node.eventLoop) { !$0.isEmpty }

        try await checkNodeStillWorks(node, at: address)
        let statistics = await node.statistics
        XCTAssertEqual(statistics.peerExchangeAddressesLearned, 0)
        XCTAssertEqual(statistics.peerExchangeDialsStarted, 0)
        await node.shutdown()
    }

    func testAGarbageAnswerClosesItsConnection() async throws {
        let (node, address) = try await startNode("target", peerExchange: settings(target: 4)) { $0.security = .insecure }
        let hostile = try await ScriptedPeer.nativeNode(
            "hostile", listeningAt: .loopbackV4(port: 41_001), connectingTo: address, security: .insecure, group: group)
        _ = try await hostile.first("the node's request") { $0.operation == PeerExchangeWire.requestOperation }
        // An entry whose address length runs past the end.
        var data = ByteBuffer()
        data.writeInteger(UInt8(0))
        data.writeInteger(UInt8(200))
        data.writeString("127.0.0.1:1")
        try await hostile.send(Envelope(name: "hostile", operation: PeerExchangeWire.answerOperation, data: data))
        try await hostile.ended.wait("the node to close the connection", on: node.eventLoop) { !$0.isEmpty }
        try await checkNodeStillWorks(node, at: address)
        await node.shutdown()
    }

    func testUnsolicitedAnswersAreIgnoredAndNothingInThemIsDialled() async throws {
        let (other, otherAddress) = try await startNode("other", peerExchange: nil) { $0.security = .insecure }
        // No round within the test: only the first peer is asked, once, when it connects.
        var slow = settings(target: 4)
        slow.interval = .seconds(30)
        let (node, address) = try await startNode("target", peerExchange: slow) { $0.security = .insecure }
        let first = try await ScriptedPeer.nativeNode(
            "first", listeningAt: .loopbackV4(port: 41_002), connectingTo: address, security: .insecure, group: group)
        _ = try await first.first("the node's request") { $0.operation == PeerExchangeWire.requestOperation }
        let intruder = try await ScriptedPeer.nativeNode(
            "intruder", listeningAt: .loopbackV4(port: 41_003), connectingTo: address, security: .insecure, group: group)
        // The first peer's one answer counts (it is empty); what follows it does not.
        try await first.send(answer([]))
        for _ in 0..<5 { try await first.send(answer([otherAddress])) }
        try await first.sync(2)
        // The intruder was asked nothing.
        for _ in 0..<5 { try await intruder.send(answer([otherAddress])) }
        try await intruder.sync(2)
        let statistics = await node.statistics
        XCTAssertEqual(statistics.peerExchangeIgnored, 10)
        XCTAssertEqual(statistics.peerExchangeAddressesLearned, 0)
        XCTAssertEqual(statistics.peerExchangeDialsStarted, 0)
        let announcedIsRoute = await node.peers.contains { $0.address == otherAddress }
        XCTAssertFalse(announcedIsRoute)
        let otherPeersUp = await other.statistics.peersUp
        XCTAssertEqual(otherPeersUp, 0, "nothing dialled the announced node")
        XCTAssertTrue(first.ended.all.isEmpty, "an ignored answer does not close the connection")
        XCTAssertTrue(intruder.ended.all.isEmpty)
        await node.shutdown()
        await other.shutdown()
    }

    func testRepeatedRequestsAreAnsweredOncePerHalfInterval() async throws {
        var slow = settings(target: 4)
        slow.interval = .seconds(30)
        let metrics = TestMetrics()
        let (node, address) = try await startNode("target", peerExchange: slow) { configuration in
            configuration.security = .insecure
            configuration.metricsFactory = metrics
        }
        let asker = try await ScriptedPeer.nativeNode(
            "asker", listeningAt: .loopbackV4(port: 41_004), connectingTo: address, security: .insecure, group: group)
        for _ in 0..<20 { try await asker.send(PeerExchangeWire.request(from: "asker")) }
        try await asker.sync(1)
        let answers = asker.received.all.filter { $0.operation == PeerExchangeWire.answerOperation }
        XCTAssertEqual(answers.count, 1)
        let statistics = await node.statistics
        XCTAssertEqual(statistics.peerExchangeIgnored, 19)
        XCTAssertEqual(statistics.peerExchangeAnswersSent, 1)
        XCTAssertEqual(statistics.peerExchangeRequestsSent, 1, "the node asked its first peer")
        // The same figures reach the metrics backend.
        let dimensions = [("node", "target")]
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_peer_exchange_ignored_total", dimensions).totalValue, 19)
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_peer_exchange_answers_sent_total", dimensions).totalValue, 1)
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_peer_exchange_requests_sent_total", dimensions).totalValue, 1)
        await node.shutdown()
    }

    func testADialOfALearnedAddressMustProveTheAnnouncedPeerID() async throws {
        let (other, otherAddress) = try await startNode("other", peerExchange: nil)
        let (node, address) = try await startNode("target", peerExchange: settings(target: 4))
        let teller = try await ScriptedPeer.nativeNode("teller", listeningAt: .loopbackV4(port: 41_006), connectingTo: address, group: group)
        _ = try await teller.first("the node's request") { $0.operation == PeerExchangeWire.requestOperation }
        let impostorID = NodeIdentity().peerID
        try await teller.send(PeerExchangeWire.answer([PeerExchangeEntry(address: otherAddress, peerID: impostorID)], from: "teller"))
        try await eventually("the dial that proves another id to be refused", on: node.eventLoop) {
            await node.statistics.peersRefused >= 1
        }
        let stillRouted = await node.peers.contains { $0.address == otherAddress }
        XCTAssertFalse(stillRouted, "a dial that fails is forgotten")

        // Asked again in a later round, the teller names the right id: the dial succeeds.
        try await teller.wait("a second request") { $0.filter { $0.operation == PeerExchangeWire.requestOperation }.count >= 2 }
        try await teller.send(PeerExchangeWire.answer([PeerExchangeEntry(address: otherAddress, peerID: other.peerID)], from: "teller"))
        try await eventually("the announced peer to be connected", on: node.eventLoop) {
            await node.peers.contains { $0.address == otherAddress && $0.isConnected && $0.peerID == other.peerID }
        }
        let route = await node.peers.first { $0.address == otherAddress }
        XCTAssertEqual(route?.name, "other", "a learned route takes the name its peer says")
        await node.shutdown()
        await other.shutdown()
    }

    // MARK: Switched off

    func testANodeWithoutPeerExchangeNeitherAnswersNorDialsWhatItIsTold() async throws {
        let (other, otherAddress) = try await startNode("other", peerExchange: nil)
        let (node, address) = try await startNode("target", peerExchange: nil)
        let peer = try await ScriptedPeer.nativeNode("teller", listeningAt: .loopbackV4(port: 41_005), connectingTo: address, group: group)
        try await peer.send(PeerExchangeWire.request(from: "teller"))
        try await peer.send(answer([otherAddress]))
        try await peer.sync(1)
        XCTAssertFalse(peer.received.all.contains { PeerExchangeWire.isPeerExchange($0) }, "no request, no answer")
        let announcedIsRoute = await node.peers.contains { $0.address == otherAddress }
        XCTAssertFalse(announcedIsRoute)
        let otherPeersUp = await other.statistics.peersUp
        XCTAssertEqual(otherPeersUp, 0, "nothing dialled the announced node")
        let statistics = await node.statistics
        XCTAssertEqual(statistics.peerExchangeDialsStarted + statistics.peerExchangeRequestsSent + statistics.peerExchangeIgnored, 0)
        XCTAssertTrue(peer.ended.all.isEmpty)
        await node.shutdown()
        await other.shutdown()
    }

    // MARK: Helpers

    /// A fresh peer still gets its messages through to `node`'s protocol.
    private func checkNodeStillWorks(_ node: Node, at address: SocketAddress) async throws {
        let security = node.configuration.security
        let peer = try await ScriptedPeer.nativeNode(
            "honest", listeningAt: .loopbackV4(port: 41_100), connectingTo: address, security: security, group: group)
        try await peer.sync(7)
        XCTAssertTrue(peer.ended.all.isEmpty)
        await peer.close()
    }
}
