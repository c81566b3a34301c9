import Crypto

/// Noise's SymmetricState (section 5.2) for SHA-256: the chaining key, the handshake hash, and the
/// cipher the handshake encrypts with.
///
/// Not `Sendable`: its cipher holds an OpenSSL context.
struct SymmetricState {
    /// SHA-256's output length (HASHLEN).
    static let hashLength = 32

    private var chainingKey: [UInt8]
    /// The handshake hash `h`: everything sent and received so far, hashed.
    private(set) var handshakeHash: [UInt8]
    private var cipher = CipherState()

    /// InitializeSymmetric(protocolName): `h` is the name padded with zeros to 32 bytes when it is
    /// no longer, its hash otherwise; `ck` starts as `h`.
    init(protocolName: String) {
        let name = Array(protocolName.utf8)
        if name.count <= Self.hashLength {
            handshakeHash = name + [UInt8](repeating: 0, count: Self.hashLength - name.count)
        } else {
            handshakeHash = Array(SHA256.hash(data: name))
        }
        chainingKey = handshakeHash
    }

    /// MixKey: derives a new chaining key and cipher key from `inputKeyMaterial` (a DH result).
    mutating func mixKey(_ inputKeyMaterial: [UInt8]) throws(NoiseError) {
        let (newChainingKey, key) = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial)
        chainingKey = newChainingKey
        cipher = try CipherState(key: key)
    }

    /// MixHash: `h = SHA-256(h ‖ data)`.
    mutating func mixHash(_ data: [UInt8]) {
        var hasher = SHA256()
        hasher.update(data: handshakeHash)
        hasher.update(data: data)
        handshakeHash = Array(hasher.finalize())
    }

    /// EncryptAndHash: `plaintext` encrypted with `h` as associated data (or as is, before the
    /// first key), then mixed into `h`.
    mutating func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let ciphertext = try cipher.encrypt(plaintext, ad: handshakeHash)
        mixHash(ciphertext)
        return ciphertext
    }

    /// DecryptAndHash: the inverse of ``encryptAndHash(_:)``.
    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let plaintext = try cipher.decrypt(ciphertext, ad: handshakeHash)
        mixHash(ciphertext)
        return plaintext
    }

    /// Whether the handshake cipher has a key (a static key is then sent encrypted, 16 bytes longer).
    var hasKey: Bool { cipher.hasKey }

    /// Split: the two transport ciphers, initiator-to-responder first.
    func split() throws(NoiseError) -> (initiatorToResponder: CipherState, responderToInitiator: CipherState) {
        let (first, second) = Self.hkdf(chainingKey: chainingKey, inputKeyMaterial: [])
        return (try CipherState(key: first), try CipherState(key: second))
    }

    /// Noise's HKDF with two outputs, on HMAC-SHA256 (section 4.3).
    static func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8]) -> ([UInt8], [UInt8]) {
        let tempKey = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: inputKeyMaterial, using: SymmetricKey(data: chainingKey)))
        let output1 = Array(HMAC<SHA256>.authenticationCode(for: [0x01], using: tempKey))
        let output2 = Array(HMAC<SHA256>.authenticationCode(for: output1 + [0x02], using: tempKey))
        return (output1, output2)
    }
}
