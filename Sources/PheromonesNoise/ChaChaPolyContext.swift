import COpenSSL

/// One ChaCha20-Poly1305 key in an OpenSSL `EVP_CIPHER_CTX`, which seals and opens in place.
///
/// swift-crypto's `ChaChaPoly` allocates a `Data` and a `SealedBox` per message and offers no
/// in-place API; OpenSSL's EVP interface works on caller-provided memory. The context is created
/// and keyed once (one per connection direction), then each message only sets its 12-byte nonce
/// and runs: associated data, update (in place or into another buffer), final, tag. Nothing here
/// allocates per message. `deinit` frees the context (and OpenSSL wipes the key) as soon as the
/// last ``CipherState`` holding it goes.
///
/// Loop-confined (not `Sendable`): the context is mutable state of OpenSSL's.
final class ChaChaPolyContext {
    /// The length of a key.
    static let keyLength = 32
    /// The length of a tag.
    static let tagLength = 16
    /// The length of a nonce.
    static let nonceLength = 12

    /// The `EVP_CIPHER_CTX *`.
    private let context: OpaquePointer

    /// A context keyed with `key` (32 bytes).
    ///
    /// - Throws: ``NoiseError/cryptographicFailure(_:)`` for a key of another length or when
    ///   OpenSSL cannot make or key the context.
    init(key: [UInt8]) throws(NoiseError) {
        guard key.count == Self.keyLength else {
            throw .cryptographicFailure("a ChaChaPoly key has \(Self.keyLength) bytes, not \(key.count)")
        }
        let cipher = try ChaChaPolyAlgorithm.cipher()
        guard let context = EVP_CIPHER_CTX_new() else { throw OpenSSLFailure.error("EVP_CIPHER_CTX_new") }
        self.context = context
        // Keyed for encryption; each message then switches direction as it needs (the handshake's
        // cipher both seals and opens). Passing no cipher and no key later keeps both.
        let keyed = key.withUnsafeBufferPointer { key in EVP_CipherInit_ex2(context, cipher, key.baseAddress, nil, 1, nil) }
        guard keyed == 1 else { throw OpenSSLFailure.error("EVP_CipherInit_ex2 (key)") }
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    /// Encrypts `text` in place and writes the 16-byte tag at `tag`.
    ///
    /// - Parameters:
    ///   - nonce: The 64-bit Noise nonce (the 12-byte nonce is 4 zero bytes, then it little-endian).
    ///   - ad: The associated data, authenticated but not encrypted.
    ///   - text: The plaintext, replaced by the ciphertext.
    ///   - tag: Where the tag goes (16 writable bytes, not overlapping `text`).
    func seal(nonce: UInt64, ad: UnsafeRawBufferPointer, text: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawPointer) throws(NoiseError) {
        try start(nonce: nonce, encrypting: true, ad: ad)
        try update(from: UnsafeRawBufferPointer(text), to: text.baseAddress)
        try finish(encrypting: true)
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagLength), tag) == 1 else {
            throw OpenSSLFailure.error("EVP_CIPHER_CTX_ctrl (get tag)")
        }
    }

    /// Decrypts `ciphertext` into `plaintext` (which may be `ciphertext`'s own bytes: in place) and
    /// checks `tag`. When the tag does not match, the bytes written to `plaintext` are zeroed
    /// before this throws: unauthenticated plaintext never leaves, not even in the caller's buffer.
    ///
    /// - Throws: ``NoiseError/decryptionFailed`` when the message does not authenticate,
    ///   ``NoiseError/cryptographicFailure(_:)`` when OpenSSL fails otherwise.
    func open(
        nonce: UInt64, ad: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawPointer,
        plaintext: UnsafeMutableRawPointer?
    ) throws(NoiseError) {
        try start(nonce: nonce, encrypting: false, ad: ad)
        // SET_TAG only reads the 16 bytes (OpenSSL's signature is not const-qualified).
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagLength), UnsafeMutableRawPointer(mutating: tag)) == 1 else {
            throw OpenSSLFailure.error("EVP_CIPHER_CTX_ctrl (set tag)")
        }
        try update(from: ciphertext, to: plaintext)
        do {
            try finish(encrypting: false)
        } catch {
            if let plaintext, ciphertext.count > 0 { plaintext.initializeMemory(as: UInt8.self, repeating: 0, count: ciphertext.count) }
            throw error
        }
    }

    /// Sets the direction and the nonce (which restarts the Poly1305 state) and feeds `ad`.
    private func start(nonce: UInt64, encrypting: Bool, ad: UnsafeRawBufferPointer) throws(NoiseError) {
        let started = withUnsafeTemporaryAllocation(byteCount: Self.nonceLength, alignment: 1) { iv in
            iv.storeBytes(of: UInt32(0), toByteOffset: 0, as: UInt32.self)
            iv.storeBytes(of: nonce.littleEndian, toByteOffset: 4, as: UInt64.self)
            return EVP_CipherInit_ex2(context, nil, nil, iv.baseAddress?.assumingMemoryBound(to: UInt8.self), encrypting ? 1 : 0, nil)
        }
        guard started == 1 else { throw OpenSSLFailure.error("EVP_CipherInit_ex2 (nonce)") }
        guard let base = ad.baseAddress, ad.count > 0 else { return }
        var written: Int32 = 0
        guard let length = Int32(exactly: ad.count),
              EVP_CipherUpdate(context, nil, &written, base.assumingMemoryBound(to: UInt8.self), length) == 1
        else { throw OpenSSLFailure.error("EVP_CipherUpdate (associated data)") }
    }

    /// Runs the cipher over `input`, writing as many bytes at `output`.
    private func update(from input: UnsafeRawBufferPointer, to output: UnsafeMutableRawPointer?) throws(NoiseError) {
        guard let source = input.baseAddress, input.count > 0 else { return }
        var written: Int32 = 0
        guard let output, let length = Int32(exactly: input.count),
              EVP_CipherUpdate(context, output.assumingMemoryBound(to: UInt8.self), &written, source.assumingMemoryBound(to: UInt8.self), length) == 1,
              written == length
        else { throw OpenSSLFailure.error("EVP_CipherUpdate") }
    }

    /// Completes the message: computes the tag, or (decrypting) checks it.
    private func finish(encrypting: Bool) throws(NoiseError) {
        // A stream cipher has nothing left to write; OpenSSL still wants somewhere to write it.
        var spare: UInt8 = 0
        var written: Int32 = 0
        guard EVP_CipherFinal_ex(context, &spare, &written) == 1 else {
            guard encrypting else {
                OpenSSLFailure.clear()
                throw .decryptionFailed
            }
            throw OpenSSLFailure.error("EVP_CipherFinal_ex")
        }
    }
}
