import Foundation
import PheromonesNoise
import XCTest
import PheromonesTestSupport

@testable import PheromonesCLI

/// `pheromones demo` and `pheromones node` with identities: the demo prints each node's peer id,
/// a node proves the identity in its `--identity` file, and `--insecure` runs the native wire in
/// the clear.
final class SecureNodeCommandTests: XCTestCase {
    func testTheDemoPrintsEachNodesPeerIDAndCompletesOverNoiseAndInsecure() throws {
        for extra in [[], ["--insecure"]] {
            let demo = try ChildProcess(["demo", "--mode", "short"] + extra, standardInput: FileHandle.nullDevice)
            defer { demo.stop() }
            XCTAssertNotNil(demo.waitForExit(within: 60), "\(extra)")
            XCTAssertEqual(demo.exitStatus, 0, demo.text)
            let ids = demo.text.split(separator: "\n").filter { $0.contains(" is peer ph1") }
            XCTAssertEqual(ids.count, 3, demo.text)
            for line in ids {
                let printed = line.split(separator: " ").last.map(String.init) ?? ""
                XCTAssertNoThrow(try PeerID(printed), String(line))
            }
            XCTAssertTrue(demo.text.contains(extra.isEmpty ? "native wire, Noise" : "native wire, insecure"), demo.text)
        }
    }

    func testANodeProvesTheIdentityInItsKeyFile() throws {
        let directory = NSTemporaryDirectory() + "pheromones-node-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/node.identity"
        let identity = NodeIdentity()
        try IdentityFile.save(identity, to: path)

        let input = Pipe()
        let node = try ChildProcess(["node", "--name", "keyed", "--listen", "127.0.0.1:0", "--identity", path], standardInput: input)
        addTeardownBlock { node.stop() }
        let listening = try node.waitForOutput(containing: "keyed listens on")
        XCTAssertTrue(listening.contains("Noise, peer id \(identity.peerID)"), listening)
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        XCTAssertNotNil(node.waitForExit(within: 5))
        XCTAssertEqual(node.exitStatus, 0)
    }

    func testAMissingKeyFileIsAnErrorAndInsecureRunsInTheClear() throws {
        let missing = try PheromonesCommand.parseAsRoot(["node", "--name", "a", "--listen", "127.0.0.1:0", "--identity", "/nonexistent/key"])
        let command = try XCTUnwrap(missing as? NodeCommand)
        XCTAssertThrowsError(try command.loadIdentity())

        let input = Pipe()
        let node = try ChildProcess(["node", "--name", "plain", "--listen", "127.0.0.1:0", "--insecure"], standardInput: input)
        addTeardownBlock { node.stop() }
        let listening = try node.waitForOutput(containing: "plain listens on")
        XCTAssertTrue(listening.contains("native wire, insecure"), listening)
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        XCTAssertNotNil(node.waitForExit(within: 5))
    }
}
