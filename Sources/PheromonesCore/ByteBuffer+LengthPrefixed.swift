// Length-prefixed fields: an unsigned integer of `Length`'s width, in the given byte order, then that
// many bytes. Writing checks that the length fits the prefix; reading checks that the whole field
// has arrived before it consumes anything, and never allocates for a length it has not received.

extension ByteBuffer {
    /// Appends a length prefix and then whatever `body` writes, and sets the prefix to the number
    /// of bytes `body` wrote.
    ///
    /// - Returns: The number of bytes written, prefix included.
    /// - Throws: ``ByteBufferError/lengthPrefixOverflow(length:maximum:)`` when `body` wrote more
    ///   than `Length` can count; the buffer is then left as it was. Errors `body` throws, likewise.
    @discardableResult
    public mutating func writeLengthPrefixed<Length: FixedWidthInteger & UnsignedInteger>(
        endianness: Endianness = .big, as: Length.Type, _ body: (inout ByteBuffer) throws -> Void
    ) throws -> Int {
        let start = writerIndex
        writeInteger(Length.zero, endianness: endianness, as: Length.self)
        let bodyStart = writerIndex
        do {
            try body(&self)
        } catch {
            moveWriterIndex(to: start)
            throw error
        }
        let length = writerIndex - bodyStart
        guard let prefix = Length(exactly: length) else {
            moveWriterIndex(to: start)
            throw ByteBufferError.lengthPrefixOverflow(length: length, maximum: UInt64(Length.max))
        }
        setInteger(prefix, at: start, endianness: endianness, as: Length.self)
        return writerIndex - start
    }

    /// Appends `bytes` after a length prefix of `Length`'s width.
    ///
    /// - Throws: ``ByteBufferError/lengthPrefixOverflow(length:maximum:)`` when `Length` cannot
    ///   count `bytes`; nothing is written then.
    @discardableResult
    public mutating func writeLengthPrefixedBytes<Length: FixedWidthInteger & UnsignedInteger>(
        _ bytes: some Collection<UInt8>, endianness: Endianness = .big, as: Length.Type
    ) throws -> Int {
        try writeLengthPrefixed(endianness: endianness, as: Length.self) { $0.writeBytes(bytes) }
    }

    /// Appends `string`'s UTF-8 after a length prefix of `Length`'s width.
    ///
    /// - Throws: ``ByteBufferError/lengthPrefixOverflow(length:maximum:)`` when `Length` cannot
    ///   count its bytes; nothing is written then.
    @discardableResult
    public mutating func writeLengthPrefixedString<Length: FixedWidthInteger & UnsignedInteger>(
        _ string: String, endianness: Endianness = .big, as: Length.Type
    ) throws -> Int {
        try writeLengthPrefixed(endianness: endianness, as: Length.self) { $0.writeString(string) }
    }

    /// Reads a length prefix of `Length`'s width and the bytes it counts, as a slice (no copy).
    ///
    /// - Returns: The field's bytes, or nil, having consumed nothing, until the whole field is readable.
    public mutating func readLengthPrefixedSlice<Length: FixedWidthInteger & UnsignedInteger>(
        endianness: Endianness = .big, as: Length.Type
    ) -> ByteBuffer? {
        guard let prefix = getInteger(at: readerIndex, endianness: endianness, as: Length.self),
              let length = Int(exactly: prefix),
              let field = getSlice(at: readerIndex + MemoryLayout<Length>.size, length: length)
        else { return nil }
        moveReaderIndex(forwardBy: MemoryLayout<Length>.size + length)
        return field
    }

    /// Reads a length prefix of `Length`'s width and the strictly validated UTF-8 string it counts.
    ///
    /// - Returns: The string, or nil, having consumed nothing, until the whole field is readable.
    /// - Throws: ``ByteBufferError/invalidUTF8``, having consumed nothing, when the bytes are not UTF-8.
    public mutating func readLengthPrefixedString<Length: FixedWidthInteger & UnsignedInteger>(
        endianness: Endianness = .big, as: Length.Type
    ) throws -> String? {
        let start = readerIndex
        guard var field = readLengthPrefixedSlice(endianness: endianness, as: Length.self) else { return nil }
        do {
            return try field.readUTF8ValidatedString(length: field.readableBytes)
        } catch {
            moveReaderIndex(to: start)
            throw error
        }
    }
}

extension String {
    /// The readable bytes of `buffer` decoded as UTF-8 (invalid sequences repaired with U+FFFD);
    /// `buffer` is not changed.
    public init(buffer: ByteBuffer) {
        self = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes) ?? ""
    }
}
