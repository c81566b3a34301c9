/// How ``ByteBuffer/hexDump(format:)`` lays the bytes out.
public enum HexDumpFormat: Sendable, Hashable {
    /// `01 02 ff`: the bytes in hex separated by spaces; past `maximumBytes`, the first and the last
    /// half of that many, with the number left out between them.
    case plain(maximumBytes: Int = .max)
    /// As `hexdump -C` prints: the offset, sixteen bytes in hex in two groups of eight, and the
    /// same bytes as ASCII (`.` for the unprintable); past `maximumBytes`, the first and the last
    /// half of that many lines' worth, with the number left out between them.
    case detailed(maximumBytes: Int = .max)
}

extension ByteBuffer {
    /// The readable bytes in hex, for logs and test failures. Made only when asked: nothing here
    /// runs on a message's path.
    public func hexDump(format: HexDumpFormat = .plain()) -> String {
        let bytes = readableBytesView
        switch format {
        case .plain(let maximum):
            return Self.elided(Array(bytes), maximum: maximum, unit: 1) { part, _ in
                part.map(Self.hex).joined(separator: " ")
            }
        case .detailed(let maximum):
            return Self.elided(Array(bytes), maximum: maximum, unit: 16) { part, offset in
                Self.detailedLines(part, startingAt: offset)
            }
        }
    }

    /// `render` of all of `bytes`, or of its first and last `maximum / 2` bytes (rounded to whole
    /// `unit`s) around a line saying how many were left out.
    private static func elided(
        _ bytes: [UInt8], maximum: Int, unit: Int, render: (ArraySlice<UInt8>, Int) -> String
    ) -> String {
        guard bytes.count > max(maximum, 0) else { return render(bytes[...], 0) }
        let half = max(maximum, 0) / 2 / unit * unit
        let tailStart = (bytes.count - half) / unit * unit
        let head = render(bytes[..<half], 0)
        let tail = render(bytes[tailStart...], tailStart)
        let separator = unit == 1 ? " " : "\n"
        return [head, "... \(tailStart - half) bytes ...", tail].filter { !$0.isEmpty }.joined(separator: separator)
    }

    /// `hexdump -C` lines for `bytes`, whose first byte is at `offset`.
    private static func detailedLines(_ bytes: ArraySlice<UInt8>, startingAt offset: Int) -> String {
        var lines: [String] = []
        var start = bytes.startIndex
        while start < bytes.endIndex {
            let line = bytes[start..<min(start + 16, bytes.endIndex)]
            let hexColumns = (0..<16).map { index in
                index < line.count ? hex(line[line.startIndex + index]) : "  "
            }
            let hexPart = hexColumns[0..<8].joined(separator: " ") + "  " + hexColumns[8..<16].joined(separator: " ")
            let ascii = String(line.map { (0x20...0x7e).contains($0) ? Character(Unicode.Scalar($0)) : "." })
            let position = offset + (start - bytes.startIndex)
            lines.append("\(hexOffset(position))  \(hexPart)  |\(ascii)|")
            start = line.endIndex
        }
        return lines.joined(separator: "\n")
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
    }

    private static func hexOffset(_ offset: Int) -> String {
        let text = String(offset, radix: 16)
        return String(repeating: "0", count: max(0, 8 - text.count)) + text
    }
}
