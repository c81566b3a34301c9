import Glibc
import Pheromones

/// The command's standard output: whole lines, escaped, written straight to the descriptor.
///
/// Every line the command prints goes through here, so this is the one place that keeps what
/// peers send away from the terminal: each line is escaped (``Swift/String/escapedForTerminal``),
/// so no control character a peer put in a name, an operation or a payload reaches the terminal,
/// and a line stays one line.
///
/// Lines are written with `write(2)` under a lock of their own, not through `stdout`'s `FILE`:
/// - nothing waits in a stdio buffer, so a program reading the output through a pipe sees each
///   line as it happens, with no flush;
/// - nothing takes another stream's lock. `fflush(NULL)` locks every stream, `stdin` included,
///   and the thread reading commands holds `stdin`'s lock for as long as it waits for a line: the
///   node's loop, printing a transcript line, stopped until the user typed one;
/// - lines printed from several threads (event loops, tasks) never interleave.
enum Console {
    private static let lock = Lock()

    /// Prints `line`, escaped, followed by a newline.
    static func printLine(_ line: String) {
        var bytes = Array(line.escapedForTerminal.utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock { writeAll(bytes, to: STDOUT_FILENO) }
    }

    /// Writes every byte, resuming after signals and partial writes. Gives up silently when the
    /// output is gone (a closed pipe: `EPIPE`, as `SIGPIPE` is ignored once a loop runs).
    private static func writeAll(_ bytes: [UInt8], to descriptor: CInt) {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, base + offset, raw.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0, errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
