import Pheromones
import PheromonesP2P
import XCTest

/// The application's validator sees every message from a peer before the protocol and the mesh
/// do: what it ignores or rejects goes nowhere, and a peer that keeps sending rejects is cut off.
final class ValidationTests: GroupTestCase {
    /// Ignores `spam`, rejects `evil`, accepts the rest.
    private static let validator: @Sendable (Envelope, MessageOrigin) -> MessageVerdict = { message, _ in
        switch message.operation {
        case "spam": .ignore
        case "evil": .reject
        default: .accept
        }
    }

    func testIgnoredAndRejectedMessagesNeverReachTheProtocolAndAPeerIsClosedAtTheMaximumOfRejects() async throws {
        let events = Recorder<NodeEvent>()
        let (node, address, seen) = try await startAnswerTableNode("target", .persistent, .native, answers: ["getreq": "getresp"], group: group) {
            $0.validator = Self.validator
            $0.maximumRejectsPerPeer = 3
            $0.observer = { events.append($0) }
        }
        let peer = try await ScriptedPeer.nativeNode(
            "peer", listeningAt: try SocketAddress(ipAddress: "127.0.0.1", port: 9), connectingTo: address, group: group)

        // Ignored and rejected messages are answered with "no reply follows", and nothing else.
        for (id, operation) in [(UInt64(1), "spam"), (2, "evil"), (3, "getreq"), (4, "evil")] {
            try await peer.send(Envelope(name: "peer", operation: operation, messageID: id))
        }
        _ = try await peer.first("the answer to getreq") { $0.operation == "getresp" && $0.correlationID == 3 }
        for id: UInt64 in [1, 2, 4] {
            _ = try await peer.first("the marker for \(id)") { $0.operation == "\u{0}noreply" && $0.correlationID == id }
        }
        XCTAssertEqual(seen.all, ["getreq"], "the protocol saw only what the validator accepted")

        // The third reject closes the connection.
        try await peer.send(Envelope(name: "peer", operation: "evil", messageID: 5))
        try await peer.ended.wait("the node to close the connection", within: 10, on: node.eventLoop) { !$0.isEmpty }
        let rejects = events.all.compactMap { if case .messageRejected(_, let count) = $0 { count } else { nil } }
        XCTAssertEqual(rejects, [1, 2, 3])
        let statistics = await node.statistics
        XCTAssertEqual(statistics.rejected, 3)
        XCTAssertEqual(statistics.delivered, 1)
        await node.shutdown()
    }

    func testABroadcastTheValidatorIgnoresIsNeitherDeliveredNorForwarded() async throws {
        let origin = try await startAnswerTableNode("origin", .persistent, .native, group: group)
        let (relay, relayAddress, relaySeen) = try await startAnswerTableNode("relay", .persistent, .native, group: group) {
            $0.validator = Self.validator
        }
        let end = try await startAnswerTableNode("end", .persistent, .native, group: group)
        try await origin.node.add(peer: "relay", address: relayAddress)
        try await relay.add(peer: "end", address: end.address)

        _ = try await origin.node.broadcast(Envelope(name: "origin", operation: "spam"), hopLimit: 3)
        _ = try await origin.node.broadcast(Envelope(name: "origin", operation: "news"), hopLimit: 3)
        // Broadcasts travel each link in order: once `news` is at the end, `spam` would have been too.
        // The relay forwards a broadcast before its protocol sees it, so its own delivery is waited
        // for too (reading it as soon as the end has it raced the relay's loop).
        try await end.seen.wait("the second broadcast at the end", on: relay.eventLoop) { $0.contains("news") }
        try await relaySeen.wait("the second broadcast at the relay", on: relay.eventLoop) { $0.contains("news") }
        XCTAssertEqual(end.seen.all, ["news"])
        XCTAssertEqual(relaySeen.all, ["news"])
        for node in [origin.node, relay, end.node] { await node.shutdown() }
    }
}
