import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes the base64 codec that carries an envelope's `data` on the JSON wire (the peer's bytes
// reach `Base64.decode` through `JSONEnvelopeDecoder`).
//
// Input: the bytes to decode (and, as a second test, to encode).
//
// Properties:
// - `Base64.decode` accepts exactly what a plain reference of Go's `base64.StdEncoding` accepts
//   (line breaks dropped anywhere, then whole groups of four, padding only at the end), with the
//   same bytes;
// - its output is never larger than three bytes per four input bytes;
// - `decode(encode(x)) == x`, the encoding is `encodedLength` bytes long, and re-encoding decoded
//   bytes gives the input less its line breaks (up to the unused bits of a last symbol, which Go
//   tolerates: those decode to the same bytes).

func symbolValue(_ byte: UInt8) -> UInt32? {
    switch byte {
    case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(byte - UInt8(ascii: "A"))
    case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(byte - UInt8(ascii: "a")) + 26
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(byte - UInt8(ascii: "0")) + 52
    case UInt8(ascii: "+"): return 62
    case UInt8(ascii: "/"): return 63
    default: return nil
    }
}

/// Go's `StdEncoding.DecodeString`, written the obvious way.
func reference(_ input: UnsafeRawBufferPointer) -> [UInt8]? {
    let symbols = input.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }
    guard symbols.count % 4 == 0 else { return nil }
    var output: [UInt8] = []
    var offset = 0
    while offset < symbols.count {
        let group = symbols[offset..<offset + 4]
        let isLast = offset + 4 == symbols.count
        var padding = 0
        if isLast {
            if group.last == UInt8(ascii: "=") { padding = 1 }
            if padding == 1, group[offset + 2] == UInt8(ascii: "=") { padding = 2 }
        }
        var value: UInt32 = 0
        for symbol in group.prefix(4 - padding) {
            guard let digit = symbolValue(symbol) else { return nil }
            value = value << 6 | digit
        }
        value <<= 6 * UInt32(padding)
        let bytes = [UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
        output += bytes.prefix(3 - padding)
        offset += 4
    }
    return output
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzInput(data, size).remaining

    let decoded = try? Base64.decode(input)
    let expected = reference(input)
    fuzzCheck(decoded.map { Array($0.readableBytesView) } == expected,
              "Base64.decode gives \(String(describing: decoded)), the reference \(String(describing: expected))")
    if let decoded {
        fuzzCheck(decoded.readableBytes <= input.count / 4 * 3, "\(decoded.readableBytes) bytes decoded from \(input.count)")
        var encoded = ByteBuffer()
        Base64.encode(decoded, into: &encoded)
        let symbols = input.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") }
        fuzzCheck(encoded.readableBytes == symbols.count, "re-encoding gives \(encoded.readableBytes) symbols for \(symbols.count)")
        fuzzCheck((try? Base64.decode(encoded)) == decoded, "decoded bytes do not survive a re-encoding")
    }

    var encoded = ByteBuffer()
    Base64.encode(input, into: &encoded)
    fuzzCheck(encoded.readableBytes == Base64.encodedLength(of: input.count), "encodedLength is wrong for \(input.count) bytes")
    let roundTrip = try? Base64.decode(encoded)
    fuzzCheck(roundTrip.map { Array($0.readableBytesView) } == Array(input), "decode(encode(x)) != x")
    return 0
}
