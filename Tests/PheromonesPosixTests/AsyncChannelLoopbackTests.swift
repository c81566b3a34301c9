import Dispatch
import Glibc
import Synchronization
import XCTest

import Pheromones

/// The async bridge over real loopback TCP connections, and the epoll loop as a Swift executor.
final class AsyncChannelLoopbackTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!

    override func setUpWithError() throws {
        group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() {
        group?.syncShutdownGracefully()
        group = nil
    }

    // MARK: Echo

    func testAnAsyncEchoServerSendsBackOneMebibyte() async throws {
        try await echoOneMebibyte(consumerOnLoop: false)
    }

    func testAnAsyncEchoServerWhoseConsumerRunsOnTheLoopSendsBackOneMebibyte() async throws {
        try await echoOneMebibyte(consumerOnLoop: true)
    }

    private func echoOneMebibyte(consumerOnLoop: Bool) async throws {
        let total = 1 << 20
        let consumerThreads = Observed(ConsumerThreads())
        let group = try XCTUnwrap(group)
        let server = try await withDeadline("the server binds") {
            try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    // Synchronous and on the channel's loop: wrap, then consume in a task.
                    let connection = try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
                    let loop = channel.loop
                    let echo: @Sendable () async -> Void = {
                        do {
                            for try await message in connection.inbound {
                                consumerThreads.update { $0.record(onLoop: loop.inEventLoop) }
                                try await connection.outbound.write(message)
                            }
                        } catch {}
                    }
                    if consumerOnLoop {
                        Task(executorPreference: loop) { await echo() }
                    } else {
                        Task { await echo() }
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
        }
        let client = try await connectAsyncClient(to: server)

        let (received, intact) = try await withDeadline("1 MiB sent and echoed back") {
            async let sent: Void = client.outbound.write(contentsOf: Pattern.chunks(total: total, size: 64 * 1024))
            var checker = Pattern.Checker()
            for try await part in client.inbound {
                checker.check(part)
                if checker.offset >= total { break }
            }
            try await sent
            return (checker.offset, checker.intact)
        }
        XCTAssertEqual(received, total)
        XCTAssertTrue(intact, "the echoed bytes differ from those sent")
        let threads = consumerThreads.value
        XCTAssertGreaterThan(threads.onLoop + threads.offLoop, 0)
        if consumerOnLoop {
            XCTAssertEqual(threads.offLoop, 0, "a consumer task preferring the loop ran off it")
        }

        try await withDeadline("the channels close") {
            try await client.channel.close().get()
            try await server.close().get()
        }
    }

    // MARK: Backpressure

    func testASlowAsyncConsumerStopsTheServerReadingUntilTheClientIsUnwritableThenEverythingArrives() async throws {
        let total = 8 << 20
        let consumerMayStart = Observed(false)
        let serverReads = Observed(ServerReads())
        let consumed = Observed(Consumed())
        let clientWrites = Observed(ClientWrites())
        let group = try XCTUnwrap(group)

        // Small kernel buffers on both sides, so that they fill long before 8 MiB have been sent.
        var serverOptions = SocketOptions()
        serverOptions.receiveBufferSize = 64 * 1024
        var clientOptions = SocketOptions()
        clientOptions.sendBufferSize = 64 * 1024
        let childOptions = serverOptions, options = clientOptions

        let server = try await withDeadline("the server binds") {
            try await ServerBootstrap(group: group)
                .childOptions(childOptions)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandler(ReadObserver(probe: serverReads))
                    let connection = try AsyncChannel<ByteBuffer, ByteBuffer>(
                        wrapping: channel, configuration: .init(highWatermark: 4, lowWatermark: 1))
                    Task {
                        _ = await consumerMayStart.wait { $0 }
                        var checker = Pattern.Checker()
                        do {
                            for try await chunk in connection.inbound { checker.check(chunk) }
                        } catch {
                            consumed.update { $0.error = "\(error)" }
                        }
                        consumed.update { $0.bytes = checker.offset; $0.intact = checker.intact; $0.ended = true }
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
        }
        let serverAddress = try XCTUnwrap(server.localAddress)
        let client = try await withDeadline("the client connects") {
            try await ClientBootstrap(group: group)
                .options(options)
                .channelInitializer { channel in
                    try channel.pipeline.addHandler(Flooder(total: total, chunkSize: 16 * 1024, probe: clientWrites))
                }
                .connect(to: serverAddress)
                .get()
        }

        // The consumer has not started: once 4 messages wait, the bridge holds the read and the
        // server's socket stops reading for good.
        let stall = try await withDeadline("the server stops reading") { await serverReads.wait { $0.stalled } }
        XCTAssertLessThanOrEqual(stall.bytesRead, 1 << 20, "at most 4 batches of 4 reads of 64 KiB before the stall")
        // With the server not reading, the kernel's buffers fill and the client's writes back up: it
        // only writes while writable, so it turns unwritable only when the kernel refuses bytes. (It
        // may turn writable again for a while, until the buffers are full.)
        let blocked = try await withDeadline("the client becomes unwritable") { await clientWrites.wait { !$0.writable } }
        XCTAssertGreaterThan(blocked.unwritableTransitions, 0)
        XCTAssertLessThan(blocked.handedToKernel, total, "the client could not send everything")
        XCTAssertLessThanOrEqual(
            blocked.handedToKernel - stall.bytesRead, 4 << 20, "no more than the kernel buffers can hold is in flight")
        let stillStalled = serverReads.value
        XCTAssertEqual(stillStalled.bytesRead, stall.bytesRead, "the server read while its consumer was blocked")
        XCTAssertEqual(stillStalled.readsPassed, stall.readsPassed, "a read reached the server's socket while the consumer was blocked")
        XCTAssertTrue(stillStalled.stalled)
        XCTAssertFalse(consumed.value.ended)

        consumerMayStart.update { $0 = true }
        let outcome = try await withDeadline("all 8 MiB reach the consumer", within: 60) { await consumed.wait { $0.ended } }
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, total)
        XCTAssertTrue(outcome.intact, "the bytes the consumer got differ from those sent")
        XCTAssertEqual(clientWrites.value.handedToKernel, total)
        XCTAssertGreaterThan(serverReads.value.readsPassed, stall.readsPassed, "reading resumed")

        try await withDeadline("the server closes after the client's end of stream, and so does the client") {
            try await client.closeFuture.get()
            try await server.close().get()
        }
    }

    func testBytesHeldBackInTheKernelStillReachTheConsumerWhenBothSidesHaveShutTheirOutput() async throws {
        let total = 48 * 1024
        let consumerMayStart = Observed(false)
        let serverReads = Observed(ServerReads())
        let consumed = Observed(Consumed())
        let serverSide = Observed<AsyncChannel<ByteBuffer, ByteBuffer>?>(nil)
        let group = try XCTUnwrap(group)

        let server = try await withDeadline("the server binds") {
            try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    try channel.pipeline.addHandler(ReadObserver(probe: serverReads))
                    let connection = try AsyncChannel<ByteBuffer, ByteBuffer>(
                        wrapping: channel, configuration: .init(highWatermark: 1, lowWatermark: 0))
                    serverSide.update { $0 = connection }
                    Task {
                        _ = await consumerMayStart.wait { $0 }
                        var checker = Pattern.Checker()
                        do {
                            for try await chunk in connection.inbound { checker.check(chunk) }
                        } catch {
                            consumed.update { $0.error = "\(error)" }
                        }
                        consumed.update { $0.bytes = checker.offset; $0.intact = checker.intact; $0.ended = true }
                    }
                }
                .bind(host: "127.0.0.1", port: 0)
        }
        let client = try await connectAsyncClient(to: server)
        try await withDeadline("the client sends everything and shuts its output") {
            try await client.outbound.write(contentsOf: Pattern.chunks(total: total, size: 16 * 1024))
            try await client.outbound.finish()
        }
        // One batch (at most 2 + 4 + 8 + 16 KiB, as the read size grows) fills the bridge; the rest
        // stays in the kernel, behind the client's end of stream.
        let stall = try await withDeadline("the server stops reading") { await serverReads.wait { $0.stalled } }
        XCTAssertLessThan(stall.bytesRead, total)
        let connection = try await withDeadline("the server's side") { await serverSide.wait { $0 != nil } }!

        // Both directions are now down: epoll reports a hang-up, though bytes wait unread.
        try await withDeadline("the server shuts its output, and its channel closes") {
            try await connection.outbound.finish()
            try await connection.channel.closeFuture.get()
        }
        consumerMayStart.update { $0 = true }
        let outcome = try await withDeadline("the consumer sees the end of the stream") { await consumed.wait { $0.ended } }
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.bytes, total, "bytes the server had not read yet were dropped at the hang-up")
        XCTAssertTrue(outcome.intact)

        try await withDeadline("the channels close") {
            try await client.channel.closeFuture.get()
            try await server.close().get()
        }
    }

    // MARK: The loop as an executor

    func testATaskPreferringTheLoopRunsOnTheLoopThread() async throws {
        let loop = group.nextLoop()
        let seen = try await withDeadline("the loop-preferring task finishes") {
            await Task(executorPreference: loop) { () async -> [Bool] in
                var seen = [loop.inEventLoop]
                await Task.yield()
                seen.append(loop.inEventLoop)
                _ = try? await loop.submit { 1 }.get()
                seen.append(loop.inEventLoop)
                return seen
            }.value
        }
        XCTAssertEqual(seen, [true, true, true], "before and after each suspension")
        let plain = try await withDeadline("a plain task finishes") { await Task.detached { loop.inEventLoop }.value }
        XCTAssertFalse(plain, "a task without the preference runs elsewhere")
    }

    func testAnActorWhoseExecutorIsTheLoopRunsItsMethodsOnTheLoopThread() async throws {
        let loop = group.nextLoop()
        let counter = LoopCounter(loop: loop)
        let onLoop = try await withDeadline("100 concurrent calls finish") {
            await withTaskGroup(of: Bool.self) { calls in
                for _ in 0..<100 { calls.addTask { await counter.increment() } }
                return await calls.reduce(into: [Bool]()) { $0.append($1) }
            }
        }
        XCTAssertEqual(onLoop.count, 100)
        XCTAssertTrue(onLoop.allSatisfy { $0 }, "\(onLoop.filter { !$0 }.count) calls ran off the loop")
        let count = try await withDeadline("the count") { await counter.count }
        XCTAssertEqual(count, 100)
        // Code running on the loop (a handler, a loop task) may assume the actor's isolation.
        let seenFromLoop = try await withDeadline("a loop task reads the count") {
            try await loop.submit { counter.assumeIsolated { $0.count } }.get()
        }
        XCTAssertEqual(seenFromLoop, 100)
    }

    // MARK: Helpers

    private func connectAsyncClient(to server: ServerSocketChannel) async throws -> AsyncChannel<ByteBuffer, ByteBuffer> {
        let slot = Observed<AsyncChannel<ByteBuffer, ByteBuffer>?>(nil)
        let group = try XCTUnwrap(group)
        let serverAddress = try XCTUnwrap(server.localAddress)
        _ = try await withDeadline("the client connects") { try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                let connection = try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
                slot.update { $0 = connection }
            }
            .connect(to: serverAddress)
            .get()
        }
        return try XCTUnwrap(slot.value)
    }
}

// MARK: - Fixtures

private actor LoopCounter {
    let loop: EpollEventLoop
    private(set) var count = 0

    init(loop: EpollEventLoop) { self.loop = loop }

    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }

    /// Counts the call; returns whether it ran on the loop's thread.
    func increment() -> Bool {
        count += 1
        return loop.inEventLoop
    }
}

private struct ConsumerThreads: Sendable {
    var onLoop = 0
    var offLoop = 0
    mutating func record(onLoop: Bool) {
        if onLoop { self.onLoop += 1 } else { offLoop += 1 }
    }
}

private struct ServerReads: Sendable {
    var bytesRead = 0
    /// `read()` requests that reached the socket.
    var readsPassed = 0
    /// After the last batch of reads no `read()` reached the socket: it is not reading.
    var stalled = false
}

private struct ClientWrites: Sendable {
    var handedToKernel = 0
    var writable = true
    var unwritableTransitions = 0
}

private struct Consumed: Sendable {
    var bytes = 0
    var intact = false
    var ended = false
    var error: String?
}

/// Sits next to the server socket's head: sees every byte it reads and every `read()` that reaches it.
private final class ReadObserver: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let probe: Observed<ServerReads>
    private var readRequestedSinceBatch = true

    init(probe: Observed<ServerReads>) { self.probe = probe }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        let count = data.readableBytes
        probe.update { $0.bytesRead += count }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readRequestedSinceBatch = false
        // The socket asks for its next read right after this event; a loop task runs after that.
        let bound = LoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let observer = bound.value
            if !observer.readRequestedSinceBatch { observer.probe.update { $0.stalled = true } }
        }
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        readRequestedSinceBatch = true
        probe.update {
            $0.readsPassed += 1
            $0.stalled = false
        }
        context.read()
    }
}

/// Sends `total` pattern bytes in chunks, only while the channel is writable (so it turns unwritable
/// only when the kernel refuses bytes), then shuts its output.
private final class Flooder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let total: Int
    private let chunkSize: Int
    private let probe: Observed<ClientWrites>
    private var offset = 0
    private var closing = false

    init(total: Int, chunkSize: Int, probe: Observed<ClientWrites>) {
        self.total = total
        self.chunkSize = chunkSize
        self.probe = probe
    }

    func channelActive(context: ChannelHandlerContext) {
        writeWhileWritable(context: context)
        context.fireChannelActive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        probe.update {
            $0.writable = writable
            if !writable { $0.unwritableTransitions += 1 }
        }
        if writable { writeWhileWritable(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func writeWhileWritable(context: ChannelHandlerContext) {
        while offset < total, context.channel.isWritable {
            let chunk = Pattern.buffer(at: offset, count: min(chunkSize, total - offset))
            offset += chunk.readableBytes
            let promise = context.eventLoop.makePromise(of: Void.self)
            let size = chunk.readableBytes
            let probe = probe
            promise.futureResult.whenSuccess { probe.update { $0.handedToKernel += size } }
            context.writeAndFlush(chunk, promise: promise)
        }
        if offset == total, !closing {
            closing = true
            context.close(mode: .output)
        }
    }
}

/// Bytes whose value at stream offset `i` is `i % 251`, so a lost, repeated or reordered byte shows.
private enum Pattern {
    static let period = 251
    /// The pattern from offset 0, long enough for any 64 KiB piece starting anywhere in a period.
    static let base: [UInt8] = (0..<(64 * 1024 + period)).map { UInt8($0 % period) }

    static func buffer(at offset: Int, count: Int) -> ByteBuffer {
        precondition(count <= 64 * 1024)
        let start = offset % period
        return ByteBuffer(bytes: base[start..<(start + count)])
    }

    static func chunks(total: Int, size: Int) -> [ByteBuffer] {
        stride(from: 0, to: total, by: size).map { buffer(at: $0, count: min(size, total - $0)) }
    }

    /// Checks a stream piece by piece.
    struct Checker {
        private(set) var offset = 0
        private(set) var intact = true

        mutating func check(_ buffer: ByteBuffer) {
            buffer.withUnsafeReadableBytes { bytes in
                var done = 0
                while done < bytes.count {
                    let count = min(64 * 1024, bytes.count - done)
                    let start = (offset + done) % Pattern.period
                    let same = Pattern.base.withUnsafeBytes { expected in
                        memcmp(bytes.baseAddress! + done, expected.baseAddress! + start, count) == 0
                    }
                    if !same { intact = false }
                    done += count
                }
            }
            offset += buffer.readableBytes
        }
    }
}

// MARK: - Waiting, event-driven and bounded

/// A value shared across threads that tasks can wait on: each update wakes the waiters whose
/// condition now holds.
private final class Observed<Value: Sendable>: Sendable {
    private struct Waiter {
        var condition: @Sendable (Value) -> Bool
        var continuation: CheckedContinuation<Value, Never>
    }

    private struct State: @unchecked Sendable {
        // Unchecked: only touched under the mutex; each continuation is resumed once, outside it.
        var value: Value
        var waiters: [Waiter] = []
    }

    private let state: LockedValue<State>

    init(_ value: Value) { state = LockedValue(State(value: value)) }

    var value: Value { state.withLock { $0.value } }

    func update(_ change: (inout Value) -> Void) {
        let (woken, value) = state.withLock { state -> ([CheckedContinuation<Value, Never>], Value) in
            change(&state.value)
            var woken: [CheckedContinuation<Value, Never>] = []
            state.waiters.removeAll { waiter in
                guard waiter.condition(state.value) else { return false }
                woken.append(waiter.continuation)
                return true
            }
            return (woken, state.value)
        }
        for continuation in woken { continuation.resume(returning: value) }
    }

    /// Returns the value once `condition` holds (at once if it already does).
    func wait(until condition: @escaping @Sendable (Value) -> Bool) async -> Value {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Value? in
                if condition(state.value) { return state.value }
                state.waiters.append(Waiter(condition: condition, continuation: continuation))
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }
}

private struct DeadlineExceeded: Error, CustomStringConvertible {
    var what: String
    var seconds: Int
    var description: String { "not done within \(seconds) s: \(what)" }
}

/// The result of `body`, or a `DeadlineExceeded` error (failing the test) if it takes longer than
/// `seconds`; the body's task is then cancelled and abandoned.
private func withDeadline<T: Sendable>(
    _ what: String, within seconds: Int = 20, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.arm(continuation)
        let work = Task {
            do { race.finish(.success(try await body())) } catch { race.finish(.failure(error)) }
        }
        // The deadline itself, on a timer thread: it never decides when the awaited thing is done
        // (once the body has won the race, the timer's late `finish` does nothing).
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(seconds)) {
            if race.finish(.failure(DeadlineExceeded(what: what, seconds: seconds))) { work.cancel() }
        }
    }
}

/// Hands the first of two outcomes to a continuation.
private final class Race<T: Sendable>: Sendable {
    private struct State: @unchecked Sendable {
        // Unchecked: only touched under the mutex.
        var continuation: CheckedContinuation<T, any Error>?
        var finished = false
    }

    private let state = LockedValue(State())

    func arm(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    /// Resumes the continuation unless an outcome came first; returns whether this one won.
    @discardableResult
    func finish(_ result: Result<T, any Error>) -> Bool {
        let won = state.withLock { state -> CheckedContinuation<T, any Error>?? in
            guard !state.finished else { return nil }
            state.finished = true
            let taken = state.continuation
            state.continuation = nil
            return .some(taken)
        }
        guard let continuation = won else { return false }
        continuation?.resume(with: result)
        return true
    }
}
