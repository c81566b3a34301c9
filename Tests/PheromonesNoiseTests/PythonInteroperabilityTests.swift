import Foundation
import Pheromones
import PheromonesCore
import PheromonesNoise
import XCTest

/// Our responder on a real socket against an initiator written with Python's `noiseprotocol`
/// (`Interop/noise_peer.py`): the handshake with real payloads both ways, then framed transport
/// messages echoed back. Skipped when the package is not installed (`.ci/run` installs it).
final class PythonInteroperabilityTests: XCTestCase {
    private static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Interop/noise_peer.py").path

    func testAPythonNoiseprotocolInitiatorCompletesTheHandshakeWithOurServerAndGetsItsMessagesEchoed() async throws {
        guard try await Self.run(["-c", "import noise, cryptography"], within: 20).status == 0 else {
            throw XCTSkip("python3 with the noiseprotocol package is needed: pip install noiseprotocol==0.3.1")
        }
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let configuration = try NoiseConfiguration(identity: Identities.bob)
        let peers = PeerLog()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([NoiseHandler(responderWith: configuration), EchoAfterHandshake(peers: peers)])
            }
            .bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(server.localAddress?.port)
        let result = try await Self.run([Self.script, "\(port)", Identities.bob.peerID.description], within: 30)
        try await server.close().get()
        try await group.shutdownGracefully()

        XCTAssertEqual(result.status, 0, result.output)
        let pythonID = try XCTUnwrap(result.output.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        XCTAssertTrue(result.output.hasPrefix("ok ph1"), result.output)
        XCTAssertEqual(peers.ids, [try PeerID(pythonID)], "our server saw the peer id the Python peer proved")
    }

    /// Runs `python3 arguments...`, waiting at most `seconds` (then it is killed); its exit status
    /// and output (standard output and error).
    private static func run(_ arguments: [String], within seconds: Double) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("noise-peer-\(UUID().uuidString).txt")
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

/// The peer ids the server's connections proved, shared with the test thread.
private final class PeerLog: Sendable {
    private let recorded = LockedValue<[PeerID]>([])

    func append(_ id: PeerID) { recorded.withLock { $0.append(id) } }
    var ids: [PeerID] { recorded.withLock { $0 } }
}

/// Echoes plaintext back, and logs the peer id of each completed handshake.
private final class EchoAfterHandshake: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let peers: PeerLog

    init(peers: PeerLog) { self.peers = peers }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let result)? = event as? NoiseEvent { peers.append(result.remotePeerID) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.write(data) }
    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}
