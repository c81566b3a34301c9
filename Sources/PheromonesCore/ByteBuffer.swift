#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#else
#error("ByteBuffer needs a C library for malloc, realloc, free and memcmp.")
#endif

/// A growable, copy-on-write buffer of raw bytes with separate reader and writer indices.
///
/// `ByteBuffer` is the framework's currency type for bytes: every byte read from or written to a socket
/// travels in one. It owns a single contiguous region of `malloc`-allocated memory that is shared between
/// copies (and slices) until one of them mutates it, at which point the mutating copy gets its own memory.
///
/// ### Layout
///
///     +-------------------+------------------+------------------+
///     | discardable bytes |  readable bytes  |  writable bytes  |
///     +-------------------+------------------+------------------+
///     0      <=      readerIndex   <=   writerIndex    <=    capacity
///
/// - `read*` methods consume readable bytes and advance ``readerIndex``; they return `nil` (and leave the
///   buffer untouched) when fewer bytes are readable than requested.
/// - `write*` methods append at ``writerIndex``, growing the storage when needed, and advance ``writerIndex``.
/// - `get*` methods read at an absolute index without moving any index; they return `nil` unless the whole
///   requested range lies within the readable bytes (`readerIndex..<writerIndex`).
/// - `set*` methods write at an absolute index without moving any index, growing the storage when needed.
///
/// ### Slices
/// ``getSlice(at:length:)`` and ``readSlice(length:)`` return buffers that view part of the same memory without
/// copying. A slice's indices start at `0`. Writing into either the slice or its parent copies first if the
/// memory is shared, so neither can observe the other's writes.
///
/// ### Capacity
/// Storage capacities are rounded up to a power of two (clamped to `UInt32.max`), so appending grows the
/// buffer geometrically. The largest supported capacity is `UInt32.max` bytes; asking for more is a
/// precondition failure. `ByteBuffer()` does not allocate; its first write does.
///
/// ### Equality
/// Two buffers are equal when their readable bytes are equal, regardless of indices, capacity or storage.
public struct ByteBuffer: Sendable {
    /// The (possibly shared) memory this buffer views.
    @usableFromInline internal var _storage: _Storage
    /// Reader index, relative to `_sliceLowerBound`.
    @usableFromInline internal var _readerIndex: UInt32
    /// Writer index, relative to `_sliceLowerBound`.
    @usableFromInline internal var _writerIndex: UInt32
    /// First byte of `_storage` that belongs to this buffer (absolute offset into the storage).
    @usableFromInline internal var _sliceLowerBound: UInt32
    /// One past the last byte of `_storage` that belongs to this buffer (absolute offset into the storage).
    @usableFromInline internal var _sliceUpperBound: UInt32

    // Invariant: 0 <= _readerIndex <= _writerIndex <= _sliceUpperBound - _sliceLowerBound
    //            and _sliceLowerBound <= _sliceUpperBound <= _storage.capacity.

    @inlinable
    internal init(
        _storage: _Storage,
        readerIndex: UInt32,
        writerIndex: UInt32,
        sliceLowerBound: UInt32,
        sliceUpperBound: UInt32
    ) {
        self._storage = _storage
        self._readerIndex = readerIndex
        self._writerIndex = writerIndex
        self._sliceLowerBound = sliceLowerBound
        self._sliceUpperBound = sliceUpperBound
    }
}

// MARK: - Storage

extension ByteBuffer {
    /// The reference-counted owner of a `malloc`-allocated block of memory.
    ///
    /// `bytes` and `capacity` are `let`s on purpose: reading a class's `var` costs a dynamic exclusivity check
    /// (`swift_beginAccess`) on every access, which the hot read/write paths must not pay. Growing in place
    /// therefore `realloc`s and hands the memory to a new storage object (see ``reallocated(capacity:)``).
    @usableFromInline
    // `@unchecked Sendable` is safe: `bytes` and `capacity` are immutable, and the memory behind `bytes` is only
    // ever written through a `ByteBuffer` that has just established `isKnownUniquelyReferenced` on its storage
    // reference (copying it otherwise), so the storage is immutable while it is shared between values, and
    // hence between threads. `ownsBytes` is only mutated by `reallocated(capacity:)`, which runs solely on a
    // uniquely referenced storage, and read by `deinit`.
    internal final class _Storage: @unchecked Sendable {
        /// Start of the memory (bound to `UInt8`). Never `nil`, even for the empty storage.
        @usableFromInline internal let bytes: UnsafeMutableRawPointer
        /// Number of usable bytes at `bytes`.
        @usableFromInline internal let capacity: UInt32
        /// Whether `deinit` must free `bytes`; false once ownership moved to a `realloc`ated successor.
        private var ownsBytes: Bool

        @usableFromInline
        internal init(bytesNoCopy bytes: UnsafeMutableRawPointer, capacity: UInt32) {
            self.bytes = bytes
            self.capacity = capacity
            self.ownsBytes = true
        }

        deinit {
            if self.ownsBytes {
                free(self.bytes)
            }
        }

        /// The single zero-capacity storage shared by every buffer that has not allocated yet.
        ///
        /// It is permanently referenced from here, so `isKnownUniquelyReferenced` is never true for it and
        /// every write into a buffer using it allocates fresh storage first.
        @usableFromInline
        internal static let empty: _Storage = _Storage(bytesNoCopy: _Storage.allocateMemory(byteCount: 1), capacity: 0)

        /// Allocates a storage of exactly `capacity` bytes, or returns ``empty`` when `capacity` is zero.
        @usableFromInline
        internal static func allocate(capacity: UInt32) -> _Storage {
            if capacity == 0 {
                return _Storage.empty
            }
            return _Storage(bytesNoCopy: _Storage.allocateMemory(byteCount: Int(capacity)), capacity: capacity)
        }

        /// Allocates a storage of `capacity` bytes and copies `count` bytes from `source` to its start.
        @usableFromInline
        internal static func copying(
            from source: UnsafeRawPointer,
            count: Int,
            capacity: UInt32
        ) -> _Storage {
            assert(count <= Int(capacity))
            let new = _Storage.allocate(capacity: capacity)
            if count > 0 {
                new.bytes.copyMemory(from: source, byteCount: count)
            }
            return new
        }

        /// Grows (or shrinks) the memory with `realloc`, handing ownership to a new storage object.
        ///
        /// - Precondition: `self` is uniquely referenced and not ``empty``. After the call `self` no longer owns
        ///   (and must not be used to access) its memory.
        @usableFromInline
        internal func reallocated(capacity newCapacity: UInt32) -> _Storage {
            assert(self !== _Storage.empty && self.ownsBytes)
            guard let newBytes = realloc(self.bytes, Int(max(newCapacity, 1))) else {
                fatalError("ByteBuffer: out of memory growing to \(newCapacity) bytes")
            }
            self.ownsBytes = false
            newBytes.bindMemory(to: UInt8.self, capacity: Int(newCapacity))
            return _Storage(bytesNoCopy: newBytes, capacity: newCapacity)
        }

        private static func allocateMemory(byteCount: Int) -> UnsafeMutableRawPointer {
            guard let bytes = malloc(byteCount) else {
                fatalError("ByteBuffer: out of memory allocating \(byteCount) bytes")
            }
            bytes.bindMemory(to: UInt8.self, capacity: byteCount)
            return bytes
        }
    }

    /// Rounds a requested capacity up to the next power of two, clamped to `UInt32.max`; `0` stays `0`.
    @usableFromInline
    internal static func _roundUpCapacity(_ capacity: UInt32) -> UInt32 {
        if capacity <= 1 {
            return capacity
        }
        if capacity > 1 << 31 {
            return .max
        }
        return 1 << (32 - (capacity - 1).leadingZeroBitCount)
    }

    /// Converts a requested capacity to `UInt32`, trapping when it is negative or above `UInt32.max`.
    @usableFromInline
    internal static func _checkedCapacity(_ capacity: Int) -> UInt32 {
        precondition(capacity >= 0, "ByteBuffer: capacity must not be negative")
        precondition(capacity <= Int(UInt32.max), "ByteBuffer: capacity cannot exceed UInt32.max bytes")
        return UInt32(truncatingIfNeeded: capacity)
    }
}

// MARK: - Initialisers

extension ByteBuffer {
    /// Creates an empty buffer with capacity `0`.
    ///
    /// This does not allocate: every such buffer shares one static zero-capacity storage, and the first
    /// write allocates.
    @inlinable
    public init() {
        self.init(_storage: _Storage.empty, readerIndex: 0, writerIndex: 0, sliceLowerBound: 0, sliceUpperBound: 0)
    }

    /// Creates an empty buffer that can hold at least `capacity` bytes before it needs to grow.
    ///
    /// The capacity is rounded up to a power of two. A `capacity` of `0` does not allocate.
    ///
    /// - Parameter capacity: The minimum initial capacity, in `0...UInt32.max`.
    /// - Precondition: `capacity` is not negative and not above `UInt32.max`.
    public init(capacity: Int) {
        let capacity = ByteBuffer._roundUpCapacity(ByteBuffer._checkedCapacity(capacity))
        let storage = _Storage.allocate(capacity: capacity)
        self.init(
            _storage: storage,
            readerIndex: 0,
            writerIndex: 0,
            sliceLowerBound: 0,
            sliceUpperBound: storage.capacity
        )
    }

    /// Creates a buffer whose readable bytes are the given bytes.
    ///
    /// - Parameter bytes: The bytes to copy into the new buffer.
    @inlinable
    public init(bytes: some Sequence<UInt8>) {
        self.init(capacity: bytes.underestimatedCount)
        self.writeBytes(bytes)
    }

    /// Creates a buffer whose readable bytes are `count` copies of `byte`.
    ///
    /// - Parameters:
    ///   - byte: The byte to repeat.
    ///   - count: How many times to repeat it; must not be negative.
    public init(repeating byte: UInt8, count: Int) {
        self.init(capacity: count)
        self.writeRepeatingByte(byte, count: count)
    }

    /// Creates a buffer whose readable bytes are the bytes of `view`, sharing its storage (no copy).
    ///
    /// The new buffer's reader index is `0` and its writer index is `view.count`.
    ///
    /// - Parameter view: The view whose bytes the buffer should contain.
    @inlinable
    public init(_ view: ByteBufferView) {
        // The view's range always lies within its buffer's readable bytes, so this cannot fail.
        self = view._buffer.getSlice(at: view.startIndex, length: view.count)!
    }
}

// MARK: - Indices and capacity

extension ByteBuffer {
    /// The index of the next byte to read; `0` for a new buffer or a fresh slice.
    @inlinable
    public var readerIndex: Int {
        Int(self._readerIndex)
    }

    /// The index at which the next byte will be written; the number of bytes written so far for a new buffer.
    @inlinable
    public var writerIndex: Int {
        Int(self._writerIndex)
    }

    /// The number of bytes that can be read: `writerIndex - readerIndex`.
    @inlinable
    public var readableBytes: Int {
        Int(self._writerIndex &- self._readerIndex)
    }

    /// The number of bytes that can be written before the buffer has to grow: `capacity - writerIndex`.
    @inlinable
    public var writableBytes: Int {
        Int(self._sliceUpperBound &- self._sliceLowerBound &- self._writerIndex)
    }

    /// The number of bytes this buffer can hold without growing (its window onto the storage).
    ///
    /// For a slice this is the slice's length, even though the underlying storage may be larger.
    @inlinable
    public var capacity: Int {
        Int(self._sliceUpperBound &- self._sliceLowerBound)
    }

    /// Whether this buffer is the only owner of its storage, so that mutating it will not copy.
    ///
    /// Used to recycle buffers (for example a per-loop receive buffer): when `true`, nobody else can observe
    /// this buffer's bytes and it can be ``clear()``ed and reused without allocating. Always `false` for a
    /// buffer that has not allocated yet. Reading this never copies the storage.
    @inlinable
    package var isStorageUniquelyReferenced: Bool {
        mutating get {
            isKnownUniquelyReferenced(&self._storage)
        }
    }

    /// Moves the reader index by `offset` bytes (a negative offset moves it back).
    ///
    /// - Parameter offset: The distance to move the reader index.
    /// - Precondition: The new reader index lies in `0...writerIndex`.
    @inlinable
    public mutating func moveReaderIndex(forwardBy offset: Int) {
        self.moveReaderIndex(to: self.readerIndex + offset)
    }

    /// Sets the reader index to `index`.
    ///
    /// - Parameter index: The new reader index.
    /// - Precondition: `index` lies in `0...writerIndex`.
    @inlinable
    public mutating func moveReaderIndex(to index: Int) {
        precondition(index >= 0 && index <= self.writerIndex, "ByteBuffer: reader index out of 0...writerIndex")
        self._readerIndex = UInt32(truncatingIfNeeded: index)
    }

    /// Moves the writer index by `offset` bytes (a negative offset moves it back).
    ///
    /// The bytes that become readable must have been written (for example with a `set*` method) before
    /// they are read.
    ///
    /// - Parameter offset: The distance to move the writer index.
    /// - Precondition: The new writer index lies in `readerIndex...capacity`.
    @inlinable
    public mutating func moveWriterIndex(forwardBy offset: Int) {
        self.moveWriterIndex(to: self.writerIndex + offset)
    }

    /// Sets the writer index to `index`.
    ///
    /// The bytes that become readable must have been written (for example with a `set*` method) before
    /// they are read.
    ///
    /// - Parameter index: The new writer index.
    /// - Precondition: `index` lies in `readerIndex...capacity`.
    @inlinable
    public mutating func moveWriterIndex(to index: Int) {
        precondition(
            index >= self.readerIndex && index <= self.capacity,
            "ByteBuffer: writer index out of readerIndex...capacity"
        )
        self._writerIndex = UInt32(truncatingIfNeeded: index)
    }

    /// Ensures the buffer can hold at least `minimumCapacity` bytes in total (regardless of its indices).
    ///
    /// Does nothing when ``capacity`` is already large enough. Otherwise grows the storage to the next power
    /// of two, copying it first if it is shared. All indices and bytes are preserved.
    ///
    /// - Parameter minimumCapacity: The minimum total capacity.
    /// - Precondition: `minimumCapacity` is not above `UInt32.max`.
    @inlinable
    public mutating func reserveCapacity(_ minimumCapacity: Int) {
        if minimumCapacity > self.capacity {
            self._growOrCopy(minimumCapacity: minimumCapacity)
        }
    }

    /// Ensures at least `minimumWritableBytes` bytes can be written without growing.
    ///
    /// - Parameter minimumWritableBytes: The minimum number of writable bytes.
    /// - Precondition: `writerIndex + minimumWritableBytes` is not above `UInt32.max`.
    @inlinable
    public mutating func reserveCapacity(minimumWritableBytes: Int) {
        self.reserveCapacity(self.writerIndex + minimumWritableBytes)
    }

    /// Resets both indices to `0`, keeping the memory when possible.
    ///
    /// If the storage is uniquely referenced, this neither allocates nor frees: the buffer keeps its memory
    /// (a slice gets the whole of it back). If the storage is shared, the buffer gets fresh storage of the
    /// same capacity and the other owners' bytes are left untouched.
    @inlinable
    public mutating func clear() {
        if !isKnownUniquelyReferenced(&self._storage) {
            self._replaceWithFreshStorage(capacity: self._sliceUpperBound &- self._sliceLowerBound)
        }
        self._resetToFullStorage()
    }

    /// Resets both indices to `0` and ensures a capacity of at least `minimumCapacity` bytes.
    ///
    /// Like ``clear()``, a uniquely referenced storage that is large enough is kept as is. Otherwise fresh
    /// storage of at least `minimumCapacity` bytes (rounded up to a power of two) replaces it; the old bytes
    /// are never copied.
    ///
    /// - Parameter minimumCapacity: The minimum capacity after the call.
    /// - Precondition: `minimumCapacity` is in `0...UInt32.max`.
    public mutating func clear(minimumCapacity: Int) {
        let minimumCapacity = ByteBuffer._checkedCapacity(minimumCapacity)
        if !isKnownUniquelyReferenced(&self._storage) || minimumCapacity > self._storage.capacity {
            self._replaceWithFreshStorage(capacity: minimumCapacity)
        }
        self._resetToFullStorage()
    }

    /// Moves the readable bytes to the start of the buffer, so that `readerIndex` becomes `0`.
    ///
    /// Bytes before the reader index are discarded; so are bytes beyond the writer index. When the storage is
    /// shared the readable bytes are copied into fresh storage instead of being moved in place.
    ///
    /// - Returns: `true` if the reader index was not already `0` (and so something was discarded), `false`
    ///   otherwise.
    @discardableResult
    public mutating func discardReadBytes() -> Bool {
        let readerIndex = self._readerIndex
        guard readerIndex > 0 else {
            return false
        }
        let readable = self.readableBytes
        if readable == 0 {
            self._readerIndex = 0
            self._writerIndex = 0
        } else if isKnownUniquelyReferenced(&self._storage) {
            let base = self._storage.bytes + Int(self._sliceLowerBound)
            base.copyMemory(from: base + Int(readerIndex), byteCount: readable)  // memmove: ranges may overlap
            self._readerIndex = 0
            self._writerIndex = UInt32(truncatingIfNeeded: readable)
        } else {
            let capacity = ByteBuffer._roundUpCapacity(self._sliceUpperBound &- self._sliceLowerBound)
            self._storage = _Storage.copying(
                from: self._storage.bytes + Int(self._sliceLowerBound &+ readerIndex),
                count: readable,
                capacity: capacity
            )
            self._sliceLowerBound = 0
            self._sliceUpperBound = self._storage.capacity
            self._readerIndex = 0
            self._writerIndex = UInt32(truncatingIfNeeded: readable)
        }
        return true
    }
}

// MARK: - Internal growth machinery

extension ByteBuffer {
    /// The start of this buffer's window (index `0`) in the storage.
    @inlinable
    internal var _windowStart: UnsafeMutableRawPointer {
        self._storage.bytes + Int(self._sliceLowerBound)
    }

    /// Makes the storage uniquely referenced and at least `minimumCapacity` bytes large, keeping all bytes and
    /// indices. This is the check every write goes through; the slow path is out of line.
    ///
    /// - Precondition: `minimumCapacity` is not above `UInt32.max`.
    @inlinable
    internal mutating func _ensureUniqueStorage(minimumCapacity: Int) {
        if _slowPath(minimumCapacity > self.capacity || !isKnownUniquelyReferenced(&self._storage)) {
            self._growOrCopy(minimumCapacity: minimumCapacity)
        }
    }

    /// Slow path of ``_ensureUniqueStorage(minimumCapacity:)`` and ``reserveCapacity(_:)``.
    @usableFromInline
    internal mutating func _growOrCopy(minimumCapacity: Int) {
        let needed = ByteBuffer._checkedCapacity(minimumCapacity)
        let windowCount = self._sliceUpperBound &- self._sliceLowerBound
        if isKnownUniquelyReferenced(&self._storage) {
            if needed <= windowCount {
                return
            }
            if UInt64(self._sliceLowerBound) + UInt64(needed) <= UInt64(self._storage.capacity) {
                // Nobody else can see the bytes past our window: just widen it.
                self._sliceUpperBound = self._storage.capacity
                return
            }
            let newCapacity = ByteBuffer._roundUpCapacity(needed)
            if self._sliceLowerBound == 0 {
                self._storage = self._storage.reallocated(capacity: newCapacity)
            } else {
                self._storage = _Storage.copying(
                    from: self._windowStart,
                    count: Int(windowCount),
                    capacity: newCapacity
                )
            }
        } else {
            // Shared: copy our window (all of it, so bytes set beyond the writer index survive).
            let newCapacity = ByteBuffer._roundUpCapacity(max(needed, windowCount))
            self._storage = _Storage.copying(from: self._windowStart, count: Int(windowCount), capacity: newCapacity)
        }
        self._sliceLowerBound = 0
        self._sliceUpperBound = self._storage.capacity
    }

    /// Replaces the storage by a fresh one of at least `capacity` bytes, without copying anything.
    @usableFromInline
    internal mutating func _replaceWithFreshStorage(capacity: UInt32) {
        self._storage = _Storage.allocate(capacity: ByteBuffer._roundUpCapacity(capacity))
    }

    /// Makes the window cover the whole storage and resets both indices to `0`.
    @inlinable
    internal mutating func _resetToFullStorage() {
        self._sliceLowerBound = 0
        self._sliceUpperBound = self._storage.capacity
        self._readerIndex = 0
        self._writerIndex = 0
    }

    /// Whether `index..<index + length` lies within the readable bytes.
    @inlinable
    internal func _isReadable(at index: Int, length: Int) -> Bool {
        index >= self.readerIndex && length >= 0 && length <= self.writerIndex &- index
    }
}

// MARK: - Raw access

extension ByteBuffer {
    /// Calls `body` with a pointer to the readable bytes.
    ///
    /// - Warning: The pointer is only valid inside `body`; do not escape it.
    /// - Parameter body: A closure receiving the readable bytes.
    /// - Returns: Whatever `body` returns.
    @inlinable
    public func withUnsafeReadableBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: self._windowStart + Int(self._readerIndex), count: self.readableBytes))
    }

    /// Calls `body` with a mutable pointer to the readable bytes, copying the storage first if it is shared.
    ///
    /// - Warning: The pointer is only valid inside `body`; do not escape it.
    /// - Parameter body: A closure that may read and modify the readable bytes.
    /// - Returns: Whatever `body` returns.
    @inlinable
    public mutating func withUnsafeMutableReadableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) rethrows -> R {
        self._ensureUniqueStorage(minimumCapacity: 0)
        return try body(
            UnsafeMutableRawBufferPointer(start: self._windowStart + Int(self._readerIndex), count: self.readableBytes)
        )
    }

    /// Calls `body` with a mutable pointer to the writable bytes (`writerIndex..<capacity`), copying the storage
    /// first if it is shared. The writer index is not moved; use ``moveWriterIndex(forwardBy:)`` afterwards, or
    /// prefer ``writeWithUnsafeMutableBytes(minimumWritableBytes:_:)``.
    ///
    /// - Warning: The writable bytes are uninitialised; do not read them before writing. The pointer is only
    ///   valid inside `body`; do not escape it.
    /// - Parameter body: A closure that may write into the writable bytes.
    /// - Returns: Whatever `body` returns.
    @inlinable
    public mutating func withUnsafeMutableWritableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws -> R
    ) rethrows -> R {
        self._ensureUniqueStorage(minimumCapacity: 0)
        return try body(
            UnsafeMutableRawBufferPointer(start: self._windowStart + Int(self._writerIndex), count: self.writableBytes)
        )
    }

    /// Ensures at least `minimumWritableBytes` writable bytes, lets `body` write into them, and advances the
    /// writer index by the count `body` returns.
    ///
    /// This is how the socket read path `read(2)`s straight into a buffer without copying.
    ///
    /// - Warning: The pointer is only valid inside `body`; do not escape it. If `body` throws, the writer index
    ///   is not moved.
    /// - Parameters:
    ///   - minimumWritableBytes: The minimum size of the region passed to `body` (it may be larger).
    ///   - body: A closure that writes into the region and returns how many bytes it wrote.
    /// - Returns: The number of bytes written, as returned by `body`.
    /// - Precondition: `body` returns a count in `0...region.count`.
    @discardableResult
    @inlinable
    public mutating func writeWithUnsafeMutableBytes(
        minimumWritableBytes: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) rethrows -> Int {
        precondition(minimumWritableBytes >= 0, "ByteBuffer: minimumWritableBytes must not be negative")
        self._ensureUniqueStorage(minimumCapacity: self.writerIndex + minimumWritableBytes)
        let writable = self.writableBytes
        let written = try body(
            UnsafeMutableRawBufferPointer(start: self._windowStart + Int(self._writerIndex), count: writable)
        )
        precondition(written >= 0 && written <= writable, "ByteBuffer: body reported more bytes than it was given")
        self._writerIndex &+= UInt32(truncatingIfNeeded: written)
        return written
    }
}

// MARK: - Slices

extension ByteBuffer {
    /// Returns a buffer viewing `length` bytes starting at `index`, sharing this buffer's storage (no copy).
    ///
    /// The slice's reader index is `0` and its writer index and capacity are `length`. Writing into either
    /// buffer afterwards copies first, so they never observe each other's writes.
    ///
    /// - Parameters:
    ///   - index: The index of the slice's first byte.
    ///   - length: The number of bytes in the slice.
    /// - Returns: The slice, or `nil` unless `index..<index + length` lies within the readable bytes.
    @inlinable
    public func getSlice(at index: Int, length: Int) -> ByteBuffer? {
        guard self._isReadable(at: index, length: length) else {
            return nil
        }
        let lower = self._sliceLowerBound &+ UInt32(truncatingIfNeeded: index)
        let length = UInt32(truncatingIfNeeded: length)
        return ByteBuffer(
            _storage: self._storage,
            readerIndex: 0,
            writerIndex: length,
            sliceLowerBound: lower,
            sliceUpperBound: lower &+ length
        )
    }

    /// Reads `length` bytes as a slice sharing this buffer's storage (no copy), advancing the reader index.
    ///
    /// - Parameter length: The number of bytes to read.
    /// - Returns: The slice (see ``getSlice(at:length:)``), or `nil` if fewer than `length` bytes are readable.
    @inlinable
    public mutating func readSlice(length: Int) -> ByteBuffer? {
        guard let slice = self.getSlice(at: self.readerIndex, length: length) else {
            return nil
        }
        self._readerIndex &+= UInt32(truncatingIfNeeded: length)
        return slice
    }
}

// MARK: - Equatable, Hashable

extension ByteBuffer: Hashable {
    /// Whether the readable bytes of `lhs` and `rhs` are equal; indices, capacity and storage are ignored.
    @inlinable
    public static func == (lhs: ByteBuffer, rhs: ByteBuffer) -> Bool {
        let count = lhs.readableBytes
        guard count == rhs.readableBytes else {
            return false
        }
        let lhsStart = lhs._windowStart + Int(lhs._readerIndex)
        let rhsStart = rhs._windowStart + Int(rhs._readerIndex)
        if lhsStart == rhsStart || count == 0 {
            return true
        }
        return memcmp(lhsStart, rhsStart, count) == 0
    }

    /// Hashes the readable bytes, consistently with ``==(_:_:)``.
    ///
    /// - Parameter hasher: The hasher to feed.
    @inlinable
    public func hash(into hasher: inout Hasher) {
        self.withUnsafeReadableBytes { hasher.combine(bytes: $0) }
    }
}

// MARK: - Descriptions

extension ByteBuffer: CustomStringConvertible, CustomDebugStringConvertible {
    /// A summary of the indices and capacity, such as
    /// `ByteBuffer { readerIndex: 0, writerIndex: 4, readableBytes: 4, capacity: 8 }`.
    public var description: String {
        "ByteBuffer { readerIndex: \(self.readerIndex), writerIndex: \(self.writerIndex), "
            + "readableBytes: \(self.readableBytes), capacity: \(self.capacity) }"
    }

    /// ``description`` plus the first (at most 64) readable bytes in hex, such as
    /// `ByteBuffer { readerIndex: 0, writerIndex: 2, readableBytes: 2, capacity: 8, bytes: [ca fe] }`;
    /// `...` marks a truncated dump.
    public var debugDescription: String {
        let maxDumped = 64
        let hexDigits: StaticString = "0123456789abcdef"
        var dump = ""
        self.withUnsafeReadableBytes { bytes in
            let shown = bytes.prefix(maxDumped)
            dump.reserveCapacity(shown.count * 3 + 4)
            hexDigits.withUTF8Buffer { digits in
                for (offset, byte) in shown.enumerated() {
                    if offset > 0 {
                        dump.append(" ")
                    }
                    dump.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
                    dump.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0x0f)]))
                }
            }
            if bytes.count > maxDumped {
                dump.append(" ...")
            }
        }
        return "ByteBuffer { readerIndex: \(self.readerIndex), writerIndex: \(self.writerIndex), "
            + "readableBytes: \(self.readableBytes), capacity: \(self.capacity), bytes: [\(dump)] }"
    }
}
