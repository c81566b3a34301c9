/// Errors thrown by ``ByteBuffer`` operations that validate their input.
public enum ByteBufferError: Error, Sendable, Hashable {
    /// The bytes requested as a string are not valid UTF-8.
    case invalidUTF8
    /// A length-prefixed field of `length` bytes does not fit its prefix, which counts up to `maximum`.
    case lengthPrefixOverflow(length: Int, maximum: UInt64)
}

// MARK: - Bytes

extension ByteBuffer {
    /// Appends `bytes` and advances the writer index by their count.
    ///
    /// Contiguous sequences (arrays, buffer pointers, ``ByteBufferView``s, ...) are copied with one `memcpy`;
    /// other sequences are copied byte by byte.
    ///
    /// - Parameter bytes: The bytes to append.
    /// - Returns: The number of bytes written.
    @discardableResult
    @inlinable
    public mutating func writeBytes(_ bytes: some Sequence<UInt8>) -> Int {
        let written = self.setBytes(bytes, at: self.writerIndex)
        self._writerIndex &+= UInt32(truncatingIfNeeded: written)
        return written
    }

    /// Appends the bytes in `bytes` and advances the writer index by their count.
    ///
    /// - Parameter bytes: The memory to copy from.
    /// - Returns: The number of bytes written, `bytes.count`.
    @discardableResult
    @inlinable
    public mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) -> Int {
        let written = self.setBytes(bytes, at: self.writerIndex)
        self._writerIndex &+= UInt32(truncatingIfNeeded: written)
        return written
    }

    /// Appends `count` copies of `byte` and advances the writer index by `count`.
    ///
    /// - Parameters:
    ///   - byte: The byte to repeat.
    ///   - count: How many times to write it.
    /// - Returns: The number of bytes written, `count`.
    /// - Precondition: `count` is not negative.
    @discardableResult
    @inlinable
    public mutating func writeRepeatingByte(_ byte: UInt8, count: Int) -> Int {
        let written = self.setRepeatingByte(byte, count: count, at: self.writerIndex)
        self._writerIndex &+= UInt32(truncatingIfNeeded: written)
        return written
    }

    /// Appends the readable bytes of `other` and advances `other`'s reader index past them.
    ///
    /// - Parameter other: The buffer to drain; its reader index ends up equal to its writer index.
    /// - Returns: The number of bytes written.
    @discardableResult
    @inlinable
    public mutating func writeBuffer(_ other: inout ByteBuffer) -> Int {
        let written = self.writeImmutableBuffer(other)
        other._readerIndex = other._writerIndex
        return written
    }

    /// Appends the readable bytes of `other`, leaving `other` unchanged.
    ///
    /// - Parameter other: The buffer whose readable bytes to copy.
    /// - Returns: The number of bytes written.
    @discardableResult
    @inlinable
    public mutating func writeImmutableBuffer(_ other: ByteBuffer) -> Int {
        // `other` keeps its storage alive during the copy, even when it is shared with `self` (in which case
        // `self` is not unique and copies into fresh storage before writing).
        other.withUnsafeReadableBytes { self.writeBytes($0) }
    }

    /// Writes `bytes` starting at `index`, growing the buffer if needed. No index moves.
    ///
    /// - Parameters:
    ///   - bytes: The bytes to write.
    ///   - index: Where to write the first byte.
    /// - Returns: The number of bytes written.
    /// - Precondition: `index` is not negative and the end of the write is not above `UInt32.max`.
    @discardableResult
    @inlinable
    public mutating func setBytes(_ bytes: some Sequence<UInt8>, at index: Int) -> Int {
        if let written = bytes.withContiguousStorageIfAvailable({ self.setBytes(UnsafeRawBufferPointer($0), at: index) }) {
            return written
        }
        return self._setBytesSlowPath(bytes, at: index)
    }

    /// Copies the bytes in `bytes` to `index`, growing the buffer if needed. No index moves.
    ///
    /// - Parameters:
    ///   - bytes: The memory to copy from; it may overlap this buffer's own bytes.
    ///   - index: Where to write the first byte.
    /// - Returns: The number of bytes written, `bytes.count`.
    /// - Precondition: `index` is not negative and `index + bytes.count` is not above `UInt32.max`.
    @discardableResult
    @inlinable
    public mutating func setBytes(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        precondition(index >= 0, "ByteBuffer: index must not be negative")
        guard let source = bytes.baseAddress, bytes.count > 0 else {
            return 0  // nothing to write: neither grow nor copy shared storage
        }
        let count = bytes.count
        self._ensureUniqueStorage(minimumCapacity: index + count)
        (self._windowStart + index).copyMemory(from: source, byteCount: count)
        return count
    }

    /// Writes `count` copies of `byte` starting at `index`, growing the buffer if needed. No index moves.
    ///
    /// - Parameters:
    ///   - byte: The byte to repeat.
    ///   - count: How many times to write it.
    ///   - index: Where to write the first copy.
    /// - Returns: The number of bytes written, `count`.
    /// - Precondition: `index` and `count` are not negative and `index + count` is not above `UInt32.max`.
    @discardableResult
    @inlinable
    public mutating func setRepeatingByte(_ byte: UInt8, count: Int, at index: Int) -> Int {
        precondition(index >= 0 && count >= 0, "ByteBuffer: index and count must not be negative")
        self._ensureUniqueStorage(minimumCapacity: index + count)
        (self._windowStart + index).initializeMemory(as: UInt8.self, repeating: byte, count: count)
        return count
    }

    /// Writes a sequence without contiguous storage, growing as needed while iterating it.
    @inlinable
    @inline(never)
    internal mutating func _setBytesSlowPath(_ bytes: some Sequence<UInt8>, at index: Int) -> Int {
        precondition(index >= 0, "ByteBuffer: index must not be negative")
        var position = index
        self._ensureUniqueStorage(minimumCapacity: index + bytes.underestimatedCount)
        var limit = self.capacity
        var base = self._windowStart
        for byte in bytes {
            if position == limit {
                self._ensureUniqueStorage(minimumCapacity: position + 1)
                limit = self.capacity
                base = self._windowStart
            }
            base.storeBytes(of: byte, toByteOffset: position, as: UInt8.self)
            position += 1
        }
        return position - index
    }

    /// Reads `length` bytes into a new array and advances the reader index past them.
    ///
    /// - Parameter length: The number of bytes to read.
    /// - Returns: The bytes, or `nil` (leaving the buffer untouched) if fewer than `length` are readable.
    @inlinable
    public mutating func readBytes(length: Int) -> [UInt8]? {
        guard let bytes = self.getBytes(at: self.readerIndex, length: length) else {
            return nil
        }
        self._readerIndex &+= UInt32(truncatingIfNeeded: length)
        return bytes
    }

    /// Copies `length` bytes starting at `index` into a new array without moving any index.
    ///
    /// - Parameters:
    ///   - index: The index of the first byte.
    ///   - length: The number of bytes.
    /// - Returns: The bytes, or `nil` unless `index..<index + length` lies within the readable bytes.
    @inlinable
    public func getBytes(at index: Int, length: Int) -> [UInt8]? {
        guard self._isReadable(at: index, length: length) else {
            return nil
        }
        let source = self._windowStart + index
        return [UInt8](unsafeUninitializedCapacity: length) { destination, initializedCount in
            if length > 0 {
                UnsafeMutableRawPointer(destination.baseAddress!).copyMemory(from: source, byteCount: length)
            }
            initializedCount = length
        }
    }

    /// A zero-copy collection view of the readable bytes.
    ///
    /// The view's indices are this buffer's indices (`readerIndex..<writerIndex`). It keeps the storage alive
    /// and is unaffected by later mutations of the buffer.
    @inlinable
    public var readableBytesView: ByteBufferView {
        ByteBufferView(_buffer: self)
    }
}

// MARK: - Strings

extension ByteBuffer {
    /// Creates a buffer whose readable bytes are the UTF-8 encoding of `string`.
    ///
    /// - Parameter string: The string to encode.
    public init(string: String) {
        self.init(capacity: string.utf8.count)
        self.writeString(string)
    }

    /// Appends the UTF-8 encoding of `string` and advances the writer index by its length.
    ///
    /// - Parameter string: The string to write.
    /// - Returns: The number of bytes written.
    @discardableResult
    @inlinable
    public mutating func writeString(_ string: String) -> Int {
        let written = self.setString(string, at: self.writerIndex)
        self._writerIndex &+= UInt32(truncatingIfNeeded: written)
        return written
    }

    /// Writes the UTF-8 encoding of `string` starting at `index`, growing the buffer if needed. No index moves.
    ///
    /// - Parameters:
    ///   - string: The string to write.
    ///   - index: Where to write the first byte.
    /// - Returns: The number of bytes written.
    /// - Precondition: `index` is not negative and the end of the write is not above `UInt32.max`.
    @discardableResult
    @inlinable
    public mutating func setString(_ string: String, at index: Int) -> Int {
        if let written = string.utf8.withContiguousStorageIfAvailable({
            self.setBytes(UnsafeRawBufferPointer($0), at: index)
        }) {
            return written
        }
        return self._setStringSlowPath(string, at: index)
    }

    /// Writes a string whose UTF-8 is not contiguous in memory (e.g. a bridged string).
    @usableFromInline
    internal mutating func _setStringSlowPath(_ string: String, at index: Int) -> Int {
        var string = string
        return string.withUTF8 { self.setBytes(UnsafeRawBufferPointer($0), at: index) }
    }

    /// Reads `length` bytes as UTF-8 and advances the reader index past them.
    ///
    /// Invalid UTF-8 is repaired with U+FFFD replacement characters; use
    /// ``readUTF8ValidatedString(length:)`` to reject it instead.
    ///
    /// - Parameter length: The number of bytes (not characters) to read.
    /// - Returns: The decoded string, or `nil` (leaving the buffer untouched) if fewer than `length` bytes
    ///   are readable.
    @inlinable
    public mutating func readString(length: Int) -> String? {
        guard let string = self.getString(at: self.readerIndex, length: length) else {
            return nil
        }
        self._readerIndex &+= UInt32(truncatingIfNeeded: length)
        return string
    }

    /// Decodes `length` bytes starting at `index` as UTF-8 without moving any index.
    ///
    /// Invalid UTF-8 is repaired with U+FFFD replacement characters.
    ///
    /// - Parameters:
    ///   - index: The index of the first byte.
    ///   - length: The number of bytes (not characters).
    /// - Returns: The decoded string, or `nil` unless `index..<index + length` lies within the readable bytes.
    @inlinable
    public func getString(at index: Int, length: Int) -> String? {
        guard self._isReadable(at: index, length: length) else {
            return nil
        }
        return String(decoding: self._uint8Buffer(at: index, length: length), as: UTF8.self)
    }

    /// Reads `length` bytes as strictly validated UTF-8 and advances the reader index past them.
    ///
    /// - Parameter length: The number of bytes (not characters) to read.
    /// - Returns: The decoded string, or `nil` (leaving the buffer untouched) if fewer than `length` bytes
    ///   are readable.
    /// - Throws: ``ByteBufferError/invalidUTF8`` if the bytes are not valid UTF-8; the reader index is then
    ///   not moved.
    @inlinable
    public mutating func readUTF8ValidatedString(length: Int) throws -> String? {
        guard let string = try self.getUTF8ValidatedString(at: self.readerIndex, length: length) else {
            return nil
        }
        self._readerIndex &+= UInt32(truncatingIfNeeded: length)
        return string
    }

    /// Decodes `length` bytes starting at `index` as strictly validated UTF-8 without moving any index.
    ///
    /// - Parameters:
    ///   - index: The index of the first byte.
    ///   - length: The number of bytes (not characters).
    /// - Returns: The decoded string, or `nil` unless `index..<index + length` lies within the readable bytes.
    /// - Throws: ``ByteBufferError/invalidUTF8`` if the bytes are not valid UTF-8.
    @inlinable
    public func getUTF8ValidatedString(at index: Int, length: Int) throws -> String? {
        guard self._isReadable(at: index, length: length) else {
            return nil
        }
        guard let string = String(validating: self._uint8Buffer(at: index, length: length), as: UTF8.self) else {
            throw ByteBufferError.invalidUTF8
        }
        return string
    }

    /// The bytes `index..<index + length` of the window, typed as `UInt8` (the memory is bound to `UInt8`).
    @inlinable
    internal func _uint8Buffer(at index: Int, length: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: (self._windowStart + index).assumingMemoryBound(to: UInt8.self), count: length)
    }
}

// MARK: - ByteBufferView

/// A zero-copy, random-access collection of the readable bytes of a ``ByteBuffer``.
///
/// Its indices are the indices of the buffer it was made from, so `view.startIndex == buffer.readerIndex`.
/// It keeps the buffer's storage alive; mutating the buffer afterwards copies the storage instead of changing
/// the view. Slicing a view yields another `ByteBufferView` over the same storage.
public struct ByteBufferView: RandomAccessCollection, Sendable {
    /// A byte.
    public typealias Element = UInt8
    /// A position: an index into the originating buffer.
    public typealias Index = Int
    /// A contiguous sub-range of the view, itself a view.
    public typealias SubSequence = ByteBufferView
    /// The valid indices, `startIndex..<endIndex`.
    public typealias Indices = Range<Int>

    /// The viewed buffer; the view covers exactly its readable bytes (`readerIndex..<writerIndex`).
    @usableFromInline internal var _buffer: ByteBuffer

    @inlinable
    internal init(_buffer: ByteBuffer) {
        self._buffer = _buffer
    }

    /// The index of the first byte (the buffer's reader index).
    @inlinable
    public var startIndex: Int {
        self._buffer.readerIndex
    }

    /// The index one past the last byte (the buffer's writer index).
    @inlinable
    public var endIndex: Int {
        self._buffer.writerIndex
    }

    /// The number of bytes in the view.
    @inlinable
    public var count: Int {
        self._buffer.readableBytes
    }

    /// The valid indices, `startIndex..<endIndex`.
    @inlinable
    public var indices: Range<Int> {
        self.startIndex..<self.endIndex
    }

    /// The index after `i`.
    @inlinable
    public func index(after i: Int) -> Int {
        i + 1
    }

    /// The index before `i`.
    @inlinable
    public func index(before i: Int) -> Int {
        i - 1
    }

    /// The byte at `position`.
    ///
    /// - Precondition: `position` lies in `startIndex..<endIndex`.
    @inlinable
    public subscript(position: Int) -> UInt8 {
        precondition(position >= self.startIndex && position < self.endIndex, "ByteBufferView: index out of range")
        return self._buffer._windowStart.load(fromByteOffset: position, as: UInt8.self)
    }

    /// The bytes in `bounds`, as a view sharing the same storage and indices.
    ///
    /// - Precondition: `bounds` lies within `startIndex...endIndex`.
    @inlinable
    public subscript(bounds: Range<Int>) -> ByteBufferView {
        precondition(
            bounds.lowerBound >= self.startIndex && bounds.upperBound <= self.endIndex,
            "ByteBufferView: range out of bounds"
        )
        var buffer = self._buffer
        buffer._readerIndex = UInt32(truncatingIfNeeded: bounds.lowerBound)
        buffer._writerIndex = UInt32(truncatingIfNeeded: bounds.upperBound)
        return ByteBufferView(_buffer: buffer)
    }

    /// Calls `body` with the view's bytes, which are always contiguous.
    ///
    /// - Parameter body: A closure receiving the bytes; the pointer must not escape it.
    /// - Returns: Whatever `body` returns.
    @inlinable
    public func withContiguousStorageIfAvailable<R>(
        _ body: (UnsafeBufferPointer<UInt8>) throws -> R
    ) rethrows -> R? {
        try body(self._buffer._uint8Buffer(at: self.startIndex, length: self.count))
    }
}
