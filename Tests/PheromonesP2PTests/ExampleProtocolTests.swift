import Pheromones
import PheromonesP2P
import XCTest

/// The example protocol's state machine, run by a stand-alone ``ProtocolStage`` behind each wire on
/// an `EmbeddedChannel`: what it answers to every operation, to `unknownop`, to unknown operations,
/// to envelopes that do not parse and to a bad greeting, and what it reports.
final class ExampleProtocolTests: XCTestCase {
    /// The original's transitions: (operation received, operation answered or nil).
    private let transitions: [(String, String?)] = [
        ("getreq", "getresp"), ("fetchreq", "fetchresp"), ("noticereq", "noticeresp"),
        ("connectresp", "getreq"), ("getresp", "fetchreq"), ("fetchresp", "noticereq"),
        ("noticeresp", nil), ("dance", "unknownop"), ("", "unknownop"), ("unknownop", nil),
    ]

    // MARK: JSON wire

    func testOnTheJSONWireEveryOperationIsAnsweredAsTheOriginalAnswersIt() throws {
        let harness = try Harness(.json)
        for (operation, expected) in transitions {
            try harness.channel.writeInbound(goJSON(name: "luda", operation: operation))
            let answer = try harness.channel.readOutbound(as: ByteBuffer.self)
            if let expected {
                XCTAssertEqual(answer.map(utf8String), #"{"name":"yoghurt","operation":"\#(expected)","data":null}"#, operation)
            } else {
                XCTAssertNil(answer, "\(operation) is answered with nothing")
            }
        }
        XCTAssertTrue(harness.channel.isActive)
    }

    func testOnTheJSONWireAConnectRequestAddsTheGreetingsRouteAndIsAnsweredWithConnectResp() throws {
        let harness = try Harness(.json)
        let greeting = #"{"add":"127.0.0.1:12345","account":11900}"#
        try harness.channel.writeInbound(goJSON(name: "luda", operation: "connectreq", data: greeting))
        XCTAssertEqual(try harness.channel.readOutbound(as: ByteBuffer.self).map(utf8String), #"{"name":"yoghurt","operation":"connectresp","data":null}"#)
        XCTAssertEqual(harness.routes.all.map(\.name), ["luda"])
        XCTAssertEqual(harness.routes.all.map(\.address), [try SocketAddress(parsing: "127.0.0.1:12345")])
        XCTAssertTrue(harness.events.all.contains { if case .routeAdded(_, "luda", "127.0.0.1:12345") = $0 { return true } else { return false } })
    }

    func testOnTheJSONWireAnEnvelopeThatDoesNotParseIsAnsweredUnknownOpAndReportedAndTheConnectionStaysUsable() throws {
        let harness = try Harness(.json)
        try harness.channel.writeInbound(ByteBuffer(string: #"{"name":5,"operation":"getreq","data":null}"#))
        XCTAssertEqual(try harness.channel.readOutbound(as: ByteBuffer.self).map(utf8String), #"{"name":"yoghurt","operation":"unknownop","data":null}"#)
        try harness.channel.writeInbound(ByteBuffer(string: #"{"name":"luda","operation":"getreq","data":"not base64!"}"#))
        XCTAssertEqual(try harness.channel.readOutbound(as: ByteBuffer.self).map(utf8String), #"{"name":"yoghurt","operation":"unknownop","data":null}"#)
        XCTAssertEqual(harness.rejections.count, 2)
        XCTAssertTrue(harness.rejections.allSatisfy { if case .mismatchedRequest = $0 { return true } else { return false } })

        try harness.channel.writeInbound(goJSON(name: "luda", operation: "getreq"))
        XCTAssertEqual(try harness.channel.readOutbound(as: ByteBuffer.self).map(utf8String), #"{"name":"yoghurt","operation":"getresp","data":null}"#)
    }

    func testOnTheJSONWireAConnectRequestWithABadGreetingIsAnsweredWithNothingAndReported() throws {
        let harness = try Harness(.json)
        try harness.channel.writeInbound(goJSON(name: "luda", operation: "connectreq", data: "not json"))
        try harness.channel.writeInbound(goJSON(name: "luda", operation: "connectreq"))
        XCTAssertNil(try harness.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(harness.rejections.count, 2)
        XCTAssertTrue(harness.rejections.allSatisfy { if case .mismatchedResponse = $0 { return true } else { return false } })
        XCTAssertTrue(harness.routes.all.isEmpty)
    }

    func testARouteThatCannotBeAddedIsReportedButTheConnectRequestIsStillAnswered() throws {
        let harness = try Harness(.json) { name, address throws(P2PError) in throw .routeExists(name: name, address: address) }
        try harness.channel.writeInbound(goJSON(name: "luda", operation: "connectreq", data: #"{"add":"127.0.0.1:12345","account":1}"#))
        XCTAssertEqual(try harness.channel.readOutbound(as: ByteBuffer.self).map(utf8String), #"{"name":"yoghurt","operation":"connectresp","data":null}"#)
        XCTAssertTrue(harness.events.all.contains { if case .routeNotAdded(_, "luda", _, .routeExists) = $0 { return true } else { return false } })

        let empty = try Harness(.json)
        try empty.channel.writeInbound(goJSON(name: "luda", operation: "connectreq", data: #"{"add":"","account":1}"#))
        XCTAssertEqual(try empty.channel.readOutbound(as: ByteBuffer.self).map(utf8String), #"{"name":"yoghurt","operation":"connectresp","data":null}"#)
        XCTAssertTrue(empty.events.all.contains { if case .routeNotAdded(_, _, _, .emptyAddress) = $0 { return true } else { return false } })
    }

    func testTheNoticeResponseEndsTheConversationAndIsReportedAsFinished() throws {
        let harness = try Harness(.json)
        try harness.channel.writeInbound(goJSON(name: "luda", operation: "noticeresp"))
        XCTAssertNil(try harness.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertTrue(harness.events.all.contains { if case .conversationFinished("yoghurt", "luda") = $0 { return true } else { return false } })
    }

    // MARK: Native wire

    func testOnTheNativeWireEveryOperationIsAnsweredAsTheOriginalAnswersIt() throws {
        let harness = try Harness(.native)
        for (operation, expected) in transitions {
            try harness.channel.writeInbound(nativeFrame(Envelope(name: "luda", operation: operation)))
            let answer = try harness.readNativeAnswer()
            XCTAssertEqual(answer?.operation, expected, operation)
            if expected != nil { XCTAssertEqual(answer?.name, "yoghurt") }
        }
        XCTAssertTrue(harness.channel.isActive)
    }

    func testOnTheNativeWireAConnectRequestAddsTheGreetingsRoute() throws {
        let harness = try Harness(.native)
        let request = ExampleProtocol.connectRequest(from: "luda", listeningAddress: "127.0.0.1:12345")
        try harness.channel.writeInbound(nativeFrame(request))
        XCTAssertEqual(try harness.readNativeAnswer()?.operation, "connectresp")
        XCTAssertEqual(harness.routes.all.map(\.address), [try SocketAddress(parsing: "127.0.0.1:12345")])
    }

    func testOnTheNativeWireMalformedInputClosesTheConnectionWithoutAnAnswer() throws {
        let harness = try Harness(.native)
        var bad = ByteBuffer()
        bad.writeInteger(UInt32(3))
        bad.writeBytes([9, 0, 0])   // version 9
        try? harness.channel.writeInbound(bad)
        XCTAssertFalse(harness.channel.isActive)
        XCTAssertNil(try harness.channel.readOutbound(as: ByteBuffer.self))
    }

    func testTheConnectRequestCarriesTheGreetingAsGoMarshalsIt() {
        let request = ExampleProtocol.connectRequest(from: "luda", listeningAddress: "127.0.0.1:12345")
        XCTAssertEqual(request.operation, "connectreq")
        XCTAssertEqual(request.data.map(utf8String), #"{"add":"127.0.0.1:12345","account":11900}"#)
    }

    // MARK: Helpers

    private struct Harness {
        let channel: EmbeddedChannel
        let events = Recorder<ExampleProtocol.Event>()
        let routes = Recorder<(name: String, address: SocketAddress)>()

        init(_ wire: WireFormat, addRoute: (@Sendable (String, SocketAddress) throws(P2PError) -> Void)? = nil) throws {
            let events = events, routes = routes
            let example = ExampleProtocol(observer: { events.append($0) }, logger: testLogger("example"))
            let stage = ProtocolStage(
                protocol: example, localName: "yoghurt", connectionType: .short,
                onAddRoute: { name, address throws(P2PError) in
                    try addRoute?(name, address)
                    routes.append((name, address))
                },
                logger: testLogger("stage"))
            channel = try EmbeddedChannel(handlers: wire.handlers() + [stage])
            channel.connect()
        }

        var rejections: [P2PError] {
            events.all.compactMap { if case .rejected(_, let error) = $0 { return error } else { return nil } }
        }

        func readNativeAnswer() throws -> Envelope? {
            guard var bytes = try channel.readOutbound(as: ByteBuffer.self) else { return nil }
            var decoder = NativeEnvelopeFrameDecoder()
            return try decoder.decode(buffer: &bytes)
        }
    }
}

/// The bytes Go's `json.Marshal(&MsgPto{...})` writes: `data` is base64 of `data`'s UTF-8, or `null`.
func goJSON(name: String, operation: String, data: String? = nil) -> ByteBuffer {
    let encoded = data.map { "\"" + Base64.encodeToString(Array($0.utf8)) + "\"" } ?? "null"
    return ByteBuffer(string: #"{"name":"\#(name)","operation":"\#(operation)","data":\#(encoded)}"#)
}

/// A native frame holding `envelope`.
func nativeFrame(_ envelope: Envelope) throws -> ByteBuffer {
    var encoder = NativeEnvelopeFrameEncoder()
    var buffer = ByteBuffer()
    try encoder.encode(data: envelope, out: &buffer)
    return buffer
}

/// The UTF-8 text of a buffer's readable bytes.
func utf8String(_ buffer: ByteBuffer) -> String { String(decoding: buffer.readableBytesView, as: UTF8.self) }
