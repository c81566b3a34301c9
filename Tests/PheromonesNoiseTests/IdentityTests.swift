import Foundation
import PheromonesNoise
import XCTest

/// Peer ids, and identity files: created private, loaded strictly, refused when others can read them.
final class IdentityTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "pheromones-identity-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testAPeerIDIsTheSHA256OfThePublicKeyPrintedWithItsPrefixAndParsedBack() throws {
        let identity = Identities.alice
        let id = identity.peerID
        XCTAssertEqual(id.bytes.count, 32)
        XCTAssertTrue(id.description.hasPrefix("ph1"))
        XCTAssertEqual(id.description.count, 55)
        XCTAssertTrue(id.description.dropFirst(3).allSatisfy { "abcdefghijklmnopqrstuvwxyz234567".contains($0) }, id.description)
        XCTAssertEqual(id.short, String(id.description.prefix(11)))
        XCTAssertEqual(try PeerID(id.description), id)
        XCTAssertEqual(try PeerID(id.description.uppercased()), id, "base32 is read in either case")
        XCTAssertEqual(Identities.identity(1).peerID, id, "the same key, the same id")
        XCTAssertNotEqual(Identities.bob.peerID, id)
        XCTAssertEqual(Set([id, Identities.bob.peerID, try PeerID(id.description)]).count, 2)
    }

    func testAPeerIDDoesNotChangeAcrossReleases() throws {
        // The seed of all 1 bytes; the id is pinned so that a change of format is noticed.
        XCTAssertEqual(Identities.alice.peerID.description, try String(contentsOfFile: Self.pinnedPeerIDFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func testMalformedPeerIDsAreRefusedWithAReason() {
        let valid = Identities.alice.peerID.description
        for text in ["", "ph1", "xx1" + valid.dropFirst(3), valid + "a", String(valid.dropLast()), valid.dropLast() + "1", valid.dropLast() + "b", "ph1" + String(repeating: "é", count: 52)] {
            XCTAssertThrowsError(try PeerID(String(text)), text) { error in
                guard case .invalidPeerID? = error as? IdentityError else { return XCTFail("\(error)") }
            }
        }
    }

    func testASavedIdentityIsPrivateToItsOwnerAndLoadsBack() throws {
        let path = directory + "/node.identity"
        try IdentityFile.save(Identities.alice, to: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let loaded = try IdentityFile.load(from: path)
        XCTAssertEqual(loaded.peerID, Identities.alice.peerID)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertEqual(text, "pheromones-identity-v1 ed25519\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n")
        XCTAssertThrowsError(try IdentityFile.save(Identities.bob, to: path)) { error in
            XCTAssertEqual(error as? IdentityError, .fileExists(path: path))
        }
        XCTAssertEqual(try IdentityFile.load(from: path).peerID, Identities.alice.peerID, "never overwritten")
    }

    func testAFileThatGroupOrOthersCanAccessIsRefusedWithItsMode() throws {
        let path = directory + "/node.identity"
        try IdentityFile.save(Identities.alice, to: path)
        for mode in [0o640, 0o604, 0o644, 0o660, 0o610] {
            chmod(path, mode_t(mode))
            XCTAssertThrowsError(try IdentityFile.load(from: path)) { error in
                XCTAssertEqual(error as? IdentityError, .insecurePermissions(path: path, mode: UInt32(mode)))
                XCTAssertTrue("\(error)".contains("0" + String(mode, radix: 8)), "\(error)")
            }
        }
        chmod(path, 0o400)
        XCTAssertEqual(try IdentityFile.load(from: path).peerID, Identities.alice.peerID)
    }

    func testGarbageAndNearMissesAreRefusedAsMalformedWithoutCrashing() throws {
        let seed = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
        let header = "pheromones-identity-v1 ed25519"
        let cases: [[UInt8]] = [
            [], Array("\n".utf8), Array(header.utf8), Array("\(header)\n".utf8), Array("\(header)\n\(seed)\nextra\n".utf8),
            Array("\(header)\n\(seed.dropLast())\n".utf8), Array("\(header)\nAQEB\n".utf8), Array("\(header)\n\(seed) \n".utf8),
            Array("pheromones-identity-v2 ed25519\n\(seed)\n".utf8), Array("\(header)\r\n\(seed)\r\n".utf8),
            Array("\(header)\n\(seed)\n".utf8).map { $0 == 0x41 ? 0x00 : $0 }, [0xFF, 0xFE, 0x00, 0x01],
            Array("\(header)\n!QEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n".utf8),
        ]
        for (index, bytes) in cases.enumerated() {
            let path = directory + "/garbage-\(index)"
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]))
            XCTAssertThrowsError(try IdentityFile.load(from: path), "case \(index)") { error in
                guard case .malformedFile? = error as? IdentityError else { return XCTFail("case \(index): \(error)") }
            }
        }
        let large = directory + "/large"
        XCTAssertTrue(FileManager.default.createFile(atPath: large, contents: Data(count: 1 << 20), attributes: [.posixPermissions: 0o600]))
        XCTAssertThrowsError(try IdentityFile.load(from: large)) { error in
            XCTAssertEqual(error as? IdentityError, .fileTooLarge(path: large, size: 1 << 20))
        }
        XCTAssertThrowsError(try IdentityFile.load(from: directory + "/missing")) { error in
            guard case .systemError(_, "open", ENOENT)? = error as? IdentityError else { return XCTFail("\(error)") }
        }
        chmod(directory, 0o700)
        XCTAssertThrowsError(try IdentityFile.load(from: directory)) { error in
            guard case .malformedFile? = error as? IdentityError else { return XCTFail("a directory: \(error)") }
        }
    }

    private static let pinnedPeerIDFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/alice-peer-id.txt").path
}
