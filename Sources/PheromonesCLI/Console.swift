import Glibc
import Pheromones

/// The command's standard output: whole lines, made safe for the terminal, written straight to the
/// descriptor.
///
/// Text from peers is escaped where it enters a line (``Swift/String/escapedForTerminal``): by the
/// descriptions of PheromonesP2P's errors, events and peers, which escape the names, operations and
/// addresses they quote, and by the command for what it quotes itself (an answer's operation and
/// data). Escaping a whole line again would double those escapes' backslashes (`\\u{1B}`). Every
/// line still goes through here, and this is the one place that guarantees that nothing acts on
/// the terminal: any control, format or separator character left in a line (one that reached it
/// unescaped) is escaped as `escapedForTerminal` escapes it, and a line stays one line. Backslashes
/// are left alone, so what was escaped once reads as it was escaped.
///
/// Lines are written with `write(2)` under a lock of their own, not through `stdout`'s `FILE`:
/// - nothing waits in a stdio buffer, so a program reading the output through a pipe sees each
///   line as it happens, with no flush;
/// - nothing takes another stream's lock. Flushing every stream at once locks them all, `stdin` included,
///   and the thread reading commands holds `stdin`'s lock for as long as it waits for a line: the
///   node's loop, printing a transcript line, stopped until the user typed one;
/// - lines printed from several threads (event loops, tasks) never interleave.
enum Console {
    private static let lock = Lock()

    /// Prints `line`, made safe for the terminal (``terminalSafe(_:)``), followed by a newline.
    static func printLine(_ line: String) {
        var bytes = Array(terminalSafe(line).utf8)
        bytes.append(UInt8(ascii: "\n"))
        lock.withLock { writeAll(bytes, to: STDOUT_FILENO) }
    }

    /// `line` with every character that could act on a terminal (general categories Cc, Cf, Zl and
    /// Zp: the ones ``Swift/String/escapedForTerminal`` escapes besides the backslash) escaped as
    /// that escapes it, and everything else kept, backslashes included. Applied to text that is
    /// already escaped it changes nothing.
    static func terminalSafe(_ line: String) -> String {
        var safe = ""
        safe.reserveCapacity(line.utf8.count)
        for scalar in line.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator:
                safe += String(scalar).escapedForTerminal
            default:
                safe.unicodeScalars.append(scalar)
            }
        }
        return safe
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
