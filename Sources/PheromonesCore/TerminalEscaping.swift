extension String {
    /// This text with every character that could act on a terminal or a log escaped: call it on
    /// text that came from the network before printing or logging it.
    ///
    /// A peer chooses its name, its operations and its data. Printed as they are, they could move the
    /// cursor, recolour or clear the terminal, retitle the window (ESC sequences, and the C1 `CSI`
    /// and `OSC` controls), forge a whole log line (CR, LF), hide the rest of one (NUL), or make it
    /// read backwards (bidirectional overrides). Escaped, every such character shows as a visible
    /// sequence instead, and the line stays one line.
    ///
    /// What is escaped, and how:
    /// - backslash as `\\`, so every escape is unambiguous;
    /// - `\0`, `\t`, `\n`, `\r` as themselves;
    /// - every other control, format or separator character (Unicode general categories Cc, Cf, Zl
    ///   and Zp: C0 and C1 controls, DEL, bidirectional embeddings, overrides, isolates and marks,
    ///   zero-width characters, the byte order mark, line and paragraph separators) as `\u{1B}`;
    /// - every byte that is not part of valid UTF-8 as `\xFF`.
    ///
    /// Everything else, printable ASCII and other scripts alike, is kept as it is.
    public var escapedForTerminal: String {
        TerminalEscaping.escape(utf8)
    }

    /// Decodes `bytes` as UTF-8 and escapes it like ``escapedForTerminal``; bytes that are not
    /// valid UTF-8 appear as `\xFF` escapes instead of being replaced or dropped.
    public init<Bytes: Sequence<UInt8>>(escapingForTerminal bytes: Bytes) {
        self = TerminalEscaping.escape(bytes)
    }
}

extension ByteBuffer {
    /// The readable bytes as UTF-8 text, escaped like ``Swift/String/escapedForTerminal``; bytes
    /// that are not valid UTF-8 appear as `\xFF` escapes.
    public var escapedForTerminal: String {
        TerminalEscaping.escape(readableBytesView)
    }
}

/// The escaping itself: one pass over the bytes, validating UTF-8 as it goes.
enum TerminalEscaping {
    static func escape<Bytes: Sequence<UInt8>>(_ input: Bytes) -> String {
        let bytes = Array(input)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let first = bytes[index]
            // Printable ASCII, the common case.
            if first >= 0x20, first < 0x7F {
                if first == UInt8(ascii: "\\") { output.append(first) }
                output.append(first)
                index += 1
                continue
            }
            guard let (scalar, length) = decodeScalar(bytes, at: index) else {
                appendASCII("\\x" + hex(first, digits: 2), to: &output)
                index += 1
                continue
            }
            if needsEscape(scalar) {
                appendASCII(escapeSequence(for: scalar), to: &output)
            } else {
                output.append(contentsOf: bytes[index..<(index + length)])
            }
            index += length
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The scalar whose UTF-8 encoding starts at `index` and its length, or nil when the bytes
    /// there are not valid UTF-8 (an unexpected continuation byte, a truncated or overlong
    /// sequence, a surrogate, or a value above U+10FFFF).
    private static func decodeScalar(_ bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        let first = bytes[index]
        let length: Int
        // The range the second byte must fall in; it excludes overlong forms, surrogates and
        // values above U+10FFFF (RFC 3629, section 4).
        let second: ClosedRange<UInt8>
        switch first {
        case 0x00...0x7F: return (Unicode.Scalar(first), 1)
        case 0xC2...0xDF: (length, second) = (2, 0x80...0xBF)
        case 0xE0: (length, second) = (3, 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, second) = (3, 0x80...0xBF)
        case 0xED: (length, second) = (3, 0x80...0x9F)
        case 0xF0: (length, second) = (4, 0x90...0xBF)
        case 0xF1...0xF3: (length, second) = (4, 0x80...0xBF)
        case 0xF4: (length, second) = (4, 0x80...0x8F)
        default: return nil
        }
        guard bytes.count - index >= length, second.contains(bytes[index + 1]) else { return nil }
        var value = UInt32(first) & (0x7F >> length)
        for offset in 1..<length {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else { return nil }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard let scalar = Unicode.Scalar(value) else { return nil }
        return (scalar, length)
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\\" { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    private static func escapeSequence(for scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\\": return "\\\\"
        case "\0": return "\\0"
        case "\t": return "\\t"
        case "\n": return "\\n"
        case "\r": return "\\r"
        default: return "\\u{" + hex(scalar.value, digits: 2) + "}"
        }
    }

    private static func hex<Value: BinaryInteger>(_ value: Value, digits: Int) -> String {
        let text = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    private static func appendASCII(_ text: String, to output: inout [UInt8]) {
        output.append(contentsOf: text.utf8)
    }
}
