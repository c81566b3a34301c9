import Pheromones
import PheromonesP2P
import XCTest

/// The router's own messages (`\0hello`, `\0goaway`, `\0noreply`) exist only on the native wire,
/// and only the router sends them.
///
/// On the JSON wire, which carries none, an operation that starts with U+0000 is an operation like
/// any other: it reaches the protocol, is answered as the protocol answers it, and an answer of
/// that name is sent and received as it is, in both routers and in both directions. On the native
/// wire a protocol cannot answer with one.
final class ControlOperationTests: GroupTestCase {
    private static let lookalikes = ["\u{0}goaway", "\u{0}hello", "\u{0}noreply"]

    func testAPersistentJSONPeerSendingControlLikeOperationsIsAnsweredAndKeepsItsConnection() async throws {
        let yoghurt = try await ExampleNode.start("yoghurt", .persistent, .json, group: group)
        let peer = try await ScriptedPeer.connect(to: yoghurt.address, wire: .json, group: group)
        for operation in Self.lookalikes + ["getreq"] {
            try await peer.send(Envelope(name: "gopher", operation: operation))
        }
        try await peer.wait("an answer to each of the four messages") { $0.count >= 4 }
        XCTAssertEqual(peer.received.all.map(\.operation), ["unknownop", "unknownop", "unknownop", "getresp"])
        XCTAssertEqual(yoghurt.handledOperations, Self.lookalikes + ["getreq"], "the protocol saw them as ordinary operations")
        XCTAssertTrue(peer.ended.all.isEmpty, "the node did not close or drain the connection")
        let open = await yoghurt.node.openConnectionCount
        XCTAssertEqual(open, 1)
        await peer.close()
        await yoghurt.node.shutdown()
    }

    func testAShortJSONPeerSendingControlLikeOperationsIsAnsweredLikeAnyOtherRequest() async throws {
        let yoghurt = try await ExampleNode.start("yoghurt", .short, .json, group: group)
        for (operation, answer) in zip(Self.lookalikes + ["getreq"], ["unknownop", "unknownop", "unknownop", "getresp"]) {
            let peer = try await ScriptedPeer.connect(to: yoghurt.address, wire: .json, group: group)
            try await peer.send(Envelope(name: "gopher", operation: operation))
            try await peer.wait("the answer to \(operation.debugDescription)") { !$0.isEmpty }
            XCTAssertEqual(peer.received.all.map(\.operation), [answer], operation.debugDescription)
            await peer.close()
        }
        XCTAssertEqual(yoghurt.handledOperations, Self.lookalikes + ["getreq"])
        await yoghurt.node.shutdown()
    }

    func testShortJSONNodesSendAndReceiveAnswersNamedLikeControlMessages() async throws {
        let answers = ["getreq": "\u{0}noreply", "fetchreq": "\u{0}goaway", "noticereq": "\u{0}hello"]
        let server = try await startAnswerTableNode("server", .short, .json, answers: answers, group: group)
        let client = try await startAnswerTableNode("client", .short, .json, group: group)
        try await client.node.add(peer: "server", address: server.address)
        for (request, answer) in answers.sorted(by: { $0.key < $1.key }) {
            let reply = try await within(10, on: client.node.eventLoop, "the answer to \(request)") {
                try await client.node.dispatch(to: "server", Envelope(name: "client", operation: request))
            }
            XCTAssertEqual(reply?.operation, answer, "the answer to \(request) arrived as it was sent")
        }
        await client.node.shutdown()
        await server.node.shutdown()
    }

    func testPersistentJSONNodesHandAnswersNamedLikeControlMessagesToTheProtocolAndKeepTheConnection() async throws {
        let answers = ["getreq": "\u{0}noreply", "fetchreq": "\u{0}goaway", "noticereq": "\u{0}hello"]
        let server = try await startAnswerTableNode("server", .persistent, .json, answers: answers, group: group)
        let client = try await startAnswerTableNode("client", .persistent, .json, group: group)
        try await client.node.add(peer: "server", address: server.address)
        for request in ["getreq", "fetchreq", "noticereq"] {
            _ = try await client.node.dispatch(to: "server", Envelope(name: "client", operation: request))
        }
        try await client.seen.wait("the three answers at the client's protocol", on: client.node.eventLoop) { $0.count >= 3 }
        XCTAssertEqual(client.seen.all, ["\u{0}noreply", "\u{0}goaway", "\u{0}hello"])

        // The connection was neither drained nor closed: the next message goes out on it.
        _ = try await within(10, on: client.node.eventLoop, "a dispatch after the answers") {
            try await client.node.dispatch(to: "server", Envelope(name: "client", operation: "ping"))
        }
        try await server.seen.wait("the ping at the server", on: server.node.eventLoop) { $0.contains("ping") }
        let peers = await client.node.peers
        XCTAssertEqual(peers.map(\.isConnected), [true])
        let open = await client.node.openConnectionCount
        XCTAssertEqual(open, 1)
        await client.node.shutdown()
        await server.node.shutdown()
    }

    func testAProtocolOnTheNativeWireCannotAnswerWithTheRoutersMessages() async throws {
        for connectionType in ConnectionType.allCases {
            let answers = ["getreq": "\u{0}goaway", "fetchreq": "\u{0}hello", "noticereq": "\u{0}noreply"]
            let server = try await startAnswerTableNode("server", connectionType, .native, answers: answers, group: group)
            let client = try await startAnswerTableNode("client", connectionType, .native, group: group) { $0.replyTimeout = .seconds(30) }
            try await client.node.add(peer: "server", address: server.address)
            for request in ["getreq", "fetchreq", "noticereq", "ping"] {
                let reply = try await within(5, on: client.node.eventLoop, "the answer to \(request), \(connectionType)") {
                    try await client.node.dispatch(to: "server", Envelope(name: "client", operation: request))
                }
                XCTAssertNil(reply, "\(request), \(connectionType): answered with nothing, not with a control message")
            }
            XCTAssertEqual(server.seen.all, ["getreq", "fetchreq", "noticereq", "ping"], "\(connectionType)")
            XCTAssertEqual(client.seen.all, [], "\(connectionType): nothing reached the client's protocol")
            if connectionType == .persistent {
                let peers = await client.node.peers
                XCTAssertEqual(peers.map(\.isConnected), [true], "the connection was not drained")
            }
            await client.node.shutdown()
            await server.node.shutdown()
        }
    }
}
