import NIOCore

/// NIO's buffers, allocated once; the operations reuse their memory.
final class NIOBuffers {
    private var scratch = ByteBuffer()
    private var source = ByteBuffer(repeating: 0x61, count: 64 * 1024)
    private var target = ByteBuffer()

    init() {
        scratch.reserveCapacity(64 * 1024)
        target.reserveCapacity(64 * 1024)
    }

    /// Writes `count` UInt8, UInt16, UInt32 and UInt64 values, reads them back, returns their sum.
    func integers(count: Int) -> UInt64 {
        scratch.clear()
        for value in 0..<count {
            scratch.writeInteger(UInt8(truncatingIfNeeded: value))
            scratch.writeInteger(UInt16(truncatingIfNeeded: value))
            scratch.writeInteger(UInt32(truncatingIfNeeded: value), endianness: .little)
            scratch.writeInteger(UInt64(truncatingIfNeeded: value))
        }
        var sum: UInt64 = 0
        for _ in 0..<count {
            sum &+= UInt64(scratch.readInteger(as: UInt8.self)!)
            sum &+= UInt64(scratch.readInteger(as: UInt16.self)!)
            sum &+= UInt64(scratch.readInteger(endianness: .little, as: UInt32.self)!)
            sum &+= scratch.readInteger(as: UInt64.self)!
        }
        return sum
    }

    /// Reads `count` slices of `length` bytes from one buffer and appends each to another.
    func slices(count: Int, length: Int) -> Int {
        source.moveReaderIndex(to: 0)
        target.clear()
        for _ in 0..<count {
            let slice = source.readSlice(length: length)!
            target.writeImmutableBuffer(slice)
        }
        return target.readableBytes
    }
}
