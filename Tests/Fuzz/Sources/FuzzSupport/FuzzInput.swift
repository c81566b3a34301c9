/// The fuzzer's bytes, read front to back as the values a target needs.
///
/// Every read succeeds: past the end of the input, integers read as 0 and byte runs come back
/// shorter (or empty). So any input is valid for every target, and libFuzzer's mutations of a
/// seed change the values read from it rather than making the input unusable.
public struct FuzzInput {
    /// The bytes not read yet.
    public private(set) var remaining: UnsafeRawBufferPointer

    /// Wraps the buffer libFuzzer passes to `LLVMFuzzerTestOneInput`.
    public init(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        remaining = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    }

    /// Whether every byte has been read.
    public var isEmpty: Bool { remaining.isEmpty }

    /// The next byte, or 0 at the end.
    public mutating func byte() -> UInt8 {
        guard let first = remaining.first else { return 0 }
        remaining = UnsafeRawBufferPointer(rebasing: remaining.dropFirst())
        return first
    }

    /// The next `MemoryLayout<T>.size` bytes as a little-endian integer (missing bytes are 0).
    public mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) -> T {
        var value: T = 0
        for shift in stride(from: 0, to: T.bitWidth, by: 8) {
            value |= T(truncatingIfNeeded: byte()) << shift
        }
        return value
    }

    /// The next byte's low bit.
    public mutating func bool() -> Bool { byte() & 1 == 1 }

    /// Up to `count` of the next bytes (fewer at the end of the input).
    public mutating func bytes(upTo count: Int) -> UnsafeRawBufferPointer {
        let taken = UnsafeRawBufferPointer(rebasing: remaining.prefix(max(0, count)))
        remaining = UnsafeRawBufferPointer(rebasing: remaining.dropFirst(taken.count))
        return taken
    }

    /// A run of bytes whose length is the next byte (so up to 255 bytes).
    public mutating func shortBytes() -> [UInt8] {
        let count = Int(byte())
        return Array(bytes(upTo: count))
    }

    /// A string made from ``shortBytes()``, invalid UTF-8 repaired (as Swift strings always are).
    public mutating func shortString() -> String {
        String(decoding: shortBytes(), as: UTF8.self)
    }

    /// All the bytes not read yet; the input is then empty.
    public mutating func rest() -> UnsafeRawBufferPointer {
        let all = remaining
        remaining = UnsafeRawBufferPointer(rebasing: remaining.suffix(0))
        return all
    }
}
