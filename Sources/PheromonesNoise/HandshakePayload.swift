import Crypto

/// What each side proves in the handshake: its Ed25519 identity key, and that key's signature of
/// its Noise static key (as libp2p binds a peer's identity to its Noise key).
///
/// Layout (version 1, exactly 97 bytes):
/// ```
/// offset  length  field
///      0       1  version: 0x01
///      1      32  the raw Ed25519 identity public key
///     33      64  Ed25519 signature of "pheromones-noise-static-key:" ‖ the sender's 32-byte X25519 static key
/// ```
/// The responder sends it in message 2, the initiator in message 3 (message 1's payload is empty).
package struct HandshakePayload: Sendable {
    /// The only version this implementation speaks.
    package static let version: UInt8 = 1
    /// The length of a version-1 payload.
    package static let length = 1 + 32 + 64
    /// What the identity key signs, before the static key.
    package static let signaturePrefix = Array("pheromones-noise-static-key:".utf8)

    /// The sender's identity key.
    package let identityKey: Curve25519.Signing.PublicKey
    /// Its signature of the sender's static key.
    package let signature: [UInt8]

    /// The payload that proves `identity` holds `staticKey`.
    package init(identity: NodeIdentity, staticKey: Curve25519.KeyAgreement.PublicKey) throws(NoiseError) {
        identityKey = identity.publicKey
        signature = try identity.signature(for: Self.signedMessage(staticKey))
    }

    /// Parses a received payload.
    ///
    /// - Throws: ``NoiseError/malformedPayload(_:)`` for an empty payload or one of the wrong length,
    ///   ``NoiseError/unsupportedPayloadVersion(_:)`` for a version other than 1.
    package init(decoding bytes: [UInt8]) throws(NoiseError) {
        guard let version = bytes.first else { throw .malformedPayload("it is empty") }
        guard version == Self.version else { throw .unsupportedPayloadVersion(version) }
        guard bytes.count == Self.length else {
            throw .malformedPayload("a version-1 payload is \(Self.length) bytes, not \(bytes.count)")
        }
        do {
            identityKey = try Curve25519.Signing.PublicKey(rawRepresentation: bytes[1..<33])
        } catch {
            throw .malformedPayload("its identity key is not an Ed25519 public key")
        }
        signature = Array(bytes[33...])
    }

    /// The payload's bytes.
    package var encoded: [UInt8] {
        [Self.version] + Array(identityKey.rawRepresentation) + signature
    }

    /// The sender's peer id, once ``verify(staticKey:)`` has shown the payload is its own.
    package var peerID: PeerID { PeerID(publicKey: identityKey) }

    /// Checks that the identity key signed `staticKey` (the key the handshake proved the sender holds).
    ///
    /// - Throws: ``NoiseError/invalidSignature`` when it did not.
    package func verify(staticKey: Curve25519.KeyAgreement.PublicKey) throws(NoiseError) {
        guard identityKey.isValidSignature(signature, for: Self.signedMessage(staticKey)) else { throw .invalidSignature }
    }

    private static func signedMessage(_ staticKey: Curve25519.KeyAgreement.PublicKey) -> [UInt8] {
        signaturePrefix + Array(staticKey.rawRepresentation)
    }
}
