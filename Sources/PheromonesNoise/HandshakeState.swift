import Crypto

/// Noise's HandshakeState (section 5.3) for exactly one protocol,
/// `Noise_XX_25519_ChaChaPoly_SHA256`:
/// ```
/// XX:
///   -> e
///   <- e, ee, s, es
///   -> s, se
/// ```
/// It does no I/O: ``writeMessage(payload:)`` returns the bytes to send, ``readMessage(_:)`` the
/// payload received. After the third message ``isComplete`` is true and ``split()`` gives the
/// transport ciphers.
///
/// Not `Sendable`: its cipher holds an OpenSSL context.
package struct HandshakeState {
    /// The protocol name, which starts the handshake hash.
    package static let protocolName = "Noise_XX_25519_ChaChaPoly_SHA256"
    /// The length of a Curve25519 public key (DHLEN).
    package static let keyLength = 32
    /// The largest Noise message.
    package static let maximumMessageLength = 65_535

    /// Which side of the handshake this is.
    package enum Role: Sendable {
        /// Sends the first message.
        case initiator
        /// Answers it.
        case responder
    }

    package let role: Role
    private var symmetric: SymmetricState
    private let localStatic: Curve25519.KeyAgreement.PrivateKey
    private let localEphemeral: Curve25519.KeyAgreement.PrivateKey
    private var remoteEphemeral: Curve25519.KeyAgreement.PublicKey?
    /// The peer's static key, once its message has carried it (the responder's in message 2, the
    /// initiator's in message 3).
    package private(set) var remoteStaticKey: Curve25519.KeyAgreement.PublicKey?
    /// How many of the three messages have been written or read.
    package private(set) var messageIndex = 0

    /// A handshake for `role` with the static key `staticKey` and `prologue` (which both sides
    /// must agree on). `ephemeralKey` is for known-answer tests only: by default a fresh key.
    package init(
        role: Role, prologue: [UInt8], staticKey: Curve25519.KeyAgreement.PrivateKey,
        ephemeralKey: Curve25519.KeyAgreement.PrivateKey = .init()
    ) {
        self.role = role
        self.localStatic = staticKey
        self.localEphemeral = ephemeralKey
        self.symmetric = SymmetricState(protocolName: Self.protocolName)
        symmetric.mixHash(prologue)
    }

    /// Whether all three messages have gone by.
    package var isComplete: Bool { messageIndex == 3 }

    /// Whether the next step is this side writing a message (messages 1 and 3 are the
    /// initiator's, message 2 the responder's).
    package var isWriteTurn: Bool {
        !isComplete && (messageIndex % 2 == 0) == (role == .initiator)
    }

    /// The handshake hash: after the handshake, a value both sides share that names the session.
    package var handshakeHash: [UInt8] { symmetric.handshakeHash }

    /// Writes the next message of the pattern with `payload` (encrypted from message 2 on).
    ///
    /// - Throws: ``NoiseError/invalidHandshakeState(_:)`` when it is not this side's turn to write.
    package mutating func writeMessage(payload: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard isWriteTurn else { throw .invalidHandshakeState("writing message \(messageIndex + 1) as the \(role)") }
        var message: [UInt8] = []
        switch messageIndex {
        case 0:
            message += writeEphemeral()
        case 1:
            message += writeEphemeral()
            try mixDH(localEphemeral, remoteEphemeral)  // ee
            message += try symmetric.encryptAndHash(Array(localStatic.publicKey.rawRepresentation))  // s
            try mixDH(localStatic, remoteEphemeral)  // es, as the responder
        default:
            message += try symmetric.encryptAndHash(Array(localStatic.publicKey.rawRepresentation))  // s
            try mixDH(localStatic, remoteEphemeral)  // se, as the initiator
        }
        message += try symmetric.encryptAndHash(payload)
        guard message.count <= Self.maximumMessageLength else {
            throw .invalidHandshakeState("a handshake message of \(message.count) bytes is larger than Noise allows")
        }
        messageIndex += 1
        return message
    }

    /// Reads the next message of the pattern; returns its payload.
    ///
    /// - Throws: ``NoiseError/malformedHandshakeMessage(_:)`` when it is too short,
    ///   ``NoiseError/decryptionFailed`` when it does not authenticate, ``NoiseError/invalidKey(_:)``
    ///   for an unusable public key, ``NoiseError/invalidHandshakeState(_:)`` when it is not this
    ///   side's turn to read.
    package mutating func readMessage(_ message: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard !isComplete, !isWriteTurn else { throw .invalidHandshakeState("reading message \(messageIndex + 1) as the \(role)") }
        var reader = MessageReader(bytes: message, messageNumber: messageIndex + 1)
        switch messageIndex {
        case 0:
            remoteEphemeral = try readEphemeral(&reader)
        case 1:
            remoteEphemeral = try readEphemeral(&reader)
            try mixDH(localEphemeral, remoteEphemeral)  // ee
            remoteStaticKey = try readStatic(&reader)  // s
            try mixDH(localEphemeral, remoteStaticKey)  // es, as the initiator
        default:
            remoteStaticKey = try readStatic(&reader)  // s
            try mixDH(localEphemeral, remoteStaticKey)  // se, as the responder
        }
        let payload = try symmetric.decryptAndHash(reader.rest(tagged: symmetric.hasKey))
        messageIndex += 1
        return payload
    }

    /// The transport ciphers, once the handshake is complete: this side's sending one first.
    package func split() throws(NoiseError) -> (send: CipherState, receive: CipherState) {
        guard isComplete else { throw .invalidHandshakeState("split before the handshake completed") }
        let (initiatorToResponder, responderToInitiator) = try symmetric.split()
        return role == .initiator ? (initiatorToResponder, responderToInitiator) : (responderToInitiator, initiatorToResponder)
    }

    // MARK: Tokens

    private mutating func writeEphemeral() -> [UInt8] {
        let key = Array(localEphemeral.publicKey.rawRepresentation)
        symmetric.mixHash(key)
        return key
    }

    private mutating func readEphemeral(_ reader: inout MessageReader) throws(NoiseError) -> Curve25519.KeyAgreement.PublicKey {
        let bytes = try reader.take(Self.keyLength, what: "an ephemeral key")
        symmetric.mixHash(bytes)
        return try Self.publicKey(bytes)
    }

    private mutating func readStatic(_ reader: inout MessageReader) throws(NoiseError) -> Curve25519.KeyAgreement.PublicKey {
        let length = Self.keyLength + (symmetric.hasKey ? CipherState.tagLength : 0)
        let encrypted = try reader.take(length, what: "a static key")
        return try Self.publicKey(try symmetric.decryptAndHash(encrypted))
    }

    /// MixKey(DH(local, remote)).
    private mutating func mixDH(_ local: Curve25519.KeyAgreement.PrivateKey, _ remote: Curve25519.KeyAgreement.PublicKey?) throws(NoiseError) {
        guard let remote else { throw .invalidHandshakeState("no remote key for a DH") }
        let secret: [UInt8]
        do {
            secret = try local.sharedSecretFromKeyAgreement(with: remote).withUnsafeBytes { Array($0) }
        } catch {
            throw .invalidKey("the Curve25519 key agreement failed: \(error)")
        }
        // An all-zero result means the peer sent a low-order point, which would make the key
        // independent of our secret: refused, as the Noise spec allows (section 12.1).
        guard secret.contains(where: { $0 != 0 }) else {
            throw .invalidKey("a low-order Curve25519 public key (the shared secret is zero)")
        }
        try symmetric.mixKey(secret)
    }

    private static func publicKey(_ bytes: [UInt8]) throws(NoiseError) -> Curve25519.KeyAgreement.PublicKey {
        do {
            return try Curve25519.KeyAgreement.PublicKey(rawRepresentation: bytes)
        } catch {
            throw .invalidKey("not a Curve25519 public key")
        }
    }
}

/// Takes a handshake message apart, field by field, checking each is there.
private struct MessageReader {
    let bytes: [UInt8]
    let messageNumber: Int
    private var offset = 0

    init(bytes: [UInt8], messageNumber: Int) {
        self.bytes = bytes
        self.messageNumber = messageNumber
    }

    /// The next `count` bytes.
    mutating func take(_ count: Int, what: String) throws(NoiseError) -> [UInt8] {
        guard bytes.count - offset >= count else {
            throw .malformedHandshakeMessage("message \(messageNumber) of \(bytes.count) bytes is too short for \(what)")
        }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// The bytes left (the payload); at least a tag's worth when they are encrypted.
    func rest(tagged: Bool) throws(NoiseError) -> [UInt8] {
        guard !tagged || bytes.count - offset >= CipherState.tagLength else {
            throw .malformedHandshakeMessage("message \(messageNumber) of \(bytes.count) bytes is too short for its payload's tag")
        }
        return Array(bytes[offset...])
    }
}
