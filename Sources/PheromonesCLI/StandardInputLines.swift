import Glibc

/// Standard input's lines, read with `read(2)` on a thread of their own so that no task blocks.
///
/// The thread reads the descriptor directly rather than through `stdin`'s `FILE` (`readLine()`):
/// a reader blocked in `getline` holds that stream's lock, and anything else that takes it
/// (flushing every stream at once, for one) would block too. Whatever standard input is (a terminal, a pipe,
/// `/dev/null`, a closed descriptor) the sequence ends at end of input or on a read error, and
/// nothing else in the process waits for it.
///
/// A trailing `\r` is removed; bytes that are not UTF-8 become U+FFFD. A line longer than
/// ``maximumLineLength`` bytes is cut there (the rest of it is skipped), so input cannot make the
/// reader hold unbounded memory.
struct StandardInputLines: AsyncSequence, Sendable {
    typealias Element = String

    /// The longest line kept, in bytes.
    static let maximumLineLength = 64 * 1024

    func makeAsyncIterator() -> AsyncStream<String>.Iterator {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self)
        LineReaderThread(continuation: continuation).start()
        return stream.makeAsyncIterator()
    }
}

/// Reads standard input's lines with `read(2)` on a detached POSIX thread.
final class LineReaderThread: Sendable {
    private let continuation: AsyncStream<String>.Continuation

    init(continuation: AsyncStream<String>.Continuation) {
        self.continuation = continuation
    }

    /// Starts the thread; if it cannot start, the sequence ends at once.
    func start() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let result = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<LineReaderThread>.fromOpaque(raw).takeRetainedValue().readLines()
            return nil
        }, context)
        if result == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<LineReaderThread>.fromOpaque(context).release()
            continuation.finish()
        }
    }

    private func readLines() {
        var splitter = LineSplitter(maximumLineLength: StandardInputLines.maximumLineLength)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            splitter.append(chunk[0..<count]) { continuation.yield($0) }
        }
        splitter.finish { continuation.yield($0) }
        continuation.finish()
    }
}

/// Cuts a byte stream into lines of at most `maximumLineLength` bytes.
struct LineSplitter {
    let maximumLineLength: Int
    private var line: [UInt8] = []

    init(maximumLineLength: Int) {
        self.maximumLineLength = maximumLineLength
    }

    /// Adds `bytes`, passing every line they complete to `emit`.
    mutating func append(_ bytes: ArraySlice<UInt8>, emit: (String) -> Void) {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                emit(Self.text(line))
                line.removeAll(keepingCapacity: true)
            } else if line.count < maximumLineLength {
                line.append(byte)
            }
        }
    }

    /// Passes a last line that had no newline to `emit`.
    mutating func finish(emit: (String) -> Void) {
        if !line.isEmpty { emit(Self.text(line)) }
        line.removeAll()
    }

    private static func text(_ bytes: [UInt8]) -> String {
        let trimmed = bytes.last == UInt8(ascii: "\r") ? bytes.dropLast() : bytes[...]
        return String(decoding: trimmed, as: UTF8.self)
    }
}
