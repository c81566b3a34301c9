import XCTest

import Pheromones

/// `String(buffer:)`, length-prefixed fields and `hexDump`.
final class ByteBufferHelperTests: XCTestCase {
    func testAStringMadeFromABufferIsItsReadableBytesAndLeavesTheBufferAlone() {
        var buffer = ByteBuffer(string: "skip héllo")
        buffer.moveReaderIndex(forwardBy: 5)
        XCTAssertEqual(String(buffer: buffer), "héllo")
        XCTAssertEqual(buffer.readableBytes, 6)
        XCTAssertEqual(String(buffer: ByteBuffer(bytes: [0x61, 0xff, 0x62])), "a\u{FFFD}b")
    }

    func testLengthPrefixedStringsAndBytesRoundTripForEveryPrefixWidthAndByteOrder() throws {
        for endianness in [Endianness.big, .little] {
            var buffer = ByteBuffer()
            try buffer.writeLengthPrefixedString("héllo", endianness: endianness, as: UInt8.self)
            try buffer.writeLengthPrefixedBytes([1, 2, 3], endianness: endianness, as: UInt16.self)
            try buffer.writeLengthPrefixedString("", endianness: endianness, as: UInt32.self)
            try buffer.writeLengthPrefixed(endianness: endianness, as: UInt64.self) { $0.writeInteger(UInt16(7)) }
            XCTAssertEqual(try buffer.readLengthPrefixedString(endianness: endianness, as: UInt8.self), "héllo")
            XCTAssertEqual(buffer.readLengthPrefixedSlice(endianness: endianness, as: UInt16.self), ByteBuffer(bytes: [1, 2, 3]))
            XCTAssertEqual(try buffer.readLengthPrefixedString(endianness: endianness, as: UInt32.self), "")
            var field = try XCTUnwrap(buffer.readLengthPrefixedSlice(endianness: endianness, as: UInt64.self))
            XCTAssertEqual(field.readInteger(as: UInt16.self), 7)
            XCTAssertEqual(buffer.readableBytes, 0)
        }
    }

    func testAFieldTooLongForItsPrefixIsRefusedAndLeavesTheBufferAsItWas() {
        var buffer = ByteBuffer(string: "kept")
        XCTAssertThrowsError(try buffer.writeLengthPrefixedBytes(Array(repeating: 0, count: 256), as: UInt8.self)) { error in
            XCTAssertEqual(error as? ByteBufferError, .lengthPrefixOverflow(length: 256, maximum: 255))
        }
        XCTAssertEqual(buffer, ByteBuffer(string: "kept"))
        XCTAssertNoThrow(try buffer.writeLengthPrefixedBytes(Array(repeating: 0, count: 255), as: UInt8.self))
    }

    func testAnIncompleteOrInvalidFieldConsumesNothing() throws {
        var complete = ByteBuffer()
        try complete.writeLengthPrefixedString("hello", as: UInt16.self)
        for cut in 0..<complete.readableBytes {
            var partial = try XCTUnwrap(complete.getSlice(at: 0, length: cut))
            XCTAssertNil(try partial.readLengthPrefixedString(as: UInt16.self), "cut at \(cut)")
            XCTAssertEqual(partial.readableBytes, cut)
        }
        // A hostile prefix announcing 4 GiB: nothing is read, nothing allocated for it.
        var hostile = ByteBuffer()
        hostile.writeInteger(UInt32.max)
        XCTAssertNil(hostile.readLengthPrefixedSlice(as: UInt32.self))
        XCTAssertEqual(hostile.readableBytes, 4)

        var invalid = ByteBuffer()
        try invalid.writeLengthPrefixedBytes([0xff, 0xfe], as: UInt8.self)
        XCTAssertThrowsError(try invalid.readLengthPrefixedString(as: UInt8.self))
        XCTAssertEqual(invalid.readableBytes, 3)
    }

    func testThePlainHexDumpShowsEveryByteOrTheEndsAroundWhatItLeftOut() {
        XCTAssertEqual(ByteBuffer(bytes: [0x00, 0x0f, 0xab, 0xff]).hexDump(), "00 0f ab ff")
        XCTAssertEqual(ByteBuffer().hexDump(), "")
        let long = ByteBuffer(bytes: Array(0..<10))
        XCTAssertEqual(long.hexDump(format: .plain(maximumBytes: 4)), "00 01 ... 6 bytes ... 08 09")
    }

    func testTheDetailedHexDumpReadsLikeHexdumpC() {
        let buffer = ByteBuffer(string: "Hello, world!\n\u{1}abcdef")
        XCTAssertEqual(buffer.hexDump(format: .detailed()), """
            00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 01 61  |Hello, world!..a|
            00000010  62 63 64 65 66                                    |bcdef|
            """)
        let long = ByteBuffer(bytes: Array(repeating: 0x41, count: 64))
        let lines = long.hexDump(format: .detailed(maximumBytes: 32)).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[1], "... 32 bytes ...")
        XCTAssertTrue(lines[2].hasPrefix("00000030  41"), String(lines[2]))
    }
}
