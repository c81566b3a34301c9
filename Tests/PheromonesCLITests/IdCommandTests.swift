import Foundation
import PheromonesNoise
import XCTest
import PheromonesTestSupport

@testable import PheromonesCLI

/// `pheromones id`: the peer id of a key file, created only with `--create`, and the same every run.
final class IdCommandTests: XCTestCase {
    func testIdPrintsTheSamePeerIDEveryRunAndCreatesTheKeyOnlyWhenAsked() throws {
        let directory = NSTemporaryDirectory() + "pheromones-id-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/node.identity"

        let missing = try ChildProcess(["id", "--identity", path], standardInput: FileHandle.nullDevice)
        defer { missing.stop() }
        XCTAssertNotNil(missing.waitForExit(within: 30))
        XCTAssertNotEqual(missing.exitStatus, 0, "no key file and no --create")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))

        let created = try ChildProcess(["id", "--identity", path, "--create"], standardInput: FileHandle.nullDevice)
        defer { created.stop() }
        XCTAssertNotNil(created.waitForExit(within: 30))
        XCTAssertEqual(created.exitStatus, 0)
        let id = try PeerID(created.text.trimmingCharacters(in: .newlines))
        XCTAssertEqual(try IdentityFile.load(from: path).peerID, id)

        let again = try ChildProcess(["id", "--identity", path], standardInput: FileHandle.nullDevice)
        defer { again.stop() }
        XCTAssertNotNil(again.waitForExit(within: 30))
        XCTAssertEqual(again.exitStatus, 0)
        XCTAssertEqual(again.text, id.description + "\n")
    }

    func testAnExistingKeyIsKeptWithCreateAndAnUnreadableOneIsAnError() throws {
        let directory = NSTemporaryDirectory() + "pheromones-id-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/node.identity"
        let first = try IdCommand.identity(at: path, create: true, defaultPath: false)
        XCTAssertTrue(first.created)
        let second = try IdCommand.identity(at: path, create: true, defaultPath: false)
        XCTAssertFalse(second.created)
        XCTAssertEqual(second.0.peerID, first.0.peerID)
        chmod(path, 0o644)
        XCTAssertThrowsError(try IdCommand.identity(at: path, create: true, defaultPath: false)) { error in
            XCTAssertEqual(error as? IdentityError, .insecurePermissions(path: path, mode: 0o644))
        }
        XCTAssertEqual(try IdCommand.parse(["--identity", "x", "--create"]).identityPath, "x")
    }
}
