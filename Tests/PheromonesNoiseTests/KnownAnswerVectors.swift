import Foundation
import XCTest

/// The vectors of `Fixtures/noise-xx-vectors.json`, written by `Fixtures/generate.py` with an
/// independent implementation (Python's `noiseprotocol`).
struct KnownAnswerVectors: Decodable {
    struct Side: Decodable {
        var static_private: String
        var static_public: String
        var ephemeral_private: String
        var identity_seed: String
    }

    struct TransportMessage: Decodable {
        var from: String
        var plaintext: String
        var ciphertext: String
    }

    struct Vector: Decodable {
        var name: String
        var `protocol`: String
        var prologue: String
        var pheromones_payloads: Bool
        var initiator: Side
        var responder: Side
        var payloads: [String]
        var messages: [String]
        var handshake_hash: String
        var transport: [TransportMessage]
    }

    var generator: String
    var vectors: [Vector]

    /// The fixture file, decoded.
    static func load() throws -> KnownAnswerVectors {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "noise-xx-vectors", withExtension: "json"), "the fixture is a resource of the test target")
        return try JSONDecoder().decode(KnownAnswerVectors.self, from: Data(contentsOf: url))
    }
}

/// Hexadecimal text to bytes.
func hex(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let high = iterator.next() {
        let low = try XCTUnwrap(iterator.next(), "odd-length hex", file: file, line: line)
        let byte = try XCTUnwrap(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16), "not hex", file: file, line: line)
        bytes.append(byte)
    }
    return bytes
}

/// Bytes to hexadecimal text (for readable failure messages).
func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
