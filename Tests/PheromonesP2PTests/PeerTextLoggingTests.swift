import Logging
import Pheromones
import PheromonesP2P
import Synchronization
import XCTest

/// What a node logs about its peers is escaped: a peer that puts control characters,
/// bidirectional overrides or line breaks in its name, its operations, its greeting or its data
/// cannot forge or hide log lines, or act on the terminal showing them.
final class PeerTextLoggingTests: GroupTestCase {
    private static let hostileName = "evil\u{1B}[31m\r\n\u{202E}gnp\u{0}"
    private static let hostileOperation = "op\u{1B}]0;pwned\u{07}\n\u{9B}2J\u{2066}"
    private static let hostileGreeting = ByteBuffer(bytes: Array("{\"add\":\"\u{1B}[2J\r\n\u{202E}\",\"account\":1}".utf8) + [0xFF])

    func testAHostilePeerOnTheNativeWireLeavesNoControlCharacterInTheLog() async throws {
        try await assertLogIsClean(.native)
    }

    func testAHostilePeerOnTheJSONWireLeavesNoControlCharacterInTheLog() async throws {
        try await assertLogIsClean(.json)
    }

    private func assertLogIsClean(_ wire: WireFormat, file: StaticString = #filePath, line: UInt = #line) async throws {
        let loop = group.next()
        let captured = CapturedLog()
        var logger = Logger(label: "test.victim") { _ in CapturingLogHandler(log: captured) }
        logger.logLevel = .trace
        let victim = try Node(
            configuration: .init(name: "victim", connectionType: .persistent, wire: wire, logger: logger),
            protocol: ExampleProtocol(logger: logger), group: group)
        let victimAddress = try await victim.listen(on: .loopbackV4(port: 0))
        let hostile = try Node(
            configuration: .init(name: Self.hostileName, connectionType: .persistent, wire: wire, logger: testLogger("hostile")),
            protocol: ExampleProtocol(logger: testLogger("hostile")), group: group)
        let hostileAddress = try await hostile.listen(on: .loopbackV4(port: 0))

        try await within(10, on: loop, "the hostile peer connects") { try await hostile.add(peer: "victim", address: victimAddress) }
        let messages = [
            Envelope(name: Self.hostileName, operation: Self.hostileOperation, data: Self.hostileGreeting),
            Envelope(name: Self.hostileName, operation: ExampleProtocol.Operation.connectRequest, data: Self.hostileGreeting),
            ExampleProtocol.connectRequest(from: Self.hostileName, listeningAddress: "\(hostileAddress)"),
            Envelope(name: Self.hostileName, operation: "getreq", data: Self.hostileGreeting),
        ]
        for message in messages {
            _ = try? await within(10, on: loop, "a hostile message") { try await hostile.dispatch(to: "victim", message) }
        }
        await hostile.shutdown()
        await victim.shutdown()

        let entries = captured.entries
        XCTAssertFalse(entries.isEmpty, "nothing was logged", file: file, line: line)
        XCTAssertTrue(entries.contains { $0.contains(Self.hostileName.escapedForTerminal) },
                      "the peer's name was never logged (escaped): the test exercises nothing", file: file, line: line)
        for entry in entries {
            for scalar in entry.unicodeScalars {
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator:
                    XCTFail("U+\(String(scalar.value, radix: 16, uppercase: true)) reached the log: \(entry.debugDescription)", file: file, line: line)
                default: break
                }
            }
        }
    }
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
