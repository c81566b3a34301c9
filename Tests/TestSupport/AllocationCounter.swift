// How allocations are counted, and why this way.
//
// The claims under test (Tests/PheromonesPosixTests/AllocationTests.swift for plain echo over
// loopback, Tests/PheromonesNoiseTests/NoiseAllocationTests.swift for the same through Noise): N
// and 10N round trips allocate about as often, O(1) in total rather than a little per round trip.
// That needs a count of allocation *calls*; glibc 2.36 offers none in-process. `mallinfo2()`
// reports bytes in use (it sees growth, not churn: a buffer allocated and freed per message leaves
// no trace), and `__malloc_hook` was removed in glibc 2.34.
//
// So a test interposes the allocator the standard way, with `LD_PRELOAD`, in a child process:
//
// 1. ``AllocationCounter/measure(probe:timeout:)`` writes a tiny C file whose `malloc`, `calloc`,
//    `realloc`, `posix_memalign`, `aligned_alloc` and `memalign` bump one atomic counter and forward
//    to glibc's `__libc_*` entry points (no `dlsym`, so no recursion), plus
//    `pheromones_alloc_probe_count()` to read it, and compiles it into a shared object with the C
//    compiler at hand (`cc`, `gcc` or `clang`; the Swift toolchain always ships `clang`).
// 2. It runs the test binary again with `LD_PRELOAD` set to that object and only the probe test
//    selected. The probe (in the child) reads the counter through ``AllocationCounter/count()``,
//    which finds it with `dlsym(RTLD_DEFAULT, ...)`; it warms up, counts the allocations of a
//    small and of a large run (each driven entirely by the loops, while the test thread blocks on
//    a semaphore and so allocates nothing), and ``AllocationCounter/report(_:)``s the counts.
// 3. The parent gets the counts back and asserts on them. Each probe also counts 1,000 `malloc`s
//    (``AllocationCounter/sanityCount()``), so a broken interposer cannot pass by counting nothing.
//
// Every thread's allocations count, so the child does nothing but the probe; the counts include
// the few allocations of starting and finishing each run, the same for both sizes.

import Dispatch
import Foundation
import Glibc
import PheromonesCore

/// Counts allocation calls in a child process that runs one probe test (see the comment above).
public enum AllocationCounter {
    /// Why a measurement could not be made.
    public enum Failure: Error, CustomStringConvertible {
        /// No C compiler could build the interposer (the caller should skip, not fail).
        case noCompiler(String)
        /// The child process failed or wrote no result; its output's tail.
        case probeFailed(status: Int32, output: String)

        public var description: String {
            switch self {
            case .noCompiler(let output): return "no C compiler could build the allocation counter: \(output)"
            case .probeFailed(let status, let output): return "the probe process failed (status \(status)):\n\(output)"
            }
        }
    }

    /// The variable that tells the child where to write its counts (unset in a normal test run).
    private static let resultVariable = "PHEROMONES_ALLOC_PROBE_RESULT"

    /// Whether the thread or address sanitizer's runtime is in this process: it brings its own
    /// allocator, which the interposer cannot count, so counts mean nothing there.
    public static var sanitizerIsActive: Bool {
        let runtimes: [String] = ["__tsan_init", "__asan_init"]
        return runtimes.contains { name in dlsym(nil, name) != nil }
    }

    /// Whether this process is the counting child (the probe test should measure only then).
    public static var isCountingChild: Bool { ProcessInfo.processInfo.environment[resultVariable] != nil }

    /// Runs this test binary again with the counting allocator preloaded and only `probe` (an
    /// XCTest filter, `Module.Class/testMethod`) selected; returns the counts it reported.
    public static func measure(probe: String, timeout: Double = 120) throws -> [String: Int64] {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pheromones-alloc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let source = directory.appendingPathComponent("count-allocations.c")
        let library = directory.appendingPathComponent("libcount-allocations.so")
        try interposerSource.write(to: source, atomically: true, encoding: .utf8)
        try compileSharedObject(source: source.path, output: library.path, log: directory.appendingPathComponent("cc.log"))

        let result = directory.appendingPathComponent("result.txt")
        let log = directory.appendingPathComponent("probe.log")
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = library.path
        environment[resultVariable] = result.path
        let status = try run(executable: currentExecutablePath(), arguments: [probe], environment: environment, log: log, timeout: timeout)
        guard status == 0, let text = try? String(contentsOf: result, encoding: .utf8) else {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw Failure.probeFailed(status: status, output: String(output.suffix(4000)))
        }
        return parse(text)
    }

    /// In the child: the number of allocations so far, or nil when the counter is not loaded.
    public static func count() -> Int64? {
        guard let symbol = dlsym(nil, "pheromones_alloc_probe_count") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) () -> Int64).self)()
    }

    /// In the child: how many allocations 1,000 `malloc`s count (at least 1,000 if the counter works).
    public static func sanityCount() -> Int64 {
        let start = count() ?? 0
        for _ in 0..<1_000 { free(malloc(24)) }
        return (count() ?? 0) - start
    }

    /// In the child: warms up with 1,000 round trips of the ``PingPongHandler`` in `client`'s
    /// pipeline, counts the allocations of 2,000 and of 20,000 more, closes both channels and
    /// reports the counts with `sanity` (``sanityCount()``) for the parent to compare.
    public static func countRoundTrips(client: any Channel, server: any Channel, sanity: Int64) throws {
        func roundTrips(_ count: Int) throws -> Int64 {
            let start = self.count() ?? 0
            let loop = client.eventLoop
            try blockingWait(for: loop.flatSubmit { () -> Future<Void> in
                guard let handler = client.pipeline.handler(type: PingPongHandler.self) else {
                    return loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                return handler.start(roundTrips: count, on: loop)
            })
            return (self.count() ?? 0) - start
        }
        _ = try roundTrips(1_000)
        let small = try roundTrips(2_000)
        let large = try roundTrips(20_000)
        try blockingWait(for: client.close())
        try blockingWait(for: server.close())
        try report([("sanity", sanity), ("small", small), ("large", large)])
    }

    /// In the child: hands `counts` to the parent.
    public static func report(_ counts: [(String, Int64)]) throws {
        guard let path = ProcessInfo.processInfo.environment[resultVariable] else { return }
        let text = counts.map { "\($0.0)=\($0.1)" }.joined(separator: " ") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    // MARK: Helpers

    private static let interposerSource = """
        #include <errno.h>
        #include <stdatomic.h>
        #include <stddef.h>

        extern void *__libc_malloc(size_t);
        extern void *__libc_calloc(size_t, size_t);
        extern void *__libc_realloc(void *, size_t);
        extern void *__libc_memalign(size_t, size_t);

        static atomic_llong allocations;

        static inline void counted(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

        void *malloc(size_t size) { counted(); return __libc_malloc(size); }
        void *calloc(size_t count, size_t size) { counted(); return __libc_calloc(count, size); }
        void *realloc(void *pointer, size_t size) { counted(); return __libc_realloc(pointer, size); }
        void *memalign(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
        void *aligned_alloc(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }
        int posix_memalign(void **out, size_t alignment, size_t size) {
            if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
            counted();
            void *pointer = __libc_memalign(alignment, size);
            if (pointer == NULL) return ENOMEM;
            *out = pointer;
            return 0;
        }

        long long pheromones_alloc_probe_count(void) { return atomic_load_explicit(&allocations, memory_order_relaxed); }
        """

    /// This test binary's path (the child runs it again).
    private static func currentExecutablePath() throws -> String {
        guard let path = realpath("/proc/self/exe", nil) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ENOENT) }
        defer { free(path) }
        return String(cString: path)
    }

    private static func parse(_ text: String) -> [String: Int64] {
        var counts: [String: Int64] = [:]
        for field in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let parts = field.split(separator: "=")
            if parts.count == 2, let value = Int64(parts[1]) { counts[String(parts[0])] = value }
        }
        return counts
    }

    /// Compiles `source` into a shared object with the first C compiler that works.
    private static func compileSharedObject(source: String, output: String, log: URL) throws {
        for compiler in ["cc", "gcc", "clang"] {
            let status = try run(
                executable: "/usr/bin/env", arguments: [compiler, "-shared", "-fPIC", "-O2", "-o", output, source],
                environment: ProcessInfo.processInfo.environment, log: log, timeout: 60)
            if status == 0 { return }
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw Failure.noCompiler(String(output.suffix(1000)))
    }

    /// Runs a process with its output in `log`; returns its exit status (-1, the process killed,
    /// if it runs longer than `timeout` seconds).
    private static func run(executable: String, arguments: [String], environment: [String: String], log: URL, timeout: Double) throws -> Int32 {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let output = try FileHandle(forWritingTo: log)
        defer { try? output.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = output
        process.standardError = output
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
        guard exited.wait(timeout: .now() + timeout) == .success else {
            process.terminate()
            _ = exited.wait(timeout: .now() + 10)
            output.write(Data("\n\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s\n".utf8))
            return -1
        }
        return process.terminationStatus
    }
}
