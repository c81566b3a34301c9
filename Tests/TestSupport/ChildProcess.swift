import Foundation
import Glibc
import PheromonesCore
import Synchronization
import XCTest

/// A built executable of the package (`pheromones`, `pheromones-echo`), run as a child process
/// whose standard output the test reads.
///
/// `swift build --build-tests` and `swift test` build every product next to the test bundle, so
/// the executable is looked up in the test binary's own directory.
public final class ChildProcess: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let process: Process
    private let output = OutputBuffer()
    /// Signalled whenever output arrives (or ends), so waiting for a line needs no polling delay.
    private let outputChanged = DispatchSemaphore(value: 0)
    private let exited = DispatchSemaphore(value: 0)

    /// Starts `executable arguments...` (an executable of the package, `pheromones` by default)
    /// with `standardInput` (a `Pipe` or a `FileHandle`); with `program`, that program
    /// (`["openssl", ...]` through `/usr/bin/env`, say) instead.
    public init(_ arguments: [String], standardInput: Any = FileHandle.nullDevice, executable: String = "pheromones", program: String? = nil) throws {
        process = Process()
        if let program {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [program] + arguments
        } else {
            process.executableURL = try Self.url(of: executable)
            process.arguments = arguments
        }
        // Under the thread sanitizer (the executable is built with it too) the runtime sleeps a
        // second at exit by default, to catch races there: the exit-time assertions measure the
        // node, not that sleep.
        var environment = ProcessInfo.processInfo.environment
        environment["TSAN_OPTIONS"] = [environment["TSAN_OPTIONS"], "atexit_sleep_ms=0"].compactMap { $0 }.joined(separator: ":")
        process.environment = environment
        process.standardInput = standardInput
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let output = output, outputChanged = outputChanged, exited = exited
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil }
            output.append(data)
            outputChanged.signal()
        }
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
    }

    /// Everything the process printed so far.
    public var printed: [UInt8] { output.bytes }
    /// What the process printed so far, as text.
    public var text: String { String(decoding: printed, as: UTF8.self) }

    /// Waits (at most `seconds`) until the output contains `needle`; returns the whole output.
    @discardableResult
    public func waitForOutput(containing needle: String, within seconds: Double = 20) throws -> String {
        let deadline = DispatchTime.now() + seconds
        while true {
            let text = text
            if text.contains(needle) { return text }
            guard outputChanged.wait(timeout: deadline) == .success else {
                throw Failure(description: "no '\(needle)' within \(seconds) s; the output was:\n\(text)")
            }
        }
    }

    /// Sends `signal` to the process.
    public func send(_ signal: CInt) {
        kill(process.processIdentifier, signal)
    }

    /// Kills the process if it still runs (a test that failed half-way must not leave it behind).
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        _ = exited.wait(timeout: .now() + 10)
    }

    /// Waits (at most `seconds`) until the process catches every one of `signals`, as the kernel
    /// reports in `/proc/PID/status` (`SigCgt`): only then does a signal test what the process does
    /// with it, rather than the default action of a process still starting up.
    public func waitUntilCatching(_ signals: [CInt], within seconds: Double = 20) throws {
        let wanted = signals.reduce(UInt64(0)) { $0 | 1 << UInt64($1 - 1) }
        let deadline = DispatchTime.now() + seconds
        while DispatchTime.now() < deadline {
            if let caught = caughtSignals(), caught & wanted == wanted { return }
            // Nothing to wait on but the kernel's table: look again when output arrives, or soon.
            _ = outputChanged.wait(timeout: .now() + 0.01)
        }
        throw Failure(description: "the process did not install handlers for \(signals) within \(seconds) s")
    }

    private func caughtSignals() -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }) else { return nil }
        return UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16)
    }

    /// Waits at most `seconds` for the process to exit; returns how long it took, or nil (after
    /// killing it) if it did not.
    public func waitForExit(within seconds: Double) -> Double? {
        let start = DispatchTime.now()
        guard exited.wait(timeout: start + seconds) == .success else {
            kill(process.processIdentifier, SIGKILL)
            _ = exited.wait(timeout: .now() + 10)
            return nil
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    public var exitStatus: Int32 { process.terminationStatus }

    /// The package's executable `name`, next to the running test binary.
    private static func url(of name: String) throws -> URL {
        guard let path = realpath("/proc/self/exe", nil) else { throw Failure(description: "cannot resolve /proc/self/exe") }
        defer { free(path) }
        let url = URL(fileURLWithPath: String(cString: path)).deletingLastPathComponent().appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw Failure(description: "\(url.path) is missing: build the package (swift build) before running these tests")
        }
        return url
    }
}

/// Bytes collected from a pipe on one thread and read on another.
private final class OutputBuffer: Sendable {
    private let storage = LockedValue<[UInt8]>([])

    var bytes: [UInt8] { storage.withLock { $0 } }

    func append(_ data: Data) {
        storage.withLock { $0 += data }
    }
}
