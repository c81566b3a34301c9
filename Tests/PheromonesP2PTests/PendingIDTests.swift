import Pheromones
import PheromonesP2P
import XCTest

/// A reply is matched to the message it answers by the id that message was sent under, and a peer
/// chooses ids too: its own messages' ids, and the ids of the broadcasts it starts, which every node
/// forwards unchanged. Whatever ids a peer sends, it cannot complete, displace or capture a message
/// another connection awaits an answer to, nor one its own connection does; and every pending
/// dispatch is completed, never left waiting because its entry was overwritten.
final class PendingIDTests: GroupTestCase {
    func testAnIDForgedOnAnotherConnectionNeitherCompletesNorDisplacesAPendingDispatch() async throws {
        // A reply timeout well inside the test's wait: the dispatch must end with bob's reply, not
        // with a timeout, and must end (a dispatch whose entry was overwritten never did).
        let hub = try await Hub.start(peers: ["bob", "alice", "carol"], replyTimeout: .seconds(2), group: group)
        let (bob, alice, carol) = (hub.peers[0], hub.peers[1], hub.peers[2])
        let dispatch = Task { try await hub.node.dispatch(to: bob.address, Envelope(name: "hub", operation: "ping")) }
        let id = try await bob.first("the dispatch at bob") { $0.operation == "ping" }.messageID

        // Alice names bob's pending id: in a reply, in a "no reply follows" marker, and as the id of
        // a broadcast she starts (which the hub forwards to its other peers, keeping the id).
        try await alice.send(Envelope(name: "alice", operation: "pong", messageID: 11, correlationID: id))
        try await alice.send(Envelope(name: "alice", operation: "\u{0}noreply", correlationID: id))
        try await alice.send(Envelope(name: "alice", operation: "flood", messageID: id, hopLimit: 3))
        try await alice.sync(12)
        _ = try await carol.first("the broadcast at carol") { $0.operation == "flood" && $0.messageID == id }

        try await bob.send(Envelope(name: "bob", operation: "pong", messageID: 21, correlationID: id))
        let reply = try await within(5, on: hub.node.eventLoop, "bob's reply to complete the dispatch") { try await dispatch.value }
        XCTAssertEqual(reply?.name, "bob")
        XCTAssertEqual(reply?.operation, "pong")
        try await bob.sync(22)
        XCTAssertFalse(bob.received.all.contains { $0.hopLimit > 0 },
                       "the broadcast was not forwarded on the connection that awaits an answer under its id")
        await hub.shutdown()
    }

    func testAnIDAPeerPlantsBeforeTheNodeAllocatesItCannotCaptureTheAnswer() async throws {
        let hub = try await Hub.start(peers: ["bob", "alice"], group: group)
        let (bob, alice) = (hub.peers[0], hub.peers[1])
        // Two dispatches in a row show the hub's ids: the generator is predictable, as the test
        // checks before relying on it.
        var ids: [UInt64] = []
        for round in 0..<2 {
            let dispatch = Task { try await hub.node.dispatch(to: bob.address, Envelope(name: "hub", operation: "ping\(round)")) }
            let request = try await bob.first("dispatch \(round) at bob") { $0.operation == "ping\(round)" }
            ids.append(request.messageID)
            try await bob.send(Envelope(name: "bob", operation: "pong\(round)", messageID: 21 + UInt64(round), correlationID: request.messageID))
            let reply = try await within(5, on: hub.node.eventLoop, "dispatch \(round)") { try await dispatch.value }
            XCTAssertEqual(reply?.operation, "pong\(round)")
        }
        XCTAssertEqual(NodeIDSequence.successor(of: ids[0]), ids[1], "the test predicts the node's next id")
        try await bob.sync(23)

        // Alice plants the hub's next id as the id of a broadcast, which the hub forwards to bob:
        // bob's connection now awaits an answer under it.
        let planted = NodeIDSequence.successor(of: ids[1])
        try await alice.send(Envelope(name: "alice", operation: "flood", messageID: planted, hopLimit: 3))
        try await alice.sync(12)
        _ = try await bob.first("the planted broadcast at bob") { $0.messageID == planted && $0.hopLimit > 0 }

        let dispatch = Task { try await hub.node.dispatch(to: bob.address, Envelope(name: "hub", operation: "ping2")) }
        let request = try await bob.first("dispatch 2 at bob") { $0.operation == "ping2" }
        XCTAssertNotEqual(request.messageID, planted, "the hub does not send under an id its connection already awaits an answer under")
        // Bob answers the broadcast first (nothing), then the dispatch.
        try await bob.send(Envelope(name: "bob", operation: "\u{0}noreply", correlationID: planted))
        try await bob.send(Envelope(name: "bob", operation: "pong2", messageID: 24, correlationID: request.messageID))
        let reply = try await within(5, on: hub.node.eventLoop, "dispatch 2") { try await dispatch.value }
        XCTAssertEqual(reply?.operation, "pong2", "the answer to the broadcast did not complete the dispatch")
        await hub.shutdown()
    }

    func testAPeerReusingAPendingIDAndRepeatingItsOwnIDsIsAnsweredAsUsualAndTheDispatchGetsItsReply() async throws {
        let hub = try await Hub.start(peers: ["bob", "alice"], group: group)
        let (bob, alice) = (hub.peers[0], hub.peers[1])
        let dispatch = Task { try await hub.node.dispatch(to: bob.address, Envelope(name: "hub", operation: "ping")) }
        let id = try await bob.first("the dispatch at bob") { $0.operation == "ping" }.messageID

        // Bob sends its own messages under the id of the hub's pending dispatch, twice, and a
        // broadcast under it, twice (the second is a repeat), and a broadcast with no id at all.
        try await bob.send(Envelope(name: "bob", operation: "request", messageID: id))
        try await bob.send(Envelope(name: "bob", operation: "request", messageID: id))
        try await bob.send(Envelope(name: "bob", operation: "flood", messageID: id, hopLimit: 3))
        try await bob.send(Envelope(name: "bob", operation: "flood", messageID: id, hopLimit: 3))
        try await bob.send(Envelope(name: "bob", operation: "anonymous flood", hopLimit: 3))
        try await bob.sync(31)
        XCTAssertEqual(bob.received.all.filter { $0.operation == "\u{0}noreply" && $0.correlationID == id }.count, 4,
                       "each of bob's messages under the id was answered, once")

        try await bob.send(Envelope(name: "bob", operation: "pong", messageID: 32, correlationID: id))
        let reply = try await within(5, on: hub.node.eventLoop, "bob's reply to complete the dispatch") { try await dispatch.value }
        XCTAssertEqual(reply?.operation, "pong")

        try await alice.sync(41)
        let forwarded = alice.received.all.filter { $0.hopLimit > 0 }
        XCTAssertEqual(forwarded.map(\.operation), ["flood"], "the broadcast went on once; the one without an id did not")
        XCTAssertEqual(hub.seen.all.filter { $0 != "sync" }, ["request", "request", "flood", "anonymous flood", "pong"])
        await hub.shutdown()
    }
}

/// A node whose protocol answers nothing, with scripted native-wire peers connected to it, each
/// identified as a route by its hello.
private struct Hub {
    struct Peer {
        let scripted: ScriptedPeer
        /// The listening address the peer claims (nothing listens there; the hub never dials it).
        let address: SocketAddress

        var received: Recorder<Envelope> { scripted.received }
        func send(_ envelope: Envelope) async throws { try await scripted.send(envelope) }
        func sync(_ messageID: UInt64) async throws { try await scripted.sync(messageID) }
        func first(_ what: String, where matches: @escaping @Sendable (Envelope) -> Bool) async throws -> Envelope {
            try await scripted.first(what, where: matches)
        }
    }

    let node: Node
    let seen: Recorder<String>
    let peers: [Peer]

    static func start(
        peers names: [String], replyTimeout: TimeAmount = .seconds(30), group: MultiThreadedEventLoopGroup
    ) async throws -> Hub {
        let events = Recorder<NodeEvent>()
        let (node, address, seen) = try await startAnswerTableNode("hub", .persistent, .native, group: group) {
            $0.replyTimeout = replyTimeout
            $0.observer = { events.append($0) }
        }
        var peers: [Peer] = []
        for (index, name) in names.enumerated() {
            let claimed = SocketAddress.loopbackV4(port: 1 + index)
            let scripted = try await ScriptedPeer.nativeNode(name, listeningAt: claimed, connectingTo: address, group: group)
            peers.append(Peer(scripted: scripted, address: claimed))
        }
        try await events.wait("the hub to identify its peers", on: node.eventLoop) { events in
            events.filter { if case .connectionIdentified = $0 { return true } else { return false } }.count >= names.count
        }
        return Hub(node: node, seen: seen, peers: peers)
    }

    func shutdown() async {
        for peer in peers { await peer.scripted.close() }
        await node.shutdown()
    }
}

/// The node's id generator (SplitMix64) run backwards: from one id, the state that produced it,
/// and so the id after it.
enum NodeIDSequence {
    private static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15
    private static let first: UInt64 = 0xBF58_476D_1CE4_E5B9
    private static let second: UInt64 = 0x94D0_49BB_1331_11EB

    static func successor(of id: UInt64) -> UInt64 {
        mix(unmix(id) &+ increment)
    }

    private static func mix(_ state: UInt64) -> UInt64 {
        var z = state
        z = (z ^ (z >> 30)) &* first
        z = (z ^ (z >> 27)) &* second
        return z ^ (z >> 31)
    }

    private static func unmix(_ id: UInt64) -> UInt64 {
        var z = undoShiftXor(id, 31)
        z = undoShiftXor(z &* inverse(second), 27)
        return undoShiftXor(z &* inverse(first), 30)
    }

    /// The x for which `x ^ (x >> shift)` is `value`.
    private static func undoShiftXor(_ value: UInt64, _ shift: UInt64) -> UInt64 {
        var x = value
        for _ in 0..<(64 / shift + 1) { x = value ^ (x >> shift) }
        return x
    }

    /// The multiplicative inverse of an odd number modulo 2^64 (Newton's iteration).
    private static func inverse(_ odd: UInt64) -> UInt64 {
        var x = odd
        for _ in 0..<6 { x = x &* (2 &- odd &* x) }
        return x
    }
}
