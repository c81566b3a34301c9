// How allocations are counted, and why this way.
//
// The claim under test: echo round trips over loopback allocate O(1) in total, not a little per
// round trip. That needs a count of allocation *calls*; glibc 2.36 offers none in-process.
// `mallinfo2()` reports bytes in use (it sees growth, not churn: a buffer allocated and freed per
// message leaves no trace), and `__malloc_hook` was removed in glibc 2.34.
//
// So the test interposes the allocator the standard way, with `LD_PRELOAD`, in a child process:
//
// 1. It writes a tiny C file whose `malloc`, `calloc`, `realloc`, `posix_memalign`,
//    `aligned_alloc` and `memalign` bump one atomic counter and forward to glibc's `__libc_*`
//    entry points (no `dlsym`, so no recursion), plus `pheromones_alloc_probe_count()` to read it,
//    and compiles it into a shared object with the C compiler at hand (`cc`, `gcc` or `clang`;
//    the Swift toolchain always ships `clang`).
// 2. It runs this very test binary again with `LD_PRELOAD` set to that object and only the probe
//    test selected. The probe finds the counter with `dlsym(RTLD_DEFAULT, ...)`, warms up with 1,000
//    round trips, then counts the allocations of 2,000 and of 20,000 round trips (each run driven
//    entirely by the loops: the next ping is written from `channelRead`, while the test thread
//    blocks on a semaphore and so allocates nothing), and writes the counts to a file.
// 3. The parent reads the file and asserts, generously, that 20,000 round trips allocate fewer
//    than 500 more times than 2,000 do: O(1), not O(N). A per-round-trip allocation anywhere in the
//    path (loops, channels, pipeline, buffers, write queue) adds about 18,000 and fails the test.
//    The probe also checks that the counter works at all (1,000 `malloc`s must count at least
//    1,000), so a broken interposer cannot pass by counting nothing.
//
// Every thread's allocations count, so the child does nothing but the probe; the counts include
// the few allocations of starting and finishing each run, the same for both sizes.

import Dispatch
import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

final class AllocationTests: XCTestCase {
    /// Whether the thread or address sanitizer's runtime is in this process.
    static var sanitizerIsActive: Bool {
        let runtimes: [String] = ["__tsan_init", "__asan_init"]
        return runtimes.contains { name in dlsym(nil, name) != nil }
    }

    private static let resultVariable = "PHEROMONES_ALLOC_PROBE_RESULT"
    private static let probeTest = "PheromonesPosixTests.AllocationTests/testTheAllocationProbeOnlyMeasuresInsideTheCountingChildProcess"

    func testEchoRoundTripsOverLoopbackAllocateAConstantAmountNotAnAmountPerRoundTrip() throws {
        // A sanitizer brings its own allocator, which the interposer cannot count (and which
        // allocates for its own bookkeeping): the count means nothing there.
        try XCTSkipIf(Self.sanitizerIsActive, "allocations are not counted under a sanitizer")
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pheromones-alloc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        let source = directory.appendingPathComponent("count-allocations.c")
        let library = directory.appendingPathComponent("libcount-allocations.so")
        try Self.interposerSource.write(to: source, atomically: true, encoding: .utf8)
        try compileSharedObject(source: source.path, output: library.path, log: directory.appendingPathComponent("cc.log"))

        let result = directory.appendingPathComponent("result.txt")
        let log = directory.appendingPathComponent("probe.log")
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = library.path
        environment[Self.resultVariable] = result.path
        let status = try run(executable: Self.currentExecutablePath(), arguments: [Self.probeTest], environment: environment, log: log, timeout: 120)
        let probeOutput = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        guard status == 0, let text = try? String(contentsOf: result, encoding: .utf8) else {
            XCTFail("the probe process failed (status \(status)):\n\(probeOutput.suffix(4000))")
            return
        }
        let counts = Self.parse(text)
        guard let sanity = counts["sanity"], let small = counts["small"], let large = counts["large"] else {
            XCTFail("unreadable probe result: \(text)")
            return
        }
        XCTAssertGreaterThanOrEqual(sanity, 1_000, "the interposed malloc does not count: \(text)")
        let perRoundTrip = Double(large - small) / 18_000
        XCTAssertLessThan(
            large, small + 500,
            "2,000 round trips allocated \(small) times, 20,000 allocated \(large): about \(perRoundTrip) allocations per round trip")
    }

    /// Runs in the child process only (with the counting allocator preloaded); passes trivially otherwise.
    func testTheAllocationProbeOnlyMeasuresInsideTheCountingChildProcess() throws {
        guard let resultPath = ProcessInfo.processInfo.environment[Self.resultVariable] else { return }
        guard let symbol = dlsym(nil, "pheromones_alloc_probe_count") else {
            XCTFail("the counting allocator is not loaded")
            return
        }
        let count = unsafeBitCast(symbol, to: (@convention(c) () -> Int64).self)

        let sanityStart = count()
        for _ in 0..<1_000 { free(malloc(24)) }
        let sanity = count() - sanityStart

        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.syncShutdownGracefully() }
        let server = try waitFor(ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(to: .loopbackV4(port: 0)))
        let client = try waitFor(ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(PingPongHandler(messageSize: 64)) }
            .connect(to: try XCTUnwrap(server.localAddress)))

        func roundTrips(_ count: Int) throws {
            try waitFor(client.loop.flatSubmit {
                client.pipeline.handler(type: PingPongHandler.self)!.start(roundTrips: count)
            })
        }
        try roundTrips(1_000)
        let start = count()
        try roundTrips(2_000)
        let middle = count()
        try roundTrips(20_000)
        let end = count()

        try waitFor(client.close())
        try waitFor(server.close())
        let text = "sanity=\(sanity) small=\(middle - start) large=\(end - middle)\n"
        try text.write(toFile: resultPath, atomically: true, encoding: .utf8)
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
        guard let path = realpath("/proc/self/exe", nil) else { throw IOError(errnoCode: errno, function: "realpath") }
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

    /// Compiles `source` into a shared object with the first C compiler that works; skips without one.
    private func compileSharedObject(source: String, output: String, log: URL) throws {
        for compiler in ["cc", "gcc", "clang"] {
            let status = try run(
                executable: "/usr/bin/env", arguments: [compiler, "-shared", "-fPIC", "-O2", "-o", output, source],
                environment: ProcessInfo.processInfo.environment, log: log, timeout: 60)
            if status == 0 { return }
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw XCTSkip("no C compiler could build the allocation counter: \(output.suffix(1000))")
    }

    /// Runs a process with its output in `log`; returns its exit status, failing the test (and
    /// killing it) if it runs longer than `timeout` seconds.
    private func run(executable: String, arguments: [String], environment: [String: String], log: URL, timeout: Double) throws -> Int32 {
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
            XCTFail("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
            return -1
        }
        return process.terminationStatus
    }

    /// Blocks until `future` completes (at most 60 s) and returns its value. The probe blocks
    /// rather than awaits so that the waiting thread allocates nothing while the loops work.
    @discardableResult
    private func waitFor<Value: Sendable>(_ future: Future<Value>, file: StaticString = #filePath, line: UInt = #line) throws -> Value {
        let done = DispatchSemaphore(value: 0)
        future.whenComplete { _ in done.signal() }
        guard done.wait(timeout: .now() + 60) == .success, let result = future.resultIfAvailable else {
            XCTFail("the future did not complete within 60 s", file: file, line: line)
            throw TestTimeout()
        }
        return try result.get()
    }
}

/// Sends a message, waits for all of it to come back, and repeats, `roundTrips` times; all on the loop.
private final class PingPongHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let message: ByteBuffer
    private var context: ChannelHandlerContext?
    private var remaining = 0
    private var received = 0
    private var done: Promise<Void>?

    init(messageSize: Int) {
        message = ByteBuffer(repeating: 0x50, count: messageSize)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func start(roundTrips: Int) -> Future<Void> {
        let promise = context!.eventLoop.makePromise(of: Void.self)
        done = promise
        remaining = roundTrips
        received = 0
        context!.writeAndFlush(message)
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        received += data.readableBytes
        guard received >= message.readableBytes else { return }
        received -= message.readableBytes
        remaining -= 1
        if remaining > 0 {
            context.writeAndFlush(message)
        } else {
            done?.succeed()
            done = nil
        }
    }
}
