import Foundation
import PheromonesTestSupport
import Glibc
import Pheromones
import XCTest

/// The `openssl` command (s_server, s_client) as a child process: the real peer our TLS stage is
/// tested against. Its standard output is collected; standard input is a file or nothing.
final class OpenSSLCommand: @unchecked Sendable {
    // Unchecked: `output` and `waiters` are locked, the expectations are thread-safe, and
    // `process` is only touched by the test after `run()`.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let process = Process()
    private let output = LockedBytes()
    /// Fulfilled when the process has exited, and when its output has been read to the end.
    private let exited = XCTestExpectation(description: "openssl exits")
    private let outputEnded = XCTestExpectation(description: "openssl's output ends")
    /// Expectations waiting for more output (the waits never block a thread: the output is read
    /// on Dispatch's threads, which a blocked test thread could starve).
    private let waiters = LockedValueBox<[XCTestExpectation]>([])
    /// Standard input when no file is given: a pipe held open (s_server ends its connection when
    /// its standard input ends).
    private let idleInput = Pipe()

    /// Runs `openssl arguments...` with `standardInput` (nil: an open pipe nothing is written to).
    init(_ arguments: [String], standardInput: URL? = nil) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardInput = try standardInput.map { try FileHandle(forReadingFrom: $0) } ?? idleInput
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        let output = output, outputEnded = outputEnded, waiters = waiters, exited = exited
        // A thread of its own reads the output with plain blocking reads until the end of the
        // stream (Foundation's readability handler has been seen to stop short of it on Linux).
        let reader = pipe.fileHandleForReading.fileDescriptor
        Thread.detachNewThread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(reader, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                output.append(Data(chunk[0..<count]))
                for waiter in waiters.take() { waiter.fulfill() }
            }
            outputEnded.fulfill()
            for waiter in waiters.take() { waiter.fulfill() }
        }
        process.terminationHandler = { _ in exited.fulfill() }
        try process.run()
    }

    deinit { stop() }

    /// Everything printed so far.
    var printed: [UInt8] { output.bytes }

    /// Waits (at most `seconds`) until the output contains `needle` `count` times; returns the
    /// output as text.
    @discardableResult
    func waitForOutput(containing needle: String, times count: Int = 1, within seconds: Double = 20) async throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let more = XCTestExpectation(description: "more output")
            waiters.append(more)
            let text = String(decoding: printed, as: UTF8.self)
            if text.components(separatedBy: needle).count - 1 >= count { return text }
            let left = deadline.timeIntervalSinceNow
            guard left > 0, await XCTWaiter().fulfillment(of: [more], timeout: left) == .completed else {
                throw Failure(description: "no \(count) '\(needle)' within \(seconds) s; the output was:\n\(text.prefix(2000))")
            }
        }
    }

    /// The port an `s_server -accept 127.0.0.1:0` listens on (from its `ACCEPT` line, which
    /// `-quiet` would leave out).
    func acceptedPort() async throws -> Int {
        let text = try await waitForOutput(containing: "ACCEPT")
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("ACCEPT") }),
              let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
        else { throw Failure(description: "no port in \(text.prefix(200))") }
        return port
    }

    /// Waits (at most `seconds`) for the process to exit and its output to be read to the end.
    func waitForExit(within seconds: Double = 60) async throws {
        guard await XCTWaiter().fulfillment(of: [exited, outputEnded], timeout: seconds) == .completed else {
            throw Failure(description: "openssl did not exit within \(seconds) s (\(printed.count) bytes printed)")
        }
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A value several threads share, behind a lock.
final class LockedValueBox<Value>: @unchecked Sendable {
    // Unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

extension LockedValueBox where Value == [XCTestExpectation] {
    func append(_ waiter: XCTestExpectation) { withLock { $0.append(waiter) } }
    func take() -> [XCTestExpectation] { withLock { waiters in defer { waiters = [] }; return waiters } }
}

/// Bytes appended from one thread and read from another.
final class LockedBytes: @unchecked Sendable {
    // Unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var storage: [UInt8] = []

    func append(_ data: Data) {
        lock.lock()
        storage += data
        lock.unlock()
    }

    var bytes: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}

extension CertificateFiles {
    /// A file of `count` random bytes (the same ones on every run: a seeded generator).
    func randomFile(_ name: String, count: Int) throws -> (URL, [UInt8]) {
        var generator = SplitMix64(seed: 0x7E5_7AB1E)
        var bytes = [UInt8](repeating: 0, count: count)
        for index in stride(from: 0, to: count, by: 8) {
            withUnsafeBytes(of: generator.next()) { word in
                for offset in 0..<min(8, count - index) { bytes[index + offset] = word[offset] }
            }
        }
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return (url, bytes)
    }
}
