import Pheromones
import PheromonesP2P
import XCTest

/// 50 nodes in one process, on real loopback sockets (inside Noise, the default), each mode in
/// turn: every broadcast is delivered exactly once at every node but its origin. The simulation
/// tests show the same on thousands of simulated nodes; these show the modes on the real stack.
final class BroadcastModesOverSocketsTests: GroupTestCase {
    private static let nodeCount = 50

    func testFiftyFloodingNodesOverLoopbackDeliverEachBroadcastExactlyOnce() async throws {
        try await runBroadcasts(mode: .flood)
    }

    func testFiftyGossipingNodesOverLoopbackDeliverEachBroadcastExactlyOnce() async throws {
        var parameters = GossipParameters()
        // A faster heartbeat than the default second: meshes settle and gossip flows within the test's time.
        parameters.heartbeatInterval = .milliseconds(100)
        try await runBroadcasts(mode: .gossip(parameters))
    }

    private func runBroadcasts(mode: BroadcastMode) async throws {
        let deliveries = Recorder<Delivery>()
        var started: [(node: Node, address: SocketAddress)] = []
        for index in 0 ..< Self.nodeCount {
            var configuration = Node.Configuration(name: "n\(index)", logger: testLogger("p2p.n\(index)"))
            configuration.broadcast = mode
            configuration.randomSeed = UInt64(index + 1)
            let node = try Node(configuration: configuration, protocol: DeliveryRecorder(node: index, deliveries: deliveries), group: group)
            started.append((node, try await node.listen(on: .loopbackV4(port: 0))))
        }
        let nodes = started
        // A ring (connected) with chords: about four links per node.
        var links = (0 ..< Self.nodeCount).map { ($0, ($0 + 1) % Self.nodeCount) }
        links += (0 ..< Self.nodeCount).map { ($0, ($0 + 7 + $0 % 5) % Self.nodeCount) }.filter { $0.0 != $0.1 }
        for (a, b) in links {
            try await within(10, on: nodes[a].node.eventLoop, "n\(a) reaching n\(b)") {
                try await nodes[a].node.add(peer: "n\(b)", address: nodes[b].address)
            }
        }
        let origins = [0, 17, 33, 49, 8]
        for (number, origin) in origins.enumerated() {
            var data = ByteBuffer()
            data.writeInteger(UInt32(number))
            try await nodes[origin].node.broadcast(Envelope(name: "n\(origin)", operation: "news", data: data), hopLimit: 64)
        }
        let expected = origins.count * (Self.nodeCount - 1)
        try await deliveries.wait("\(expected) deliveries", within: 30, on: nodes[0].node.eventLoop) { $0.count >= expected }
        try await barrier(nodes, links: links)
        let all = deliveries.all
        XCTAssertEqual(all.count, expected, "no node delivered a broadcast twice")
        for (number, origin) in origins.enumerated() {
            let receivers = all.filter { $0.number == number }.map(\.node)
            XCTAssertEqual(Set(receivers), Set(0 ..< Self.nodeCount).subtracting([origin]), "broadcast \(number)")
            XCTAssertEqual(receivers.count, Self.nodeCount - 1)
        }
        for (node, _) in nodes { await node.shutdown() }
    }

    /// Sends one message each way along every link and waits for its answer. Connections keep
    /// order and every copy of a broadcast was written before it arrived anywhere (so before the
    /// deliveries waited for), so once these are answered every copy has arrived, and a late
    /// duplicate delivery would have been recorded.
    private func barrier(_ nodes: [(node: Node, address: SocketAddress)], links: [(Int, Int)]) async throws {
        for (a, b) in links {
            for (from, to) in [(nodes[a], nodes[b]), (nodes[b], nodes[a])] {
                _ = try await within(10, on: from.node.eventLoop, "a round trip to \(to.address)") {
                    try await from.node.dispatch(to: to.address, Envelope(name: "barrier", operation: "barrier"))
                }
            }
        }
    }
}

private struct Delivery: Sendable {
    var node: Int
    var number: UInt32
}

/// Records each broadcast its node is handed.
private final class DeliveryRecorder: PeerProtocol {
    let node: Int
    let deliveries: Recorder<Delivery>

    init(node: Int, deliveries: Recorder<Delivery>) {
        self.node = node
        self.deliveries = deliveries
    }

    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        if var data = message.data, let number = data.readInteger(as: UInt32.self) {
            deliveries.append(Delivery(node: node, number: number))
        }
        return nil
    }
}
