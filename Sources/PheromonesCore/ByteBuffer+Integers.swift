/// The byte order of an integer encoded in a ``ByteBuffer``.
public enum Endianness: Sendable {
    /// Most significant byte first ("network byte order").
    case big
    /// Least significant byte first.
    case little

    #if _endian(big)
    /// The byte order of the machine this code runs on.
    public static let host: Endianness = .big
    #else
    /// The byte order of the machine this code runs on.
    public static let host: Endianness = .little
    #endif
}

extension ByteBuffer {
    /// Appends `integer` in `endianness` byte order and advances the writer index by its size.
    ///
    /// - Parameters:
    ///   - integer: The integer to write.
    ///   - endianness: The byte order to write it in; big endian (network byte order) by default.
    ///   - as: The integer type to write, for call-site clarity (e.g. `as: UInt16.self`).
    /// - Returns: The number of bytes written, `MemoryLayout<T>.size`.
    @discardableResult
    @inlinable
    public mutating func writeInteger<T: FixedWidthInteger>(
        _ integer: T,
        endianness: Endianness = .big,
        as: T.Type = T.self
    ) -> Int {
        let written = self.setInteger(integer, at: self.writerIndex, endianness: endianness)
        self._writerIndex &+= UInt32(truncatingIfNeeded: written)
        return written
    }

    /// Writes `integer` in `endianness` byte order at `index`, growing the buffer if needed. No index moves.
    ///
    /// - Parameters:
    ///   - integer: The integer to write.
    ///   - index: Where to write its first byte.
    ///   - endianness: The byte order to write it in; big endian by default.
    ///   - as: The integer type to write, for call-site clarity.
    /// - Returns: The number of bytes written, `MemoryLayout<T>.size`.
    /// - Precondition: `index` is not negative and `index + MemoryLayout<T>.size` is not above `UInt32.max`.
    @discardableResult
    @inlinable
    public mutating func setInteger<T: FixedWidthInteger>(
        _ integer: T,
        at index: Int,
        endianness: Endianness = .big,
        as: T.Type = T.self
    ) -> Int {
        precondition(index >= 0, "ByteBuffer: index must not be negative")
        let size = MemoryLayout<T>.size
        self._ensureUniqueStorage(minimumCapacity: index + size)
        let value: T
        switch endianness {
        case .big: value = integer.bigEndian
        case .little: value = integer.littleEndian
        }
        self._windowStart.storeBytes(of: value, toByteOffset: index, as: T.self)
        return size
    }

    /// Reads an integer stored in `endianness` byte order and advances the reader index by its size.
    ///
    /// - Parameters:
    ///   - endianness: The byte order it was written in; big endian by default.
    ///   - as: The integer type to read.
    /// - Returns: The integer, or `nil` (leaving the buffer untouched) if fewer than `MemoryLayout<T>.size`
    ///   bytes are readable.
    @inlinable
    public mutating func readInteger<T: FixedWidthInteger>(
        endianness: Endianness = .big,
        as: T.Type = T.self
    ) -> T? {
        guard let integer = self.getInteger(at: self.readerIndex, endianness: endianness, as: T.self) else {
            return nil
        }
        self._readerIndex &+= UInt32(truncatingIfNeeded: MemoryLayout<T>.size)
        return integer
    }

    /// Reads an integer stored in `endianness` byte order at `index` without moving any index.
    ///
    /// - Parameters:
    ///   - index: The index of the integer's first byte.
    ///   - endianness: The byte order it was written in; big endian by default.
    ///   - as: The integer type to read.
    /// - Returns: The integer, or `nil` unless all its bytes lie within the readable bytes.
    @inlinable
    public func getInteger<T: FixedWidthInteger>(
        at index: Int,
        endianness: Endianness = .big,
        as: T.Type = T.self
    ) -> T? {
        guard self._isReadable(at: index, length: MemoryLayout<T>.size) else {
            return nil
        }
        let raw = self._windowStart.loadUnaligned(fromByteOffset: index, as: T.self)
        switch endianness {
        case .big: return T(bigEndian: raw)
        case .little: return T(littleEndian: raw)
        }
    }
}
