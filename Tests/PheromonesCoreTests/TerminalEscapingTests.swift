import Pheromones
import PheromonesEmbedded
import XCTest

/// `escapedForTerminal`: nothing a peer sends can act on a terminal or split a log line, and the
/// escaping loses nothing (it can be undone exactly).
final class TerminalEscapingTests: XCTestCase {
    func testEscapeSequencesCarriageReturnsNewlinesNulAndTabsBecomeVisible() {
        XCTAssertEqual("\u{1B}[2J\u{1B}]0;owned\u{07}".escapedForTerminal, "\\u{1B}[2J\\u{1B}]0;owned\\u{07}")
        XCTAssertEqual("ok\rforged line\nnext\0hidden\ttab".escapedForTerminal, "ok\\rforged line\\nnext\\0hidden\\ttab")
        XCTAssertEqual("\u{7F}\u{9B}31m\u{85}".escapedForTerminal, "\\u{7F}\\u{9B}31m\\u{85}")
    }

    func testBidirectionalOverridesIsolatesMarksAndInvisibleCharactersBecomeVisible() {
        XCTAssertEqual("user\u{202E}gnp.exe".escapedForTerminal, "user\\u{202E}gnp.exe")
        for scalar in ["\u{200E}", "\u{200F}", "\u{061C}", "\u{202A}", "\u{202B}", "\u{202C}", "\u{202D}",
                       "\u{2066}", "\u{2067}", "\u{2068}", "\u{2069}", "\u{200B}", "\u{FEFF}", "\u{2028}", "\u{2029}"] {
            let escaped = scalar.escapedForTerminal
            XCTAssertTrue(escaped.hasPrefix("\\u{"), "\(scalar.debugDescription) was kept: \(escaped.debugDescription)")
        }
    }

    func testInvalidUTF8BytesBecomeHexEscapesAndTheValidTextAroundThemIsKept() {
        let bytes: [UInt8] = [0x61, 0xFF, 0x62, 0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0xE2, 0x82]
        XCTAssertEqual(String(escapingForTerminal: bytes),
                       "a\\xFFb\\xC0\\xAF\\xED\\xA0\\x80\\xF4\\x90\\x80\\x80\\xE2\\x82")
        XCTAssertEqual(ByteBuffer(bytes: [0xE2, 0x82, 0xAC, 0x80, 0x0A]).escapedForTerminal, "€\\x80\\n")
    }

    func testOrdinaryTextInAnyScriptIsKeptAndBackslashesAreDoubled() {
        XCTAssertEqual("luda yoghurt-2 diudiu_3 {\"add\":1}".escapedForTerminal, "luda yoghurt-2 diudiu_3 {\"add\":1}")
        XCTAssertEqual("Ünïcødé 日本語 Ελληνικά עברית 🐜".escapedForTerminal, "Ünïcødé 日本語 Ελληνικά עברית 🐜")
        XCTAssertEqual("C:\\path\\u{1B}".escapedForTerminal, "C:\\\\path\\\\u{1B}")
    }

    func testRandomBytesNeverLeaveAControlFormatOrSeparatorCharacterAndTheEscapingCanBeUndone() {
        var generator = SplitMix(seed: 0x7E57_E5CA)
        let interesting: [UInt8] = [0x00, 0x07, 0x0A, 0x0D, 0x1B, 0x5C, 0x7F, 0x80, 0x9B, 0xC2, 0xE2, 0xED, 0xF0, 0xF4, 0xFF]
        for _ in 0..<2_000 {
            let count = Int(generator.next() % 40)
            let bytes = (0..<count).map { _ -> UInt8 in
                let value = generator.next()
                return value % 3 == 0 ? interesting[Int(value / 3 % UInt64(interesting.count))] : UInt8(truncatingIfNeeded: value >> 8)
            }
            let escaped = String(escapingForTerminal: bytes)
            for scalar in escaped.unicodeScalars {
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator:
                    XCTFail("U+\(String(scalar.value, radix: 16)) survived escaping \(bytes)")
                default: break
                }
            }
            XCTAssertEqual(Self.unescape(escaped), bytes, "escaping \(bytes) lost information: \(escaped.debugDescription)")
        }
    }

    /// Undoes the escaping: the inverse proves it unambiguous.
    private static func unescape(_ text: String) -> [UInt8]? {
        var output: [UInt8] = []
        var scalars = text.unicodeScalars.makeIterator()
        while let scalar = scalars.next() {
            guard scalar == "\\" else {
                output += Array(String(scalar).utf8)
                continue
            }
            switch scalars.next() {
            case "\\": output.append(0x5C)
            case "0": output.append(0)
            case "t": output.append(0x09)
            case "n": output.append(0x0A)
            case "r": output.append(0x0D)
            case "x":
                guard let high = scalars.next(), let low = scalars.next(),
                      let byte = UInt8(String([Character(high), Character(low)]), radix: 16) else { return nil }
                output.append(byte)
            case "u":
                guard scalars.next() == "{" else { return nil }
                var digits = ""
                while let digit = scalars.next(), digit != "}" { digits.unicodeScalars.append(digit) }
                guard let value = UInt32(digits, radix: 16), let decoded = Unicode.Scalar(value) else { return nil }
                output += Array(String(decoded).utf8)
            default: return nil
            }
        }
        return output
    }
}

/// A small seeded generator, so the random inputs are the same on every run.
private typealias SplitMix = SplitMix64
