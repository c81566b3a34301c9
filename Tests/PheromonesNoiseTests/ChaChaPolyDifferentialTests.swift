import Crypto
import Pheromones
import PheromonesNoise
import XCTest

/// Our transport cipher (OpenSSL's EVP ChaCha20-Poly1305, in place) against an independent one
/// (swift-crypto's `ChaChaPoly`) on random keys, nonces, associated data and lengths, both ways:
/// what one seals the other opens, byte for byte.
final class ChaChaPolyDifferentialTests: XCTestCase {
    private var random = SeededGenerator(seed: 0x6E6F_6973_6570_6572)

    func testWhatOpenSSLSealsSwiftCryptoOpens() throws {
        for length in Self.lengths(using: &random) {
            let (key, nonce, ad, plaintext) = randomMessage(length: length)
            var cipher = try CipherState(key: key)
            cipher.nonce = nonce
            let sealed = try cipher.encrypt(plaintext, ad: ad)
            XCTAssertEqual(cipher.nonce, nonce + 1)
            let box = try ChaChaPoly.SealedBox(
                nonce: try Self.swiftCryptoNonce(nonce), ciphertext: sealed.dropLast(CipherState.tagLength), tag: sealed.suffix(CipherState.tagLength))
            let opened = try ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: ad)
            XCTAssertEqual(Array(opened), plaintext, "\(length) bytes, nonce \(nonce), \(ad.count) bytes of associated data")
        }
    }

    func testWhatSwiftCryptoSealsOpenSSLOpens() throws {
        for length in Self.lengths(using: &random) {
            let (key, nonce, ad, plaintext) = randomMessage(length: length)
            let box = try ChaChaPoly.seal(plaintext, using: SymmetricKey(data: key), nonce: try Self.swiftCryptoNonce(nonce), authenticating: ad)
            var cipher = try CipherState(key: key)
            cipher.nonce = nonce
            XCTAssertEqual(try cipher.decrypt(Array(box.ciphertext) + Array(box.tag), ad: ad), plaintext, "\(length) bytes, nonce \(nonce)")
            XCTAssertEqual(cipher.nonce, nonce + 1)
        }
    }

    func testSealingInPlaceLeavesTheBytesBeforeTheMessageAlone() throws {
        let (key, nonce, ad, plaintext) = randomMessage(length: 1_000)
        var cipher = try CipherState(key: key)
        cipher.nonce = nonce
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        buffer.writeBytes(plaintext)
        try cipher.sealInPlace(&buffer, from: 3, ad: ad)
        XCTAssertEqual(buffer.getBytes(at: 0, length: 3), [1, 2, 3])
        let expected = try ChaChaPoly.seal(plaintext, using: SymmetricKey(data: key), nonce: try Self.swiftCryptoNonce(nonce), authenticating: ad)
        XCTAssertEqual(buffer.getBytes(at: 3, length: buffer.readableBytes - 3), Array(expected.ciphertext) + Array(expected.tag))
    }

    func testAMessageThatFailsItsTagIsNotReleasedAndKeepsTheNonce() throws {
        let (key, nonce, ad, plaintext) = randomMessage(length: 100)
        var sender = try CipherState(key: key)
        sender.nonce = nonce
        var sealed = try sender.encrypt(plaintext, ad: ad)
        sealed[sealed.count - 1] ^= 0x01
        var receiver = try CipherState(key: key)
        receiver.nonce = nonce
        var output = ByteBuffer(bytes: [9])
        let bytes = sealed
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try receiver.open($0, ad: ad, appendingTo: &output) }) { error in
            XCTAssertEqual(error as? NoiseError, .decryptionFailed)
        }
        XCTAssertEqual(receiver.nonce, nonce)
        XCTAssertEqual(Array(output.readableBytesView), [9], "nothing of the forged message became readable")
    }

    // MARK: Helpers

    /// 40 lengths: the edges (empty, one block, the largest transport plaintext) and random ones.
    private static func lengths(using random: inout SeededGenerator) -> [Int] {
        let largest = NoiseHandler.maximumPlaintextLength
        return [0, 1, 63, 64, 65, largest] + (0..<34).map { _ in Int.random(in: 0...largest, using: &random) }
    }

    private func randomMessage(length: Int) -> (key: [UInt8], nonce: UInt64, ad: [UInt8], plaintext: [UInt8]) {
        let nonce = UInt64.random(in: 0..<UInt64.max - 1, using: &random)
        return (randomBytes(32), nonce, randomBytes(Int.random(in: 0...64, using: &random)), randomBytes(length))
    }

    private func randomBytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { region in
            var offset = 0
            while offset < count {
                let word = random.next()
                for shift in 0..<min(8, count - offset) { region[offset + shift] = UInt8(truncatingIfNeeded: word >> (8 * UInt64(shift))) }
                offset += 8
            }
        }
        return bytes
    }

    /// The 12-byte nonce of counter `n`, built independently of ours: 4 zero bytes, `n` little-endian.
    private static func swiftCryptoNonce(_ n: UInt64) throws -> ChaChaPoly.Nonce {
        try ChaChaPoly.Nonce(data: [0, 0, 0, 0] + withUnsafeBytes(of: n.littleEndian) { Array($0) })
    }
}
