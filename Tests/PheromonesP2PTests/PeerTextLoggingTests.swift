import Logging
import Pheromones
import PheromonesP2P
import Synchronization
import XCTest

/// What a node logs and tells the application about its peers is escaped: a peer that puts control
/// characters, bidirectional overrides or line breaks in its name, its operations, its greeting or
/// its data cannot forge or hide log lines, or act on the terminal that shows them, the log or the
/// descriptions of the events, routes and errors the application sees. And it is escaped once: a
/// description that quotes an escaped description does not escape it again.
final class PeerTextLoggingTests: GroupTestCase {
    private static let hostileName = "evil\u{1B}[31m\r\n\u{202E}gnp\u{0}"
    private static let hostileOperation = "op\u{1B}]0;pwned\u{07}\n\u{9B}2J\u{2066}"
    private static let hostileGreeting = ByteBuffer(bytes: Array("{\"add\":\"\u{1B}[2J\r\n\u{202E}\",\"account\":1}".utf8) + [0xFF])

    func testAHostilePeerOnTheNativeWireLeavesNoControlCharacterInTheLogOrInWhatTheApplicationSees() async throws {
        try await assertLogIsClean(.native)
    }

    func testAHostilePeerOnTheJSONWireLeavesNoControlCharacterInTheLogOrInWhatTheApplicationSees() async throws {
        try await assertLogIsClean(.json)
    }

    private func assertLogIsClean(_ wire: WireFormat, file: StaticString = #filePath, line: UInt = #line) async throws {
        let loop = group.next()
        let captured = CapturedLog()
        var logger = Logger(label: "test.victim") { _ in CapturingLogHandler(log: captured) }
        logger.logLevel = .trace
        let nodeEvents = Recorder<NodeEvent>()
        let protocolEvents = Recorder<ExampleProtocol.Event>()
        let victim = try Node(
            configuration: .init(name: "victim", connectionType: .persistent, wire: wire, logger: logger, observer: { nodeEvents.append($0) }),
            protocol: ExampleProtocol(observer: { protocolEvents.append($0) }, logger: logger), group: group)
        let victimAddress = try await victim.listen(on: .loopbackV4(port: 0))
        let hostile = try Node(
            configuration: .init(name: Self.hostileName, connectionType: .persistent, wire: wire, logger: testLogger("hostile")),
            protocol: ExampleProtocol(logger: testLogger("hostile")), group: group)
        let hostileAddress = try await hostile.listen(on: .loopbackV4(port: 0))

        try await within(10, on: loop, "the hostile peer connects") { try await hostile.add(peer: "victim", address: victimAddress) }
        let messages = [
            Envelope(name: Self.hostileName, operation: Self.hostileOperation, data: Self.hostileGreeting),
            Envelope(name: Self.hostileName, operation: ExampleProtocol.Operation.connectRequest, data: Self.hostileGreeting),
            // A greeting that parses, with an address that does not: the route is not added, and the
            // event and the error say why, quoting the address.
            ExampleProtocol.connectRequest(from: Self.hostileName, listeningAddress: "\u{1B}[2J\r\n\u{202E}:1\u{9B}"),
            ExampleProtocol.connectRequest(from: Self.hostileName, listeningAddress: "\(hostileAddress)"),
            Envelope(name: Self.hostileName, operation: "getreq", data: Self.hostileGreeting),
        ]
        for message in messages {
            _ = try? await within(10, on: loop, "a hostile message") { try await hostile.dispatch(to: "victim", message) }
        }
        try await protocolEvents.wait("the victim to handle the last message", on: loop) { events in
            events.contains { if case .handled(_, let message, _) = $0 { return message.operation == "getreq" } else { return false } }
        }
        let peers = await victim.peers
        await hostile.shutdown()
        await victim.shutdown()

        let entries = captured.entries
        XCTAssertFalse(entries.isEmpty, "nothing was logged", file: file, line: line)
        XCTAssertTrue(entries.contains { $0.contains(Self.hostileName.escapedForTerminal) },
                      "the peer's name was never logged (escaped): the test exercises nothing", file: file, line: line)
        assertEscapedOnce(entries, "the log", file: file, line: line)

        // What the application sees: the events, the routes and the errors inside the events.
        let descriptions = nodeEvents.all.map(\.description) + protocolEvents.all.map(\.description) + peers.map(\.description)
        XCTAssertTrue(descriptions.contains { $0.contains(Self.hostileName.escapedForTerminal) },
                      "no description quotes the peer's name: the test exercises nothing", file: file, line: line)
        XCTAssertTrue(protocolEvents.all.contains { if case .routeNotAdded = $0 { return true } else { return false } },
                      "the hostile greeting's address was never reported", file: file, line: line)
        assertEscapedOnce(descriptions, "a description", file: file, line: line)
    }

    // MARK: Errors

    func testAnErrorQuotingWhatAServerSentBeforeItsHelloIsEscaped() async throws {
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers(NativeWire.handlers() + [SpeaksFirst(Envelope(name: Self.hostileName, operation: Self.hostileOperation))])
            }
            .bind(host: "127.0.0.1", port: 0)
        // The server speaks plaintext frames: the victim must too, for them to reach its router.
        let node = try Node(configuration: .init(name: "victim", security: .insecure, logger: testLogger("victim")), protocol: ExampleProtocol(), group: group)
        do {
            try await within(10, on: node.eventLoop, "the dial") { try await node.add(peer: "evil", address: try XCTUnwrap(server.localAddress)) }
            XCTFail("the dial succeeded")
        } catch let error as P2PError {
            guard case .unknownProtocol(let detail) = error else { return XCTFail("got \(error)") }
            XCTAssertTrue(detail.contains(Self.hostileOperation), "the error keeps the text as it came")
            XCTAssertTrue(error.description.contains(Self.hostileOperation.escapedForTerminal), error.description)
            assertEscapedOnce([error.description, "\(error)"], "the error's description")
        }
        await node.shutdown()
        try await server.close().get()
    }

    func testEveryDescriptionThatQuotesAPeerEscapesItOnce() throws {
        let name = Self.hostileName, text = Self.hostileOperation
        let address = try SocketAddress(parsing: "127.0.0.1:1")
        let key = PeerKey(name: name, address: address)
        let errors: [P2PError] = [
            .readTimeout(peer: text), .routeExists(name: name, address: address), .wrongAddressKind(text),
            .connectFailed(address: address, reason: text), .unknownProtocol(text), .mismatchedRequest(text),
            .mismatchedResponse(text), .unknownPeer(name), .ambiguousPeer(name: name, addresses: [address]),
        ]
        let message = Envelope(name: name, operation: text, data: ByteBuffer(string: text))
        let events: [ExampleProtocol.Event] = [
            .handled(node: name, message: message, answer: message), .conversationFinished(node: name, peer: name),
            .routeAdded(node: name, name: name, address: text), .routeNotAdded(node: name, name: name, address: text, error: .unknownPeer(name)),
            .rejected(node: name, error: .mismatchedRequest(text)),
        ]
        let nodeEvents: [NodeEvent] = [
            .connectionIdentified(key, .inbound), .connectionDraining(key, .outbound), .connectionClosed(key, .inbound),
            .connectionTimedOut(key, .keepalive),
        ]
        let descriptions = errors.map(\.description) + events.map(\.description) + nodeEvents.map(\.description)
            + [key.description, PeerSelector.name(name).description, message.description]
        for description in descriptions {
            XCTAssertTrue(description.contains(name.escapedForTerminal) || description.contains(text.escapedForTerminal),
                          "quotes the peer's text, escaped: \(description.debugDescription)")
        }
        assertEscapedOnce(descriptions, "a description")
        XCTAssertEqual(Envelope(name: "say \"hi\"", operation: "a\\b").description,
                       #"Envelope(name: "say \"hi\"", operation: "a\\b", data: null)"#)
    }

    // MARK: Checking

    /// Fails for any control, format or separator character in `texts`, and for any hostile text
    /// escaped twice.
    private func assertEscapedOnce(_ texts: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        for text in texts {
            for scalar in text.unicodeScalars {
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator:
                    XCTFail("U+\(String(scalar.value, radix: 16, uppercase: true)) reached \(what): \(text.debugDescription)", file: file, line: line)
                default: break
                }
            }
            for hostile in [Self.hostileName, Self.hostileOperation] {
                XCTAssertFalse(text.contains(hostile.escapedForTerminal.escapedForTerminal),
                               "\(what) escapes the peer's text twice: \(text.debugDescription)", file: file, line: line)
            }
        }
    }
}

/// Sends one envelope as soon as the connection is up: a server that speaks before its hello.
private final class SpeaksFirst: ChannelInboundHandler {
    typealias InboundIn = Envelope
    typealias OutboundOut = Envelope

    private let envelope: Envelope

    init(_ envelope: Envelope) {
        self.envelope = envelope
    }

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(envelope)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: Envelope) {}
}

/// Every log entry as one line of text: the message, then each metadata key and value.
private final class CapturedLog: Sendable {
    private let lines = LockedValue<[String]>([])

    var entries: [String] { lines.withLock { $0 } }

    func append(_ line: String) {
        lines.withLock { $0.append(line) }
    }
}

private struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        log.append(([event.message.description] + fields).joined(separator: " "))
    }
}
