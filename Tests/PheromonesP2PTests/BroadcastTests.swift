import Pheromones
import PheromonesP2P
import XCTest

/// Broadcasts flood the mesh without storms (the original's README warns of them): every node's
/// protocol sees a broadcast once, repeats die at the first node that has seen them, and the hop
/// limit and the forwarding switch bound how far one goes.
final class BroadcastTests: GroupTestCase {
    func testABroadcastReachesEveryNodeOfAMeshWithCyclesExactlyOnce() async throws {
        // A ring of five with a chord: every node is reachable along several paths.
        let links = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2)]
        let nodes = try await mesh(5, links: links)
        let sent = try await nodes[0].node.broadcast(Envelope(name: "n0", operation: "gossip"), hopLimit: 8)
        XCTAssertEqual(sent, 3)
        for node in nodes.dropFirst() {
            try await node.events.wait("the gossip at \(node.name)", on: node.node.eventLoop) { Self.gossip(in: $0) >= 1 }
        }
        try await barrier(nodes, links: links)
        XCTAssertEqual(nodes.map { Self.gossip(in: $0.events.all) }, [0, 1, 1, 1, 1])
        for node in nodes { await node.node.shutdown() }
    }

    func testTheHopLimitBoundsHowFarABroadcastTravels() async throws {
        let links = [(0, 1), (1, 2), (2, 3)]
        let nodes = try await mesh(4, links: links)
        try await nodes[0].node.broadcast(Envelope(name: "n0", operation: "gossip"), hopLimit: 2)
        try await nodes[2].events.wait("the gossip two hops away", on: nodes[2].node.eventLoop) { Self.gossip(in: $0) >= 1 }
        try await barrier(nodes, links: links)
        XCTAssertEqual(nodes.map { Self.gossip(in: $0.events.all) }, [0, 1, 1, 0])
        for node in nodes { await node.node.shutdown() }
    }

    func testANodeThatDoesNotForwardStopsTheBroadcast() async throws {
        let links = [(0, 1), (1, 2)]
        let nodes = try await mesh(3, links: links) { index, configuration in
            if index == 1 { configuration.forwardsBroadcasts = false }
        }
        try await nodes[0].node.broadcast(Envelope(name: "n0", operation: "gossip"))
        try await nodes[1].events.wait("the gossip one hop away", on: nodes[1].node.eventLoop) { Self.gossip(in: $0) >= 1 }
        try await barrier(nodes, links: links)
        XCTAssertEqual(nodes.map { Self.gossip(in: $0.events.all) }, [0, 1, 0])
        for node in nodes { await node.node.shutdown() }
    }

    func testShortNodesFloodAndDropRepeatsToo() async throws {
        let links = [(0, 1), (1, 2), (2, 0)]
        let nodes = try await mesh(3, links: links, connectionType: .short)
        // Short routes are one-way: let each node know the others.
        for (a, b) in links { try await nodes[b].node.add(peer: nodes[a].name, address: nodes[a].address) }
        try await nodes[0].node.broadcast(Envelope(name: "n0", operation: "gossip"))
        for node in nodes.dropFirst() {
            try await node.events.wait("the gossip at \(node.name)", on: node.node.eventLoop) { Self.gossip(in: $0) >= 1 }
        }
        XCTAssertEqual(nodes.map { Self.gossip(in: $0.events.all) }, [0, 1, 1])
        for node in nodes { await node.node.shutdown() }
    }

    // MARK: Helpers

    /// Starts `count` nodes named n0, n1, ... and adds a route for every link (from its first node).
    private func mesh(
        _ count: Int, links: [(Int, Int)], connectionType: ConnectionType = .persistent,
        configure: @escaping (Int, inout Node.Configuration) -> Void = { _, _ in }
    ) async throws -> [ExampleNode] {
        var nodes: [ExampleNode] = []
        for index in 0..<count {
            nodes.append(try await ExampleNode.start("n\(index)", connectionType, .native, group: group) { configure(index, &$0) })
        }
        for (a, b) in links { try await nodes[a].node.add(peer: nodes[b].name, address: nodes[b].address) }
        return nodes
    }

    /// Sends one message each way along every link and waits for the answers. Connections keep
    /// order, and a node forwards a broadcast before its protocol sees it, so once these are
    /// answered every copy sent before them has arrived and been counted or dropped.
    private func barrier(_ nodes: [ExampleNode], links: [(Int, Int)]) async throws {
        for (a, b) in links {
            for (from, to) in [(nodes[a], nodes[b]), (nodes[b], nodes[a])] {
                let reply = try await within(10, on: from.node.eventLoop) {
                    try await from.node.dispatch(to: to.address, Envelope(name: from.name, operation: "noticereq"))
                }
                XCTAssertEqual(reply?.operation, "noticeresp")
            }
        }
    }

    private static func gossip(in events: [ExampleProtocol.Event]) -> Int {
        events.filter { if case .handled(_, let message, _) = $0 { return message.operation == "gossip" } else { return false } }.count
    }
}
