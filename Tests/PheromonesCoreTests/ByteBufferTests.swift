import PheromonesEmbedded
import XCTest

@testable import PheromonesCore

final class ByteBufferTests: XCTestCase {
    // MARK: - Helpers

    /// The address of the first readable byte (or of index 0 when the reader index is 0).
    private func readableBase(_ buffer: ByteBuffer) -> UnsafeRawPointer? {
        buffer.withUnsafeReadableBytes { $0.baseAddress }
    }

    private func readableArray(_ buffer: ByteBuffer) -> [UInt8] {
        buffer.withUnsafeReadableBytes { Array($0) }
    }

    private func roundTrip<T: FixedWidthInteger>(
        _ value: T,
        endianness: Endianness,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        var buffer = ByteBuffer()
        XCTAssertEqual(buffer.writeInteger(value, endianness: endianness), MemoryLayout<T>.size, file: file, line: line)
        XCTAssertEqual(buffer.readableBytes, MemoryLayout<T>.size, file: file, line: line)
        XCTAssertEqual(buffer.getInteger(at: 0, endianness: endianness, as: T.self), value, file: file, line: line)
        XCTAssertEqual(buffer.readInteger(endianness: endianness, as: T.self), value, file: file, line: line)
        XCTAssertEqual(buffer.readableBytes, 0, file: file, line: line)
    }

    private func roundTripEveryValueKind<T: FixedWidthInteger>(_: T.Type, line: UInt = #line) {
        for endianness in [Endianness.big, .little] {
            for value in [T.min, T.max, 0, 1, T.max / 3, T.min / 5, T(truncatingIfNeeded: 0x0123_4567_89AB_CDEF)] {
                self.roundTrip(value, endianness: endianness, line: line)
            }
        }
    }

    // MARK: - Integers

    func testIntegersOfEveryWidthRoundTripInBothByteOrders() {
        self.roundTripEveryValueKind(UInt8.self)
        self.roundTripEveryValueKind(UInt16.self)
        self.roundTripEveryValueKind(UInt32.self)
        self.roundTripEveryValueKind(UInt64.self)
        self.roundTripEveryValueKind(UInt.self)
        self.roundTripEveryValueKind(Int8.self)
        self.roundTripEveryValueKind(Int16.self)
        self.roundTripEveryValueKind(Int32.self)
        self.roundTripEveryValueKind(Int64.self)
        self.roundTripEveryValueKind(Int.self)
    }

    func testIntegersAreLaidOutInTheRequestedByteOrder() {
        var buffer = ByteBuffer()
        buffer.writeInteger(0x0102_0304 as UInt32)
        buffer.writeInteger(0x0102_0304 as UInt32, endianness: .little)
        buffer.writeInteger(0x0A0B, endianness: .big, as: UInt16.self)
        buffer.writeInteger(-2 as Int8)
        XCTAssertEqual(self.readableArray(buffer), [1, 2, 3, 4, 4, 3, 2, 1, 0x0A, 0x0B, 0xFE])
        XCTAssertEqual(buffer.getInteger(at: 0, endianness: .little, as: UInt32.self), 0x0403_0201)
        XCTAssertEqual(
            buffer.getInteger(at: 0, endianness: .host, as: UInt32.self),
            Endianness.host == .big ? 0x0102_0304 : 0x0403_0201
        )
    }

    func testHostEndiannessMatchesTheMachine() {
        let one: UInt16 = 1
        let firstByte = withUnsafeBytes(of: one) { $0[0] }
        XCTAssertEqual(Endianness.host, firstByte == 1 ? .little : .big)
    }

    func testUnalignedIntegersRoundTrip() {
        var buffer = ByteBuffer()
        buffer.writeInteger(7 as UInt8)
        buffer.writeInteger(UInt64.max - 1)
        buffer.writeInteger(Int32.min, endianness: .little)
        XCTAssertEqual(buffer.readInteger(as: UInt8.self), 7)
        XCTAssertEqual(buffer.readInteger(as: UInt64.self), UInt64.max - 1)
        XCTAssertEqual(buffer.readInteger(endianness: .little, as: Int32.self), Int32.min)
    }

    func testReadingAnIntegerFromTooFewBytesReturnsNil() {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        XCTAssertNil(buffer.readInteger(as: UInt32.self))
        XCTAssertNil(buffer.readInteger(as: Int64.self))
        XCTAssertEqual(buffer.readerIndex, 0, "a failed read must not move the reader index")
        XCTAssertEqual(buffer.readInteger(as: UInt16.self), 0x0102)
        XCTAssertNil(buffer.readInteger(as: UInt16.self))
        XCTAssertEqual(buffer.readInteger(as: UInt8.self), 3)
        XCTAssertNil(buffer.readInteger(as: UInt8.self))
        var empty = ByteBuffer()
        XCTAssertNil(empty.readInteger(as: UInt8.self))
    }

    func testGettingAnIntegerOutsideTheReadableBytesReturnsNil() {
        var buffer = ByteBuffer(bytes: [0, 1, 2, 3, 4, 5, 6, 7])
        buffer.moveReaderIndex(forwardBy: 2)
        XCTAssertNil(buffer.getInteger(at: 0, as: UInt16.self), "before the reader index")
        XCTAssertNil(buffer.getInteger(at: -1, as: UInt8.self), "negative index")
        XCTAssertNil(buffer.getInteger(at: 6, as: UInt32.self), "straddles the writer index")
        XCTAssertNil(buffer.getInteger(at: 8, as: UInt8.self), "at the writer index")
        XCTAssertNil(buffer.getInteger(at: Int.max, as: UInt64.self), "absurd index")
        XCTAssertEqual(buffer.getInteger(at: 4, as: UInt32.self), 0x0405_0607)
    }

    func testSettingAnIntegerGrowsTheBufferButMovesNoIndex() {
        var buffer = ByteBuffer()
        XCTAssertEqual(buffer.setInteger(0xDEAD_BEEF as UInt32, at: 12), 4)
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.writerIndex, 0)
        XCTAssertGreaterThanOrEqual(buffer.capacity, 16)
        buffer.moveWriterIndex(to: 16)
        XCTAssertEqual(buffer.getInteger(at: 12, as: UInt32.self), 0xDEAD_BEEF)
    }

    // MARK: - Bytes

    func testReadingBytesFromTooFewBytesReturnsNil() {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        XCTAssertNil(buffer.readBytes(length: 4))
        XCTAssertNil(buffer.readBytes(length: -1))
        XCTAssertNil(buffer.readSlice(length: 4))
        XCTAssertNil(buffer.readString(length: 4))
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.readBytes(length: 0), [])
        XCTAssertEqual(buffer.readBytes(length: 3), [1, 2, 3])
        XCTAssertNil(buffer.readBytes(length: 1))
    }

    func testGettingBytesOutsideTheReadableBytesReturnsNil() {
        var buffer = ByteBuffer(bytes: [1, 2, 3, 4])
        buffer.moveReaderIndex(to: 1)
        XCTAssertNil(buffer.getBytes(at: 0, length: 1))
        XCTAssertNil(buffer.getBytes(at: 1, length: 4))
        XCTAssertNil(buffer.getBytes(at: 2, length: -1))
        XCTAssertEqual(buffer.getBytes(at: 1, length: 3), [2, 3, 4])
        XCTAssertEqual(buffer.getBytes(at: 4, length: 0), [])
    }

    func testWritingContiguousAndNonContiguousSequencesAppendsTheirBytes() {
        var buffer = ByteBuffer()
        XCTAssertEqual(buffer.writeBytes([1, 2, 3] as [UInt8]), 3)
        XCTAssertEqual(buffer.writeBytes((4...6).map { UInt8($0) }[...]), 3)
        // A lazy map has an exact underestimatedCount but no contiguous storage.
        XCTAssertEqual(buffer.writeBytes((0..<1000).lazy.map { UInt8(truncatingIfNeeded: $0) }), 1000)
        // A sequence with underestimatedCount 0 forces growth while iterating.
        var next: UInt8 = 0
        let unknownLength = AnySequence { AnyIterator { () -> UInt8? in
            defer { next &+= 1 }
            return next < 200 ? next : nil
        } }
        XCTAssertEqual(buffer.writeBytes(unknownLength), 200)
        ([7, 8] as [UInt8]).withUnsafeBytes { XCTAssertEqual(buffer.writeBytes($0), 2) }

        var expected: [UInt8] = [1, 2, 3, 4, 5, 6]
        expected += (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        expected += (0..<200).map { UInt8($0) }
        expected += [7, 8]
        XCTAssertEqual(self.readableArray(buffer), expected)
    }

    func testSettingBytesOverwritesWithoutMovingIndices() {
        var buffer = ByteBuffer(bytes: [0, 0, 0, 0])
        XCTAssertEqual(buffer.setBytes([9, 8] as [UInt8], at: 1), 2)
        XCTAssertEqual(self.readableArray(buffer), [0, 9, 8, 0])
        XCTAssertEqual(buffer.setBytes((1...3).lazy.map { UInt8($0) }, at: 3), 3)
        XCTAssertEqual(buffer.writerIndex, 4)
        buffer.moveWriterIndex(forwardBy: 2)
        XCTAssertEqual(self.readableArray(buffer), [0, 9, 8, 1, 2, 3])
    }

    func testRepeatingBytesAreWritten() {
        var buffer = ByteBuffer(repeating: 0xAB, count: 5)
        XCTAssertEqual(self.readableArray(buffer), [0xAB, 0xAB, 0xAB, 0xAB, 0xAB])
        buffer.writeRepeatingByte(1, count: 2)
        buffer.setRepeatingByte(2, count: 1, at: 0)
        XCTAssertEqual(self.readableArray(buffer), [2, 0xAB, 0xAB, 0xAB, 0xAB, 1, 1])
        XCTAssertEqual(ByteBuffer(repeating: 1, count: 0).capacity, 0)
    }

    func testWriteBufferDrainsTheSourceAndWriteImmutableBufferDoesNot() {
        var source = ByteBuffer(bytes: [1, 2, 3, 4])
        _ = source.readInteger(as: UInt8.self)
        var destination = ByteBuffer(string: "x")
        XCTAssertEqual(destination.writeImmutableBuffer(source), 3)
        XCTAssertEqual(source.readableBytes, 3)
        XCTAssertEqual(destination.writeBuffer(&source), 3)
        XCTAssertEqual(source.readableBytes, 0)
        XCTAssertEqual(self.readableArray(destination), [UInt8(ascii: "x"), 2, 3, 4, 2, 3, 4])
    }

    func testWritingABufferIntoItselfDoublesItsContent() {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        buffer.writeImmutableBuffer(buffer)
        XCTAssertEqual(self.readableArray(buffer), [1, 2, 3, 1, 2, 3])
        buffer.writeBytes(buffer.readableBytesView)
        XCTAssertEqual(self.readableArray(buffer), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3])
    }

    // MARK: - Slices

    func testSliceIndicesStartAtZero() {
        var buffer = ByteBuffer(bytes: Array(0..<10))
        buffer.moveReaderIndex(to: 3)
        let slice = buffer.getSlice(at: 5, length: 4)!
        XCTAssertEqual(slice.readerIndex, 0)
        XCTAssertEqual(slice.writerIndex, 4)
        XCTAssertEqual(slice.capacity, 4)
        XCTAssertEqual(slice.getInteger(at: 0, as: UInt8.self), 5)
        XCTAssertEqual(self.readableArray(slice), [5, 6, 7, 8])
        XCTAssertNil(buffer.getSlice(at: 2, length: 1), "before the reader index")
        XCTAssertNil(buffer.getSlice(at: 8, length: 3), "past the writer index")
        XCTAssertNil(buffer.getSlice(at: 3, length: -1), "negative length")
        XCTAssertEqual(buffer.getSlice(at: 10, length: 0)?.readableBytes, 0)
    }

    func testSlicesShareStorageWithTheirParent() {
        var buffer = ByteBuffer(bytes: Array(0..<16))
        let parentBase = self.readableBase(buffer)!
        let slice = buffer.readSlice(length: 6)!
        XCTAssertEqual(buffer.readerIndex, 6)
        XCTAssertEqual(self.readableBase(slice), parentBase, "readSlice must not copy")
        let inner = slice.getSlice(at: 2, length: 3)!
        XCTAssertEqual(self.readableBase(inner), parentBase + 2)
        XCTAssertTrue(inner._storage === buffer._storage)
    }

    func testWritingIntoASliceDoesNotChangeTheParent() {
        var parent = ByteBuffer(bytes: Array(0..<16))
        var slice = parent.getSlice(at: 4, length: 4)!
        // In place, within the slice's window: must copy because the storage is shared.
        slice.setInteger(0xFF as UInt8, at: 0)
        // Beyond the window: must never spill into the parent's bytes 8...
        slice.writeBytes([0xEE, 0xEE, 0xEE] as [UInt8])
        XCTAssertEqual(self.readableArray(slice), [0xFF, 5, 6, 7, 0xEE, 0xEE, 0xEE])
        XCTAssertEqual(self.readableArray(parent), Array(0..<16))
        XCTAssertFalse(slice._storage === parent._storage)
        XCTAssertTrue(parent.isStorageUniquelyReferenced)
    }

    func testWritingIntoTheParentDoesNotChangeASlice() {
        var parent = ByteBuffer(bytes: Array(0..<8))
        let slice = parent.getSlice(at: 0, length: 8)!
        parent.setBytes([0xAA, 0xAA] as [UInt8], at: 0)
        parent.withUnsafeMutableReadableBytes { $0[7] = 0xBB }
        XCTAssertEqual(self.readableArray(slice), Array(0..<8))
        XCTAssertEqual(self.readableArray(parent), [0xAA, 0xAA, 2, 3, 4, 5, 6, 0xBB])
    }

    func testAUniquelyOwnedSliceGrowsWithoutCorruptingAnything() {
        var slice: ByteBuffer
        do {
            let parent = ByteBuffer(bytes: Array(0..<64))
            slice = parent.getSlice(at: 10, length: 4)!
        }
        XCTAssertTrue(slice.isStorageUniquelyReferenced)
        slice.writeBytes(Array(repeating: 0x77, count: 100))
        XCTAssertEqual(self.readableArray(slice), [10, 11, 12, 13] + Array(repeating: 0x77, count: 100))
    }

    // MARK: - Capacity, clear, discard

    func testAnEmptyBufferDoesNotAllocate() {
        let buffer = ByteBuffer()
        XCTAssertEqual(buffer.capacity, 0)
        XCTAssertEqual(buffer.readableBytes, 0)
        XCTAssertEqual(buffer.writableBytes, 0)
        XCTAssertTrue(buffer._storage === ByteBuffer._Storage.empty, "ByteBuffer() must use the shared empty storage")
        XCTAssertTrue(ByteBuffer(capacity: 0)._storage === ByteBuffer._Storage.empty)
        XCTAssertTrue(ByteBuffer(bytes: [] as [UInt8])._storage === ByteBuffer._Storage.empty)
        XCTAssertLessThanOrEqual(MemoryLayout<ByteBuffer>.size, 24)
    }

    func testTheFirstWriteIntoAnEmptyBufferAllocates() {
        var buffer = ByteBuffer()
        XCTAssertFalse(buffer.isStorageUniquelyReferenced)
        buffer.writeInteger(1 as UInt8)
        XCTAssertTrue(buffer.isStorageUniquelyReferenced)
        XCTAssertFalse(buffer._storage === ByteBuffer._Storage.empty)
        XCTAssertEqual(ByteBuffer().capacity, 0, "the shared empty storage must stay empty")
    }

    func testCapacityGrowsToPowersOfTwo() {
        XCTAssertEqual(ByteBuffer(capacity: 100).capacity, 128)
        XCTAssertEqual(ByteBuffer(capacity: 1).capacity, 1)
        var buffer = ByteBuffer()
        var capacities: [Int] = []
        for i in 0..<300 {
            buffer.writeInteger(UInt8(truncatingIfNeeded: i))
            if capacities.last != buffer.capacity {
                capacities.append(buffer.capacity)
            }
        }
        XCTAssertEqual(capacities, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
        XCTAssertEqual(self.readableArray(buffer), (0..<300).map { UInt8(truncatingIfNeeded: $0) })
    }

    func testReserveCapacityKeepsIndicesAndBytes() {
        var buffer = ByteBuffer(bytes: [1, 2, 3, 4])
        _ = buffer.readInteger(as: UInt8.self)
        let copy = buffer
        buffer.reserveCapacity(1000)
        XCTAssertEqual(buffer.capacity, 1024)
        buffer.reserveCapacity(10)
        XCTAssertEqual(buffer.capacity, 1024, "reserving less than the capacity is a no-op")
        buffer.reserveCapacity(minimumWritableBytes: 2000)
        XCTAssertGreaterThanOrEqual(buffer.writableBytes, 2000)
        XCTAssertEqual(buffer.readerIndex, 1)
        XCTAssertEqual(self.readableArray(buffer), [2, 3, 4])
        XCTAssertEqual(self.readableArray(copy), [2, 3, 4])
        XCTAssertEqual(copy.capacity, 4)
    }

    func testClearingUniqueStorageKeepsCapacityAndMemory() {
        var buffer = ByteBuffer(capacity: 64)
        buffer.writeString("hello, world")
        _ = buffer.readBytes(length: 3)
        let capacityBefore = buffer.capacity
        let writerIndex = buffer.writerIndex
        let baseBefore = buffer.withUnsafeMutableWritableBytes { $0.baseAddress! - writerIndex }
        XCTAssertTrue(buffer.isStorageUniquelyReferenced)

        buffer.clear()

        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.writerIndex, 0)
        XCTAssertEqual(buffer.capacity, capacityBefore)
        XCTAssertEqual(self.readableBase(buffer), UnsafeRawPointer(baseBefore), "clear() must not reallocate")
        XCTAssertEqual(buffer.withUnsafeMutableWritableBytes { $0.baseAddress }, baseBefore)
        buffer.clear(minimumCapacity: 32)
        XCTAssertEqual(self.readableBase(buffer), UnsafeRawPointer(baseBefore), "enough capacity: no reallocation")
        buffer.clear(minimumCapacity: 1000)
        XCTAssertEqual(buffer.capacity, 1024)
    }

    func testClearingSharedStorageLeavesTheOtherOwnerIntact() {
        var buffer = ByteBuffer(string: "shared bytes")
        let other = buffer
        buffer.clear()
        XCTAssertEqual(buffer.readableBytes, 0)
        XCTAssertEqual(buffer.capacity, other.capacity)
        XCTAssertFalse(buffer._storage === other._storage)
        buffer.writeString("XXXXXXXXXXXX")
        XCTAssertEqual(other.getString(at: 0, length: other.readableBytes), "shared bytes")
        XCTAssertEqual(buffer.getString(at: 0, length: buffer.readableBytes), "XXXXXXXXXXXX")
    }

    func testDiscardReadBytesMovesTheReadableBytesToTheFront() {
        var buffer = ByteBuffer(bytes: Array(0..<10))
        XCTAssertFalse(buffer.discardReadBytes(), "nothing to discard at reader index 0")
        buffer.moveReaderIndex(forwardBy: 4)
        let base = self.readableBase(buffer)! - 4
        XCTAssertTrue(buffer.discardReadBytes())
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(buffer.writerIndex, 6)
        XCTAssertEqual(self.readableArray(buffer), [4, 5, 6, 7, 8, 9])
        XCTAssertEqual(self.readableBase(buffer), base, "unique storage is compacted in place")

        buffer.moveReaderIndex(to: 6)
        XCTAssertTrue(buffer.discardReadBytes())
        XCTAssertEqual(buffer.writerIndex, 0)
    }

    func testDiscardReadBytesOnSharedStorageLeavesTheOtherOwnerIntact() {
        var buffer = ByteBuffer(bytes: Array(0..<10))
        buffer.moveReaderIndex(forwardBy: 7)
        let other = buffer
        XCTAssertTrue(buffer.discardReadBytes())
        XCTAssertEqual(self.readableArray(buffer), [7, 8, 9])
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertEqual(other.readerIndex, 7)
        XCTAssertEqual(other.getBytes(at: 7, length: 3), [7, 8, 9])
        XCTAssertEqual(self.readableBase(other).map { $0 - 7 }, UnsafeRawPointer(other._storage.bytes))
    }

    func testMovingIndicesWithinBoundsWorks() {
        var buffer = ByteBuffer(capacity: 8)
        buffer.moveWriterIndex(to: 8)
        buffer.moveReaderIndex(to: 8)
        buffer.moveReaderIndex(forwardBy: -3)
        XCTAssertEqual(buffer.readerIndex, 5)
        buffer.moveWriterIndex(forwardBy: -2)
        XCTAssertEqual(buffer.writerIndex, 6)
        XCTAssertEqual(buffer.readableBytes, 1)
        XCTAssertEqual(buffer.writableBytes, 2)
    }

    // MARK: - Raw access

    func testWriteWithUnsafeMutableBytesAdvancesTheWriterIndexByTheReportedCount() {
        var buffer = ByteBuffer()
        let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 100) { pointer -> Int in
            XCTAssertGreaterThanOrEqual(pointer.count, 100)
            for i in 0..<5 {
                pointer[i] = UInt8(i)
            }
            return 5
        }
        XCTAssertEqual(written, 5)
        XCTAssertEqual(self.readableArray(buffer), [0, 1, 2, 3, 4])
        XCTAssertEqual(buffer.capacity, 128)
    }

    func testWriteWithUnsafeMutableBytesThatThrowsDoesNotMoveTheWriterIndex() {
        struct Boom: Error {}
        var buffer = ByteBuffer(bytes: [1])
        XCTAssertThrowsError(try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 4) { _ in throw Boom() })
        XCTAssertEqual(buffer.writerIndex, 1)
    }

    func testMutableAccessCopiesSharedStorage() {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        let copy = buffer
        buffer.withUnsafeMutableReadableBytes { $0[0] = 9 }
        buffer.withUnsafeMutableWritableBytes { _ in () }
        XCTAssertEqual(self.readableArray(buffer), [9, 2, 3])
        XCTAssertEqual(self.readableArray(copy), [1, 2, 3])
    }

    // MARK: - Strings

    func testStringsRoundTripIncludingUnicode() {
        let text = "Grüße, 世界! 🐜🐜 e\u{301}"
        var buffer = ByteBuffer()
        let written = buffer.writeString(text)
        XCTAssertEqual(written, text.utf8.count)
        buffer.writeString("")
        XCTAssertEqual(buffer.getString(at: 0, length: written), text)
        XCTAssertEqual(try buffer.getUTF8ValidatedString(at: 0, length: written), text)
        XCTAssertEqual(buffer.readString(length: 6), "Grüß")
        XCTAssertEqual(try buffer.readUTF8ValidatedString(length: written - 6), "e, 世界! 🐜🐜 e\u{301}")
        XCTAssertEqual(buffer.readableBytes, 0)
        XCTAssertEqual(ByteBuffer(string: text).readableBytesView.elementsEqual(text.utf8), true)
        var setter = ByteBuffer(string: "abc")
        setter.setString("ü", at: 1)
        XCTAssertEqual(setter.readString(length: 3), "aü")
    }

    func testReadingInvalidUTF8AsAValidatedStringThrowsAndKeepsTheReaderIndex() {
        var buffer = ByteBuffer(bytes: [0x61, 0xC3, 0x28, 0x62])  // "a", broken 2-byte sequence, "b"
        XCTAssertThrowsError(try buffer.readUTF8ValidatedString(length: 4)) { error in
            XCTAssertEqual(error as? ByteBufferError, .invalidUTF8)
        }
        XCTAssertEqual(buffer.readerIndex, 0)
        XCTAssertThrowsError(try buffer.getUTF8ValidatedString(at: 1, length: 1))
        XCTAssertNil(try buffer.readUTF8ValidatedString(length: 5), "too few bytes is nil, not an error")
        XCTAssertEqual(try buffer.readUTF8ValidatedString(length: 1), "a")
        // The repairing variant substitutes U+FFFD.
        XCTAssertEqual(buffer.readString(length: 3), "\u{FFFD}(b")
    }

    func testAStringCutInsideAScalarIsRepairedOrRejected() {
        let buffer = ByteBuffer(string: "🐜")
        XCTAssertEqual(buffer.getString(at: 0, length: 2), "\u{FFFD}")
        XCTAssertThrowsError(try buffer.getUTF8ValidatedString(at: 0, length: 2))
    }

    // MARK: - Equality, hashing, descriptions

    func testBuffersWithEqualReadableBytesAreEqualRegardlessOfReaderOffset() {
        var a = ByteBuffer(bytes: [0, 0, 0, 1, 2, 3])
        a.moveReaderIndex(to: 3)
        var b = ByteBuffer(capacity: 1024)
        b.writeBytes([1, 2, 3] as [UInt8])
        let c = ByteBuffer(bytes: [9, 1, 2, 3]).getSlice(at: 1, length: 3)!
        XCTAssertEqual(a, b)
        XCTAssertEqual(a, c)
        XCTAssertEqual(a.hashValue, b.hashValue)
        XCTAssertEqual(a.hashValue, c.hashValue)
        XCTAssertEqual(Set([a, b, c]).count, 1)
        XCTAssertNotEqual(a, ByteBuffer(bytes: [1, 2, 4]))
        XCTAssertNotEqual(a, ByteBuffer(bytes: [1, 2]))
        XCTAssertEqual(ByteBuffer(), ByteBuffer(capacity: 16))
    }

    func testDescriptionsShowIndicesCapacityAndBytes() {
        var buffer = ByteBuffer(capacity: 8)
        buffer.writeInteger(0xCAFE_F00D as UInt32)
        XCTAssertEqual(buffer.description, "ByteBuffer { readerIndex: 0, writerIndex: 4, readableBytes: 4, capacity: 8 }")
        XCTAssertEqual(
            buffer.debugDescription,
            "ByteBuffer { readerIndex: 0, writerIndex: 4, readableBytes: 4, capacity: 8, bytes: [ca fe f0 0d] }"
        )
        let long = ByteBuffer(repeating: 0x0F, count: 100)
        XCTAssertTrue(long.debugDescription.hasSuffix(" 0f 0f ...] }"))
        XCTAssertEqual(long.debugDescription.split(separator: " ").filter { $0.hasPrefix("0f") || $0.hasPrefix("[0f") }.count, 64)
    }

    // MARK: - View

    func testTheReadableBytesViewIsAZeroCopyCollection() {
        var buffer = ByteBuffer(bytes: Array(0..<10))
        buffer.moveReaderIndex(to: 2)
        let view = buffer.readableBytesView
        XCTAssertEqual(view.startIndex, 2)
        XCTAssertEqual(view.endIndex, 10)
        XCTAssertEqual(view.count, 8)
        XCTAssertEqual(view[2], 2)
        XCTAssertEqual(Array(view), Array(2..<10))
        XCTAssertEqual(Array(view.reversed()), Array((2..<10).reversed()))
        let sub = view[4..<7]
        XCTAssertEqual(Array(sub), [4, 5, 6])
        XCTAssertEqual(sub.startIndex, 4)
        XCTAssertEqual(view.firstIndex(of: 7), 7)
        let fromView = ByteBuffer(sub)
        XCTAssertEqual(fromView.readerIndex, 0)
        XCTAssertEqual(self.readableArray(fromView), [4, 5, 6])
        XCTAssertEqual(self.readableBase(fromView), self.readableBase(buffer)! + 2)
        XCTAssertEqual(view.withContiguousStorageIfAvailable { $0.count }, 8)

        buffer.setInteger(0xFF as UInt8, at: 2)
        XCTAssertEqual(view[2], 2, "the view is a snapshot; mutating the buffer copies")
    }

    // MARK: - Model-based randomized test

    func testRandomOperationsMatchAnArrayModel() {
        for seed in [1, 2, 3] as [UInt64] {
            self.runRandomOperations(seed: seed, count: 3000)
        }
    }

    private func randomBytes(_ count: Int, using rng: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    }

    private func encodedBytes<T: FixedWidthInteger>(_ value: T, endianness: Endianness) -> [UInt8] {
        let ordered = endianness == .big ? value.bigEndian : value.littleEndian
        return withUnsafeBytes(of: ordered) { Array($0) }
    }

    // swiftlint:disable:next function_body_length cyclomatic_complexity
    private func runRandomOperations(seed: UInt64, count: Int) {
        var rng = SplitMix64(seed: seed)
        var buffer = ByteBuffer()
        // The model: `model[0..<writerIndex]` are the buffer's bytes, `reader` its reader index.
        var model: [UInt8] = []
        var reader = 0
        // Other owners of (possibly) the same storage, with the readable bytes they must keep seeing.
        var snapshots: [(buffer: ByteBuffer, expected: [UInt8])] = []

        for step in 0..<count {
            let operation = Int.random(in: 0..<20, using: &rng)
            let context = "seed \(seed) step \(step) operation \(operation)"
            let endianness: Endianness = Bool.random(using: &rng) ? .big : .little
            switch operation {
            case 0:
                let value = UInt64.random(in: .min ... .max, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:
                    buffer.writeInteger(UInt8(truncatingIfNeeded: value), endianness: endianness)
                    model += self.encodedBytes(UInt8(truncatingIfNeeded: value), endianness: endianness)
                case 1:
                    buffer.writeInteger(Int16(truncatingIfNeeded: value), endianness: endianness)
                    model += self.encodedBytes(Int16(truncatingIfNeeded: value), endianness: endianness)
                case 2:
                    buffer.writeInteger(UInt32(truncatingIfNeeded: value), endianness: endianness)
                    model += self.encodedBytes(UInt32(truncatingIfNeeded: value), endianness: endianness)
                default:
                    buffer.writeInteger(Int64(bitPattern: value), endianness: endianness)
                    model += self.encodedBytes(Int64(bitPattern: value), endianness: endianness)
                }
            case 1:
                let bytes = self.randomBytes(Int.random(in: 0...40, using: &rng), using: &rng)
                XCTAssertEqual(buffer.writeBytes(bytes), bytes.count, context)
                model += bytes
            case 2:
                let bytes = self.randomBytes(Int.random(in: 0...40, using: &rng), using: &rng)
                XCTAssertEqual(buffer.writeBytes(bytes.lazy.map { $0 }), bytes.count, context)
                model += bytes
            case 3:
                let text = String(repeating: "aü🐜", count: Int.random(in: 0...5, using: &rng))
                XCTAssertEqual(buffer.writeString(text), text.utf8.count, context)
                model += Array(text.utf8)
            case 4:
                let width = [1, 2, 4, 8].randomElement(using: &rng)!
                let available = model.count - reader
                let read: UInt64?
                switch width {
                case 1: read = buffer.readInteger(endianness: endianness, as: UInt8.self).map(UInt64.init)
                case 2: read = buffer.readInteger(endianness: endianness, as: UInt16.self).map(UInt64.init)
                case 4: read = buffer.readInteger(endianness: endianness, as: UInt32.self).map(UInt64.init)
                default: read = buffer.readInteger(endianness: endianness, as: UInt64.self)
                }
                if available < width {
                    XCTAssertNil(read, context)
                } else {
                    var bytes = Array(model[reader..<reader + width])
                    if endianness == .little {
                        bytes.reverse()
                    }
                    XCTAssertEqual(read, bytes.reduce(0) { $0 << 8 | UInt64($1) }, context)
                    reader += width
                }
            case 5:
                let length = Int.random(in: -1...(model.count - reader + 3), using: &rng)
                let read = buffer.readBytes(length: length)
                if length < 0 || length > model.count - reader {
                    XCTAssertNil(read, context)
                } else {
                    XCTAssertEqual(read, Array(model[reader..<reader + length]), context)
                    reader += length
                }
            case 6:
                let length = Int.random(in: 0...(model.count - reader + 2), using: &rng)
                if let slice = buffer.readSlice(length: length) {
                    XCTAssertLessThanOrEqual(length, model.count - reader, context)
                    let expected = Array(model[reader..<reader + length])
                    reader += length
                    var mutated = slice
                    mutated.writeBytes([0xAA, 0xBB] as [UInt8])
                    XCTAssertEqual(self.readableArray(mutated), expected + [0xAA, 0xBB], context)
                    snapshots.append((slice, expected))
                } else {
                    XCTAssertGreaterThan(length, model.count - reader, context)
                }
            case 7:
                let index = Int.random(in: -2...(model.count + 2), using: &rng)
                let length = Int.random(in: -1...10, using: &rng)
                let valid = index >= reader && length >= 0 && index + length <= model.count
                let bytes = buffer.getBytes(at: index, length: length)
                XCTAssertEqual(bytes, valid ? Array(model[index..<index + length]) : nil, context)
                let slice = buffer.getSlice(at: index, length: length)
                XCTAssertEqual(slice.map(self.readableArray), valid ? Array(model[index..<index + length]) : nil, context)
            case 8:
                guard model.count > reader else { break }
                let index = Int.random(in: reader..<model.count, using: &rng)
                let bytes = self.randomBytes(Int.random(in: 0...(model.count - index), using: &rng), using: &rng)
                buffer.setBytes(bytes, at: index)
                model.replaceSubrange(index..<index + bytes.count, with: bytes)
            case 9:
                XCTAssertEqual(buffer.discardReadBytes(), reader > 0, context)
                model.removeFirst(reader)
                reader = 0
            case 10:
                if Int.random(in: 0..<4, using: &rng) == 0 {
                    buffer.clear()
                    model = []
                    reader = 0
                }
            case 11:
                snapshots.append((buffer, Array(model[reader...])))
            case 12:
                buffer.reserveCapacity(Int.random(in: 0...300, using: &rng))
            case 13:
                let target = Int.random(in: 0...model.count, using: &rng)
                buffer.moveReaderIndex(to: target)
                reader = target
            case 14:
                let bytes = self.randomBytes(Int.random(in: 0...50, using: &rng), using: &rng)
                let written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bytes.count) { pointer in
                    pointer.copyBytes(from: bytes)
                    return bytes.count
                }
                XCTAssertEqual(written, bytes.count, context)
                model += bytes
            case 15:
                buffer.withUnsafeMutableReadableBytes { pointer in
                    for i in pointer.indices {
                        pointer[i] ^= 0x5A
                    }
                }
                for i in reader..<model.count {
                    model[i] ^= 0x5A
                }
            case 16:
                // Replace the buffer by a slice of itself; keep the parent around as another owner.
                snapshots.append((buffer, Array(model[reader...])))
                buffer = buffer.getSlice(at: reader, length: model.count - reader)!
                model = Array(model[reader...])
                reader = 0
            case 17:
                let snapshotCount = snapshots.count
                if snapshotCount > 0 {
                    let victim = Int.random(in: 0..<snapshotCount, using: &rng)
                    var other = snapshots[victim].buffer
                    buffer.writeBuffer(&other)
                    model += snapshots[victim].expected
                    XCTAssertEqual(other.readableBytes, 0, context)
                }
            case 18:
                var copy = buffer
                copy.writeInteger(UInt32.max)
                copy.setInteger(0 as UInt8, at: copy.readerIndex)
                if Bool.random(using: &rng) {
                    copy.clear()
                }
            default:
                if snapshots.count > 8 {
                    snapshots.removeFirst(Int.random(in: 0...snapshots.count, using: &rng))
                }
            }

            XCTAssertEqual(buffer.readerIndex, reader, context)
            XCTAssertEqual(buffer.writerIndex, model.count, context)
            XCTAssertGreaterThanOrEqual(buffer.capacity, buffer.writerIndex, context)
            XCTAssertEqual(buffer.writableBytes, buffer.capacity - buffer.writerIndex, context)
            XCTAssertEqual(self.readableArray(buffer), Array(model[reader...]), context)
            XCTAssertEqual(buffer, ByteBuffer(bytes: model[reader...]), context)
            if step % 50 == 0 || operation == 16 || operation == 17 {
                for (other, expected) in snapshots {
                    XCTAssertEqual(self.readableArray(other), expected, "snapshot corrupted: " + context)
                }
            }
        }
    }
}
