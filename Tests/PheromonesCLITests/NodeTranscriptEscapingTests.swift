import Foundation
import Logging
import Pheromones
import PheromonesP2P
import XCTest
import PheromonesTestSupport

/// `pheromones node` prints what peers send (their names, operations, data and greeting addresses)
/// escaped: no control character, bidirectional override or invalid UTF-8 from the network reaches
/// the terminal, and every line stays one line. And escaped once: the node's events, routes and
/// errors describe themselves escaped, and the transcript does not escape them again.
final class NodeTranscriptEscapingTests: XCTestCase {
    static let hostileName = "evil\u{1B}[31m\r\u{202E}gnp\u{0}"
    static let hostileOperation = "op\u{1B}]0;pwned\u{07}\n\u{9B}2J\u{2066}"
    static let hostileAddress = "\u{1B}[2J\r\n\u{202E}:1\u{9B}"
    static let hostileData: [UInt8] = [0x1B, 0x5B, 0x32, 0x4A, 0x00, 0xFF, 0x0D, 0x0A, 0xE2, 0x80, 0xAE, 0xC0, 0x80, 0x7F]

    func testNamesOperationsAndDataFromAPeerArePrintedEscaped() async throws {
        let input = Pipe()
        let cli = try ChildProcess(["node", "--name", "cli", "--listen", "127.0.0.1:0", "--router", "short"], standardInput: input)
        addTeardownBlock { cli.stop() }
        let cliPort = try XCTUnwrap(NodeSignalTests.port(in: try cli.waitForOutput(containing: "cli listens on")))

        var logger = Logger(label: "test.hostile")
        logger.logLevel = .critical
        let hostile = try Node(
            configuration: .init(name: Self.hostileName, connectionType: .short, logger: logger),
            protocol: HostileProtocol())
        let hostileAddress = try await hostile.listen(on: .loopbackV4(port: 0))

        // The peer speaks first: the node's protocol reports its name and operation.
        try await hostile.add(peer: "cli", address: try SocketAddress(ipAddress: "127.0.0.1", port: cliPort))
        _ = try await hostile.dispatch(to: "cli", Envelope(name: Self.hostileName, operation: Self.hostileOperation,
                                                           data: ByteBuffer(bytes: Self.hostileData)))
        try cli.waitForOutput(containing: "unknownop")

        // Greetings: one whose address is not an address (the node reports that it did not add the
        // route, quoting it), and one that adds a route under the hostile name, which `peers` lists.
        let greetedAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        for address in [Self.hostileAddress, "\(greetedAddress)"] {
            _ = try await hostile.dispatch(to: "cli", ExampleProtocol.connectRequest(from: Self.hostileName, listeningAddress: address))
        }
        try cli.waitForOutput(containing: "did not add route")
        input.fileHandleForWriting.write(Data("peers\n".utf8))
        try cli.waitForOutput(containing: "peers: ")

        // The node speaks first: it prints the peer's answer, data included.
        input.fileHandleForWriting.write(Data("add evil \(hostileAddress)\nsend evil ping\n".utf8))
        try cli.waitForOutput(containing: "evil answered")
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        XCTAssertNotNil(cli.waitForExit(within: 10))
        await hostile.shutdown()

        let printed = cli.printed
        let text = String(decoding: printed, as: UTF8.self)
        XCTAssertEqual(Array(text.utf8), printed, "the node printed bytes that are not UTF-8")
        for scalar in text.unicodeScalars where scalar != "\n" {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator:
                XCTFail("U+\(String(scalar.value, radix: 16, uppercase: true)) reached the terminal:\n\(text.debugDescription)")
            default: break
            }
        }
        XCTAssertTrue(text.contains(Self.hostileName.escapedForTerminal), text)
        XCTAssertTrue(text.contains(Self.hostileOperation.escapedForTerminal), text)
        XCTAssertTrue(text.contains(Self.hostileAddress.escapedForTerminal), text)
        XCTAssertTrue(text.contains("\(Self.hostileName.escapedForTerminal)@\(greetedAddress)"), "peers lists the route: \(text)")
        for hostile in [Self.hostileName, Self.hostileOperation, Self.hostileAddress] {
            XCTAssertFalse(text.contains(hostile.escapedForTerminal.escapedForTerminal), "escaped twice: \(text)")
        }
        // The data is shown as text: bytes that are not UTF-8 as U+FFFD, controls escaped.
        XCTAssertTrue(text.contains(String(decoding: Self.hostileData, as: UTF8.self).escapedForTerminal), text)
    }
}

/// Answers everything with the hostile name, operation and data.
private final class HostileProtocol: PeerProtocol {
    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        Envelope(name: NodeTranscriptEscapingTests.hostileName, operation: NodeTranscriptEscapingTests.hostileOperation,
                 data: ByteBuffer(bytes: NodeTranscriptEscapingTests.hostileData))
    }
}
