import Foundation

/// A child process: this same executable with other arguments, its stdout piped to us, or another
/// program whose stdin and stdout are /dev/null (stderr shared either way, so complaints reach the
/// terminal).
final class ChildProcess {
    private let process = Process()
    private let output = Pipe()
    private var unread = Data()

    init(arguments: [String]) throws {
        process.executableURL = Self.executable
        process.arguments = arguments
        process.standardOutput = output
        try process.run()
    }

    /// Runs `program` with `arguments`, its standard output discarded (`readLine` and `readToEnd`
    /// then see nothing), with no signal blocked.
    ///
    /// Its standard input is /dev/null rather than ours: a server that reads commands from it (the
    /// `pheromones node` command does) must not take the terminal's input, and sees end of input
    /// at once instead (which `pheromones node` takes as "keep serving").
    ///
    /// The child inherits the signal mask of the thread that starts it, and Dispatch's worker
    /// threads (where an async command runs) block most signals, SIGTERM included: a program that
    /// relies on SIGTERM's default action would then ignore `stop()` until SIGKILL.
    init(program: URL, arguments: [String]) throws {
        process.executableURL = program
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try output.fileHandleForWriting.close()
        var none = sigset_t(), previous = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The next line of the child's output, or nil once it closed its output without one.
    func readLine() -> String? {
        while true {
            if let newline = unread.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: unread[unread.startIndex..<newline], as: UTF8.self)
                unread = Data(unread[unread.index(after: newline)...])
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { return nil }
            unread.append(chunk)
        }
    }

    /// Everything the child writes until it exits, and its exit status.
    func readToEnd() -> (output: String, status: Int32) {
        let rest = (try? output.fileHandleForReading.readToEnd()) ?? nil
        process.waitUntilExit()
        return (String(decoding: unread + (rest ?? Data()), as: UTF8.self), process.terminationStatus)
    }

    /// How the child ended ("exit status 0", "signal 9"), or nil while it runs.
    var exitDescription: String? {
        guard !process.isRunning else { return nil }
        let kind = process.terminationReason == .uncaughtSignal ? "signal" : "exit status"
        return "\(kind) \(process.terminationStatus)"
    }

    /// Sends SIGTERM, waits up to `grace` seconds, then SIGKILL; returns once the child is gone.
    func stop(grace: Double = 5) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date(timeIntervalSinceNow: grace)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// This executable, as the kernel knows it.
    static let executable: URL = {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path)
    }()
}
