import Pheromones

/// Standard base64 (RFC 4648 section 4: `A-Z a-z 0-9 + /`, `=` padding), the encoding Go's
/// `encoding/json` uses for `[]byte` fields, written without Foundation.
///
/// Decoding accepts exactly what Go's `base64.StdEncoding` accepts, because that is what decides
/// whether a Go peer's `data` is valid: the standard alphabet only, padding required (the input,
/// less line breaks, is whole 4-symbol groups), `=` only at the very end, `\r` and `\n` ignored
/// anywhere (Go skips them), and non-zero unused bits in the last symbol tolerated (Go's
/// `StdEncoding` is not `Strict()`; its encoder never produces them anyway). Anything else is
/// ``WireError/invalidBase64``.
public enum Base64 {
    /// The encoding's 64 symbols, in value order.
    private static let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    /// The length of the padded encoding of `count` bytes: four symbols per started group of three.
    public static func encodedLength(of count: Int) -> Int {
        (count / 3 + (count % 3 == 0 ? 0 : 1)) * 4
    }

    /// Appends the padded encoding of `bytes` to `buffer`, writing straight into its memory.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into buffer: inout ByteBuffer) {
        let length = encodedLength(of: bytes.count)
        guard length > 0 else { return }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
            alphabet.withUTF8Buffer { table in
                let count = bytes.count
                var input = 0
                var output = 0
                while count - input >= 3 {
                    let group = UInt32(bytes[input]) << 16 | UInt32(bytes[input + 1]) << 8 | UInt32(bytes[input + 2])
                    out[output] = table[Int(group >> 18)]
                    out[output + 1] = table[Int(group >> 12 & 0x3f)]
                    out[output + 2] = table[Int(group >> 6 & 0x3f)]
                    out[output + 3] = table[Int(group & 0x3f)]
                    input += 3
                    output += 4
                }
                let padding = UInt8(ascii: "=")
                switch count - input {
                case 1:
                    let group = UInt32(bytes[input]) << 16
                    out[output] = table[Int(group >> 18)]
                    out[output + 1] = table[Int(group >> 12 & 0x3f)]
                    out[output + 2] = padding
                    out[output + 3] = padding
                case 2:
                    let group = UInt32(bytes[input]) << 16 | UInt32(bytes[input + 1]) << 8
                    out[output] = table[Int(group >> 18)]
                    out[output + 1] = table[Int(group >> 12 & 0x3f)]
                    out[output + 2] = table[Int(group >> 6 & 0x3f)]
                    out[output + 3] = padding
                default:
                    break
                }
            }
            return length
        }
    }

    /// Appends the padded encoding of `source`'s readable bytes to `buffer`.
    public static func encode(_ source: ByteBuffer, into buffer: inout ByteBuffer) {
        source.withUnsafeReadableBytes { encode($0, into: &buffer) }
    }

    /// The padded encoding of `bytes` as a string.
    public static func encodeToString(_ bytes: some Sequence<UInt8>) -> String {
        var buffer = ByteBuffer()
        Array(bytes).withUnsafeBytes { encode($0, into: &buffer) }
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }

    /// Decodes standard, padded base64 (see the type's documentation for exactly what is accepted).
    ///
    /// The output is sized from the input actually present (at most three bytes per four symbols),
    /// so hostile input cannot make this allocate more than it sent.
    ///
    /// - Throws: ``WireError/invalidBase64``.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ByteBuffer {
        guard !bytes.isEmpty else { return ByteBuffer() }
        var buffer = ByteBuffer(capacity: bytes.count / 4 * 3 + 3)
        var valid = true
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { out in
            guard let written = decode(bytes, into: out) else {
                valid = false
                return 0
            }
            return written
        }
        guard valid else { throw .invalidBase64 }
        return buffer
    }

    /// Decodes the readable bytes of `source` (accepting what the raw-bytes overload accepts).
    public static func decode(_ source: ByteBuffer) throws(WireError) -> ByteBuffer {
        try source.withUnsafeReadableBytes { bytes in Result { () throws(WireError) in try decode(bytes) } }.get()
    }

    /// Decodes the UTF-8 of `string` (accepting what the raw-bytes overload accepts).
    public static func decode(_ string: String) throws(WireError) -> ByteBuffer {
        try decode(ByteBuffer(string: string))
    }

    // MARK: Decoding

    /// The value of a symbol, or nil for a byte outside the standard alphabet.
    @inline(__always)
    private static func value(of symbol: UInt8) -> UInt32? {
        switch symbol {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return UInt32(symbol &- UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return UInt32(symbol &- UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(symbol &- UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }

    @inline(__always)
    private static func isLineBreak(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    /// Decodes `input` into `output` (which holds at least `input.count / 4 * 3 + 3` bytes) and
    /// returns the number of bytes written, or nil if `input` is not valid padded base64.
    ///
    /// Mirrors `base64.StdEncoding.Decode`: a group may end early only with the right amount of
    /// padding (`xx==` or `xxx=`), and after the padding only line breaks may follow.
    private static func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        var group: UInt32 = 0
        var symbols = 0
        var written = 0
        var index = 0
        let count = input.count
        while index < count {
            let byte = input[index]
            index += 1
            if let value = value(of: byte) {
                group = group << 6 | value
                symbols += 1
                if symbols == 4 {
                    output[written] = UInt8(truncatingIfNeeded: group >> 16)
                    output[written + 1] = UInt8(truncatingIfNeeded: group >> 8)
                    output[written + 2] = UInt8(truncatingIfNeeded: group)
                    written += 3
                    group = 0
                    symbols = 0
                }
                continue
            }
            if isLineBreak(byte) { continue }
            guard byte == UInt8(ascii: "=") else { return nil }

            // Padding: only after two or three symbols of a group, and "xx" needs a second "=".
            switch symbols {
            case 2:
                while index < count, isLineBreak(input[index]) { index += 1 }
                guard index < count, input[index] == UInt8(ascii: "=") else { return nil }
                index += 1
                output[written] = UInt8(truncatingIfNeeded: group >> 4)
                written += 1
            case 3:
                output[written] = UInt8(truncatingIfNeeded: group >> 10)
                output[written + 1] = UInt8(truncatingIfNeeded: group >> 2)
                written += 2
            default:
                return nil
            }
            while index < count {
                guard isLineBreak(input[index]) else { return nil }
                index += 1
            }
            return written
        }
        // Without padding the input must end on a group boundary.
        return symbols == 0 ? written : nil
    }
}
