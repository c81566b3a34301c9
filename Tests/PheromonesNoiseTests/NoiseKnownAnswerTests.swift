import Crypto
import XCTest

import PheromonesNoise

/// Our Noise core against known answers from an independent implementation: every handshake
/// message, the handshake hash and every transport ciphertext, byte for byte, in both roles.
final class NoiseKnownAnswerTests: XCTestCase {
    func testTheFixtureHoldsBothVectorsForOurProtocol() throws {
        let fixture = try KnownAnswerVectors.load()
        XCTAssertEqual(fixture.vectors.count, 2)
        for vector in fixture.vectors { XCTAssertEqual(vector.protocol, HandshakeState.protocolName) }
        XCTAssertEqual(try hex(fixture.vectors[0].prologue), NoiseConfiguration.prologue)
    }

    func testOurInitiatorWritesAndReadsEveryHandshakeMessageByteForByte() throws {
        for vector in try KnownAnswerVectors.load().vectors {
            try replay(vector, as: .initiator)
        }
    }

    func testOurResponderWritesAndReadsEveryHandshakeMessageByteForByte() throws {
        for vector in try KnownAnswerVectors.load().vectors {
            try replay(vector, as: .responder)
        }
    }

    func testThePayloadsOfThePheromonesVectorParseAndVerifyAgainstTheStaticKeys() throws {
        let vector = try XCTUnwrap(try KnownAnswerVectors.load().vectors.first { $0.pheromones_payloads })
        for (payload, side) in [(vector.payloads[1], vector.responder), (vector.payloads[2], vector.initiator)] {
            let parsed = try HandshakePayload(decoding: try hex(payload))
            let identity = try NodeIdentity(seed: try hex(side.identity_seed))
            XCTAssertEqual(parsed.peerID, identity.peerID)
            let staticKey = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: try hex(side.static_public))
            XCTAssertNoThrow(try parsed.verify(staticKey: staticKey))
            // Ours, from the same keys, is laid out the same and verifies too (Ed25519 signatures
            // may be randomised, so the signature bytes themselves are not compared).
            let ours = try HandshakePayload(identity: identity, staticKey: staticKey)
            XCTAssertEqual(Array(ours.encoded.prefix(33)), Array(try hex(payload).prefix(33)))
            XCTAssertNoThrow(try HandshakePayload(decoding: ours.encoded).verify(staticKey: staticKey))
        }
    }

    /// Runs our side `role` of `vector`: the messages it writes must be the vector's, and it must
    /// read the other side's, payloads and all; then the transport messages both ways.
    private func replay(_ vector: KnownAnswerVectors.Vector, as role: HandshakeState.Role, file: StaticString = #filePath, line: UInt = #line) throws {
        let side = role == .initiator ? vector.initiator : vector.responder
        var handshake = HandshakeState(
            role: role, prologue: try hex(vector.prologue),
            staticKey: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try hex(side.static_private)),
            ephemeralKey: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try hex(side.ephemeral_private)))
        XCTAssertEqual(hex(Array(try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: try hex(side.static_private)).publicKey.rawRepresentation)), side.static_public)
        for (index, message) in vector.messages.enumerated() {
            let payload = try hex(vector.payloads[index])
            if handshake.isWriteTurn {
                XCTAssertEqual(hex(try handshake.writeMessage(payload: payload)), message, "\(vector.name): message \(index + 1) as the \(role)", file: file, line: line)
            } else {
                XCTAssertEqual(try handshake.readMessage(try hex(message)), payload, "\(vector.name): message \(index + 1) as the \(role)", file: file, line: line)
            }
        }
        XCTAssertTrue(handshake.isComplete)
        XCTAssertEqual(hex(handshake.handshakeHash), vector.handshake_hash, "\(vector.name): the handshake hash", file: file, line: line)
        let remote = role == .initiator ? vector.responder : vector.initiator
        XCTAssertEqual(handshake.remoteStaticKey.map { hex(Array($0.rawRepresentation)) }, remote.static_public)

        var (send, receive) = try handshake.split()
        let ours = role == .initiator ? "initiator" : "responder"
        for (index, record) in vector.transport.enumerated() {
            if record.from == ours {
                XCTAssertEqual(hex(try send.encrypt(try hex(record.plaintext))), record.ciphertext, "\(vector.name): transport \(index) as the \(role)", file: file, line: line)
            } else {
                XCTAssertEqual(hex(try receive.decrypt(try hex(record.ciphertext))), record.plaintext, "\(vector.name): transport \(index) as the \(role)", file: file, line: line)
            }
        }
    }
}
