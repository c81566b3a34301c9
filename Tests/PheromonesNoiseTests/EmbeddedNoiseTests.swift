import Pheromones
import PheromonesNoise
import XCTest

/// Our initiator against our responder, each on an `EmbeddedChannel` wired to the other: the
/// handshake, data both ways, queued writes, the timeout, and the expected peer.
final class EmbeddedNoiseTests: XCTestCase {
    func testAnInitiatorAndAResponderCompleteTheHandshakeAndLearnEachOthersPeerID() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        XCTAssertEqual(pair.initiatorRecorder.handshakes.map(\.remotePeerID), [Identities.bob.peerID])
        XCTAssertEqual(pair.responderRecorder.handshakes.map(\.remotePeerID), [Identities.alice.peerID])
        XCTAssertEqual(pair.initiatorRecorder.handshakes.first?.remoteIdentityKey.rawRepresentation, Identities.bob.publicKey.rawRepresentation)
        XCTAssertEqual(pair.initiatorRecorder.handshakes.first?.handshakeHash, pair.responderRecorder.handshakes.first?.handshakeHash)
        XCTAssertFalse(pair.initiatorHandler.holdsHandshakeState, "the handshake state is dropped once it completes")
        XCTAssertFalse(pair.responderHandler.holdsHandshakeState)
        XCTAssertTrue(pair.initiatorRecorder.errors.isEmpty, "\(pair.initiatorRecorder.errors)")
        XCTAssertTrue(pair.responderRecorder.errors.isEmpty, "\(pair.responderRecorder.errors)")
    }

    func testDataGoesBothWaysAfterTheHandshake() throws {
        let pair = try EmbeddedNoisePair()
        try pair.connect()
        try pair.initiator.writeOutbound(ByteBuffer(string: "hello, responder"))
        try pair.exchange()
        XCTAssertEqual(pair.responderRecorder.received, ByteBuffer(string: "hello, responder"))
        try pair.responder.writeOutbound(ByteBuffer(string: "hello, initiator"))
        try pair.exchange()
        XCTAssertEqual(pair.initiatorRecorder.received, ByteBuffer(string: "hello, initiator"))
    }
}
