import Foundation
import Glibc
import XCTest
import PheromonesTestSupport

/// `pheromones node` keeps serving whatever its standard input is, and a signal ends it within a
/// second: nothing it prints waits for the thread reading commands.
final class NodeSignalTests: XCTestCase {
    func testANodeReadingAnOpenPipeExitsWithinASecondOfSIGTERM() throws {
        let input = Pipe()
        try assertExitsPromptly(on: SIGTERM, standardInput: input)
        try? input.fileHandleForWriting.close()
    }

    func testANodeReadingAnOpenPipeExitsWithinASecondOfSIGINT() throws {
        let input = Pipe()
        try assertExitsPromptly(on: SIGINT, standardInput: input)
        try? input.fileHandleForWriting.close()
    }

    func testANodeWhoseStandardInputIsDevNullKeepsServingAndExitsWithinASecondOfSIGTERM() throws {
        try assertExitsPromptly(on: SIGTERM, standardInput: FileHandle.nullDevice)
    }

    func testCommandsTypedWhileTheNodeRunsAreAnsweredAndQuitEndsIt() throws {
        let input = Pipe()
        let node = try ChildProcess(["node", "--name", "typist", "--listen", "127.0.0.1:0"], standardInput: input)
        addTeardownBlock { node.stop() }
        try node.waitForOutput(containing: "typist listens on")
        input.fileHandleForWriting.write(Data("peers\nstats\nbogus command\n".utf8))
        try node.waitForOutput(containing: "error: unknown command 'bogus command'")
        XCTAssertTrue(node.text.contains("no peers"))
        XCTAssertTrue(node.text.contains("stats: messages in 0"), node.text)
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        XCTAssertNotNil(node.waitForExit(within: 5), "quit did not end the node")
        XCTAssertEqual(node.exitStatus, 0)
    }

    private func assertExitsPromptly(on signal: CInt, standardInput: Any, file: StaticString = #filePath, line: UInt = #line) throws {
        let node = try ChildProcess(["node", "--name", "sleeper", "--listen", "127.0.0.1:0"], standardInput: standardInput)
        addTeardownBlock { node.stop() }
        let listening = try node.waitForOutput(containing: "sleeper listens on")
        try node.waitUntilCatching([SIGINT, SIGTERM])
        // Still serving after its input ended (or while it waits for input): a peer gets an answer.
        let port = try XCTUnwrap(Self.port(in: listening), "no port in: \(listening)", file: file, line: line)
        XCTAssertTrue(Self.acceptsConnections(port: port), "the node does not accept connections", file: file, line: line)

        node.send(signal)
        let seconds = node.waitForExit(within: 5)
        XCTAssertNotNil(seconds, "the node ignored signal \(signal); its output was:\n\(node.text)", file: file, line: line)
        if let seconds { XCTAssertLessThan(seconds, 1.0, "the node took \(seconds) s to exit", file: file, line: line) }
        XCTAssertEqual(node.exitStatus, 0, file: file, line: line)
        XCTAssertTrue(node.text.contains("sleeper shutting down"), node.text, file: file, line: line)
    }

    /// The port of "NAME listens on 127.0.0.1:PORT ...".
    static func port(in text: String) -> Int? {
        guard let range = text.range(of: "listens on 127.0.0.1:") else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    private static func acceptsConnections(port: Int) -> Bool {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
