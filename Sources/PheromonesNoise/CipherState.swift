import Crypto
import Pheromones
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Noise's CipherState (section 5.1): a ChaChaPoly key, possibly none yet, and the 64-bit nonce
/// counter of the messages it has encrypted or decrypted.
///
/// The nonce is 4 zero bytes then the counter, little-endian. The counter never wraps: at 2^64−1
/// (reserved by the spec) every operation fails with ``NoiseError/nonceExhausted``.
package struct CipherState: Sendable {
    /// The length of a ChaChaPoly tag.
    package static let tagLength = 16

    private var key: SymmetricKey?
    /// The nonce of the next message (package-visible so that tests can bring it near its limit).
    package var nonce: UInt64 = 0

    /// A cipher with `key` (32 bytes), or none (empty: operations pass the data through).
    package init(key: [UInt8]?) {
        self.key = key.map { SymmetricKey(data: $0) }
    }

    /// Whether a key is set.
    package var hasKey: Bool { key != nil }

    /// Noise's EncryptWithAd: `plaintext` sealed with `ad`, as ciphertext then tag; `plaintext`
    /// itself while there is no key.
    package mutating func encrypt(_ plaintext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        var output = ByteBuffer()
        try withNoiseBytes(of: plaintext) { bytes throws(NoiseError) in try encrypt(bytes, ad: ad, appendingTo: &output) }
        return Array(output.readableBytesView)
    }

    /// EncryptWithAd, appending the ciphertext and tag (or, without a key, `plaintext`) to `output`.
    package mutating func encrypt(_ plaintext: UnsafeRawBufferPointer, ad: [UInt8] = [], appendingTo output: inout ByteBuffer) throws(NoiseError) {
        guard let key else {
            output.writeBytes(plaintext)
            return
        }
        let nonce = try useNonce()
        let box: ChaChaPoly.SealedBox
        do {
            box = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: ad)
        } catch {
            throw .cryptographicFailure("ChaChaPoly seal failed: \(error)")
        }
        box.ciphertext.withUnsafeBytes { _ = output.writeBytes($0) }
        box.tag.withUnsafeBytes { _ = output.writeBytes($0) }
    }

    /// Noise's DecryptWithAd: the plaintext of `ciphertext` (ciphertext then tag), authenticated
    /// with `ad`; `ciphertext` itself while there is no key. A message that fails authentication
    /// does not advance the nonce.
    package mutating func decrypt(_ ciphertext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        var output = ByteBuffer()
        try withNoiseBytes(of: ciphertext) { bytes throws(NoiseError) in try decrypt(bytes, ad: ad, appendingTo: &output) }
        return Array(output.readableBytesView)
    }

    /// DecryptWithAd, appending the plaintext to `output`.
    package mutating func decrypt(_ ciphertext: UnsafeRawBufferPointer, ad: [UInt8] = [], appendingTo output: inout ByteBuffer) throws(NoiseError) {
        guard let key else {
            output.writeBytes(ciphertext)
            return
        }
        guard ciphertext.count >= Self.tagLength else { throw .decryptionFailed }
        guard nonce < UInt64.max else { throw .nonceExhausted }
        let bodyLength = ciphertext.count - Self.tagLength
        let plaintext: Data
        do {
            let box = try ChaChaPoly.SealedBox(
                nonce: Self.nonce(nonce), ciphertext: UnsafeRawBufferPointer(rebasing: ciphertext[..<bodyLength]),
                tag: UnsafeRawBufferPointer(rebasing: ciphertext[bodyLength...]))
            plaintext = try ChaChaPoly.open(box, using: key, authenticating: ad)
        } catch {
            throw .decryptionFailed
        }
        nonce += 1
        plaintext.withUnsafeBytes { _ = output.writeBytes($0) }
    }

    /// The nonce for the next message, the counter advanced past it.
    private mutating func useNonce() throws(NoiseError) -> ChaChaPoly.Nonce {
        guard nonce < UInt64.max else { throw .nonceExhausted }
        let current = try Self.nonce(nonce)
        nonce += 1
        return current
    }

    /// The 12-byte ChaChaPoly nonce of counter `n`: 4 zero bytes, then `n` little-endian.
    private static func nonce(_ n: UInt64) throws(NoiseError) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { bytes[4 + index] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(index))) }
        do {
            return try ChaChaPoly.Nonce(data: bytes)
        } catch {
            throw .cryptographicFailure("ChaChaPoly nonce: \(error)")
        }
    }
}
