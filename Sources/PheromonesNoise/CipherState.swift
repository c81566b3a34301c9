import Pheromones

/// Noise's CipherState (section 5.1): a ChaChaPoly key, possibly none yet, and the 64-bit nonce
/// counter of the messages it has encrypted or decrypted.
///
/// The nonce is 4 zero bytes then the counter, little-endian. The counter never wraps: at 2^64−1
/// (reserved by the spec) every operation fails with ``NoiseError/nonceExhausted``.
///
/// The key lives in a ``ChaChaPolyContext`` (OpenSSL), made once when the key is set: transport
/// messages are then sealed and opened in the caller's buffers, with no allocation per message.
/// Copies of a cipher share that context (each operation sets its whole state, so sharing is
/// harmless); the context is freed with the last copy. Loop-confined: not `Sendable`.
package struct CipherState {
    /// The length of a ChaChaPoly tag.
    package static let tagLength = ChaChaPolyContext.tagLength

    private let context: ChaChaPolyContext?
    /// The nonce of the next message (package-visible so that tests can bring it near its limit).
    package var nonce: UInt64 = 0

    /// A cipher with no key yet: operations pass the data through.
    package init() {
        context = nil
    }

    /// A cipher with `key` (32 bytes).
    ///
    /// - Throws: ``NoiseError/cryptographicFailure(_:)`` when OpenSSL cannot set up the key.
    package init(key: [UInt8]) throws(NoiseError) {
        context = try ChaChaPolyContext(key: key)
    }

    /// Whether a key is set.
    package var hasKey: Bool { context != nil }

    /// Noise's EncryptWithAd: `plaintext` sealed with `ad`, as ciphertext then tag; `plaintext`
    /// itself while there is no key.
    package mutating func encrypt(_ plaintext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        var output = ByteBuffer(capacity: plaintext.count + Self.tagLength)
        output.writeBytes(plaintext)
        try sealInPlace(&output, from: output.readerIndex, ad: ad)
        return Array(output.readableBytesView)
    }

    /// Noise's DecryptWithAd: the plaintext of `ciphertext` (ciphertext then tag), authenticated
    /// with `ad`; `ciphertext` itself while there is no key. A message that fails authentication
    /// does not advance the nonce.
    package mutating func decrypt(_ ciphertext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        var output = ByteBuffer(capacity: ciphertext.count)
        try withNoiseBytes(of: ciphertext) { bytes throws(NoiseError) in try open(bytes, ad: ad, appendingTo: &output) }
        return Array(output.readableBytesView)
    }

    /// EncryptWithAd in place: the bytes of `buffer` from index `start` to its writer index are
    /// encrypted where they are and the tag is appended after them (without a key: nothing changes).
    ///
    /// This is the transport path: the caller writes a message's plaintext straight into the
    /// outgoing buffer, and it becomes ciphertext there.
    package mutating func sealInPlace(_ buffer: inout ByteBuffer, from start: Int, ad: [UInt8] = []) throws(NoiseError) {
        guard let context else { return }
        let length = buffer.writerIndex - start
        guard start >= buffer.readerIndex, length >= 0 else { throw .cryptographicFailure("sealing outside the buffer's readable bytes") }
        let nonce = try useNonce()
        // The tag's room joins the readable bytes first, so that one pointer covers text and tag.
        buffer.reserveCapacity(minimumWritableBytes: Self.tagLength)
        buffer.moveWriterIndex(forwardBy: Self.tagLength)
        let offset = start - buffer.readerIndex
        let sealed: Result<Void, NoiseError> = buffer.withUnsafeMutableReadableBytes { readable in
            let message = UnsafeMutableRawBufferPointer(rebasing: readable[offset...])
            guard let tag = message.baseAddress?.advanced(by: length) else { return .failure(.cryptographicFailure("no room for the tag")) }
            let text = UnsafeMutableRawBufferPointer(rebasing: message.prefix(length))
            return ad.withUnsafeBytes { ad in
                Result { () throws(NoiseError) in try context.seal(nonce: nonce, ad: ad, text: text, tag: tag) }
            }
        }
        if case .failure(let error) = sealed {
            buffer.moveWriterIndex(to: start + length)
            throw error
        }
    }

    /// DecryptWithAd, appending the plaintext of `ciphertext` (ciphertext then tag) to `output`.
    /// The plaintext becomes readable in `output` only once its tag has been checked; a message
    /// that fails leaves `output`'s readable bytes and the nonce as they were.
    package mutating func open(_ ciphertext: UnsafeRawBufferPointer, ad: [UInt8] = [], appendingTo output: inout ByteBuffer) throws(NoiseError) {
        guard let context else {
            output.writeBytes(ciphertext)
            return
        }
        guard ciphertext.count >= Self.tagLength, let base = ciphertext.baseAddress else { throw .decryptionFailed }
        guard nonce < UInt64.max else { throw .nonceExhausted }
        let bodyLength = ciphertext.count - Self.tagLength
        let body = UnsafeRawBufferPointer(start: base, count: bodyLength)
        let nonce = self.nonce
        output.reserveCapacity(minimumWritableBytes: bodyLength)
        let opened: Result<Void, NoiseError> = output.withUnsafeMutableWritableBytes { writable in
            ad.withUnsafeBytes { ad in
                Result { () throws(NoiseError) in
                    try context.open(nonce: nonce, ad: ad, ciphertext: body, tag: base + bodyLength, plaintext: writable.baseAddress)
                }
            }
        }
        try opened.get()
        output.moveWriterIndex(forwardBy: bodyLength)
        self.nonce += 1
    }

    /// The nonce for the next message, the counter advanced past it.
    private mutating func useNonce() throws(NoiseError) -> UInt64 {
        guard nonce < UInt64.max else { throw .nonceExhausted }
        defer { nonce += 1 }
        return nonce
    }
}
