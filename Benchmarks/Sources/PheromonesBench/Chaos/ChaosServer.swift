import CEpoll
import Foundation

/// The server a chaos run targets: a command started as a child process on a free loopback port,
/// by default the repository's own `pheromones-echo` release binary.
struct ChaosServer {
    let process: ChildProcess
    let port: Int
    /// The command as run (placeholders filled in).
    let command: String

    /// The command's placeholders for the port and the protocol.
    static let portPlaceholder = "{port}"
    static let protoPlaceholder = "{proto}"

    /// `pheromones-echo` from the repository's release build (see ``repositoryBinary(named:option:)``).
    static func defaultCommand() throws -> String {
        let binary = try repositoryBinary(named: "pheromones-echo", option: "--server-cmd")
        return "\(shellQuoted(binary)) --port \(portPlaceholder) --proto \(protoPlaceholder)"
    }

    /// The path of `product` in the repository's release build, found from this executable's path
    /// (`<repo>/Benchmarks/.build/...`) or from the current directory; an error that says how to
    /// build it or to pass `option` instead otherwise.
    static func repositoryBinary(named product: String, option: String) throws -> String {
        let candidates = binaryCandidates(named: product)
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw HarnessError("""
                no \(product) release binary (looked for \(candidates.joined(separator: ", "))); build it with \
                `swift build -c release --product \(product)` in the repository root, or pass \(option)
                """)
        }
        return binary
    }

    private static func binaryCandidates(named product: String) -> [String] {
        var roots: [URL] = []
        var directory = ChildProcess.executable.deletingLastPathComponent()
        while directory.path != "/" {
            if directory.lastPathComponent == "Benchmarks" { roots.append(directory.deletingLastPathComponent()) }
            directory = directory.deletingLastPathComponent()
        }
        let current = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        roots += [current.deletingLastPathComponent(), current]
        return roots.map { $0.appendingPathComponent(".build/release/\(product)").standardizedFileURL.path }
    }

    /// Starts `template` for `proto` (see ``start(_:filling:attempts:)``; `{proto}` is filled in).
    static func start(_ template: String, proto: WireProtocol, attempts: Int = 3) throws -> ChaosServer {
        try start(template, filling: [protoPlaceholder: proto.rawValue], attempts: attempts)
    }

    /// Starts `template` (through `/bin/sh -c 'exec ...'`, so that the process measured is the
    /// server itself) on a free port, with `{port}` and every placeholder in `values` replaced, and
    /// waits until it accepts a connection. A few attempts, in case another process took the port
    /// in between.
    static func start(_ template: String, filling values: [String: String], attempts: Int = 3) throws -> ChaosServer {
        guard template.contains(portPlaceholder) else {
            throw HarnessError("the server command must contain \(portPlaceholder)")
        }
        var lastProblem = ""
        for _ in 0..<attempts {
            let port = Int(cepoll_free_tcp4_port(ChaosPlan.host))
            guard port > 0 else { throw HarnessError("no free port: \(ChaosDriver.describe(CInt(-port)))") }
            let command = values.reduce(template.replacingOccurrences(of: portPlaceholder, with: "\(port)")) {
                $0.replacingOccurrences(of: $1.key, with: $1.value)
            }
            let process = try ChildProcess(program: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "exec \(command)"])
            switch waitUntilListening(process, port: port) {
            case nil: return ChaosServer(process: process, port: port, command: command)
            case let problem?:
                process.stop()
                lastProblem = "\(command): \(problem)"
            }
        }
        throw HarnessError("the server did not start: \(lastProblem)")
    }

    /// nil once the server accepts connections on `port`; what went wrong otherwise.
    private static func waitUntilListening(_ process: ChildProcess, port: Int, timeout: Double = 15) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if let exit = process.exitDescription { return "exited (\(exit)) before listening" }
            if cepoll_probe_tcp4(ChaosPlan.host, Int32(port), 200) == 0 { return nil }
            usleep(20_000)
        }
        return "not listening after \(Int(timeout)) s"
    }

    /// The server's open file descriptors once they stop changing (the probe connection closed),
    /// read every 50 ms until four readings agree or `timeout` passes.
    func steadyFileCount(timeout: Double = 3) -> Int? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var last: Int?
        var agreeing = 0
        while Date() < deadline {
            let count = ProcessStats.openFileCount(of: process.pid)
            if count == last { agreeing += 1 } else { agreeing = 0 }
            last = count
            if agreeing >= 3 { break }
            usleep(50_000)
        }
        return last
    }

    /// Waits until the server's open file descriptors are down to `baseline`, up to `timeout`
    /// seconds; returns the last count read and the seconds it took.
    func waitForFileCount(atMost baseline: Int, timeout: Double) -> (count: Int?, seconds: Double) {
        let start = Date()
        var count = ProcessStats.openFileCount(of: process.pid)
        while let current = count, current > baseline, Date().timeIntervalSince(start) < timeout {
            usleep(50_000)
            count = ProcessStats.openFileCount(of: process.pid)
        }
        return (count, Date().timeIntervalSince(start))
    }

    static func shellQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
