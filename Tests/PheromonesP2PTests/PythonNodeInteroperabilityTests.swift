import Foundation
import Pheromones
import PheromonesNoise
import PheromonesP2P
import XCTest

/// A peer written in Python (`Interop/node_peer.py`: the `noiseprotocol` package for Noise, the
/// native wire encoded by hand) against a real node on the native wire inside Noise (issue 10): it
/// completes the handshake, decrypts and checks the node's hello (the peer id its handshake
/// proved), says hello, and gets a dispatch answered. Skipped when python3 lacks `noiseprotocol`
/// or `cryptography` (`.ci/run` installs them).
final class PythonNodeInteroperabilityTests: GroupTestCase {
    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/node_peer.py").path

    func testAPythonPeerCompletesTheHandshakeWithANodeExchangesHellosAndGetsItsDispatchAnswered() async throws {
        guard try await Self.run(["-c", "import noise, cryptography"], within: 20).status == 0 else {
            throw XCTSkip("python3 with the noiseprotocol and cryptography packages is needed: pip install noiseprotocol==0.3.1")
        }
        let proven = Recorder<PeerID>()
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.peerPolicy = PeerPolicy(decide: { peer, _ in
                proven.append(peer)
                return true
            })
        }
        let claimed = SocketAddress.loopbackV4(port: 9)
        let result = try await Self.run(
            [Self.script, "\(node.address.port)", node.node.peerID.description, node.name, node.address.description, claimed.description],
            within: 30)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.hasPrefix("ok ph1"), result.output)
        let pythonID = try PeerID(try XCTUnwrap(result.output.split(separator: " ").last).trimmingCharacters(in: .whitespacesAndNewlines))

        XCTAssertEqual(proven.all, [pythonID], "the node proved the Python peer's id in the handshake")
        XCTAssertEqual(node.handledOperations, ["noticereq"])
        XCTAssertTrue(
            node.connections.all.contains { if case .connectionIdentified(PeerKey(name: "python", address: claimed), .inbound) = $0 { true } else { false } },
            "the node took the Python peer's hello: \(node.connections.all)")
        let refused = await node.node.statistics.peersRefused
        XCTAssertEqual(refused, 0)
        await node.node.shutdown()
    }

    /// Runs `python3 arguments...`, waiting at most `seconds` (then it is killed); its exit status
    /// and output (standard output and error).
    private static func run(_ arguments: [String], within seconds: Double) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("node-peer-\(UUID().uuidString).txt")
        guard FileManager.default.createFile(atPath: outputFile.path, contents: nil) else { return (127, "cannot create \(outputFile.path)") }
        defer { try? FileManager.default.removeItem(at: outputFile) }
        let output = try FileHandle(forWritingTo: outputFile)
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let exited = XCTestExpectation(description: "python3 exits")
        process.terminationHandler = { _ in exited.fulfill() }
        do {
            try process.run()
        } catch {
            return (127, "python3 could not be started: \(error)")
        }
        if await XCTWaiter().fulfillment(of: [exited], timeout: seconds) != .completed {
            process.terminate()
            XCTFail("python3 \(arguments) did not finish within \(seconds) s")
            await XCTWaiter().fulfillment(of: [exited], timeout: 5)
        }
        try output.close()
        return (process.terminationStatus, try String(contentsOf: outputFile, encoding: .utf8))
    }
}
