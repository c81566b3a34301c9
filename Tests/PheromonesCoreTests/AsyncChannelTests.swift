import Dispatch
import Synchronization
import XCTest

import Pheromones
@testable import PheromonesCore

// The embedded loop is not thread-safe, so these tests and the consumer tasks they start run on the
// main actor; the inbound stream's iteration stays on the caller's isolation, so every touch of the
// embedded channel (including the bridge handing a held read back to the loop) happens there.
final class AsyncChannelTests: XCTestCase {
    // MARK: Delivery

    @MainActor
    func testMessagesArriveInOrderThroughForTryAwait() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        // Queued before the consumer starts.
        try channel.writeInbound("one")
        try channel.writeInbound("two")
        let consumer = Task { @MainActor in
            var received: [String] = []
            for try await message in bridge.inbound { received.append(message) }
            return received
        }
        try await waitUntil("the consumer has taken the queued messages and waits") {
            bridge.inbound.buffer.isConsumerWaiting
        }
        // Handed straight to the waiting consumer.
        try channel.writeInbound("three")
        try await waitUntil("the consumer waits again") { bridge.inbound.buffer.isConsumerWaiting }
        try channel.writeInbound("four")
        try channel.writeInbound("five")
        channel.close()
        let received = try await withDeadline("the consumer sees the end of the stream") { try await consumer.value }
        XCTAssertEqual(received, ["one", "two", "three", "four", "five"])
    }

    // MARK: Backpressure

    @MainActor
    func testReadsAreHeldBackOnceFourMessagesWaitAndResumeWhenTheConsumerIsDownToOne() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<Int, Int>(wrapping: channel, configuration: .init(highWatermark: 4, lowWatermark: 1))

        channel.pipeline.read()  // what a socket channel asks for once active
        XCTAssertEqual(channel.readRequests, 1)
        for message in 1...3 { try deliverLikeASocket(message, to: channel) }
        XCTAssertEqual(channel.readRequests, 4, "with fewer than 4 messages waiting, every read is passed on")
        try deliverLikeASocket(4, to: channel)
        XCTAssertEqual(channel.readRequests, 4, "with 4 messages waiting, the read is held")
        channel.pipeline.read()
        channel.pipeline.read()
        XCTAssertEqual(channel.readRequests, 4, "further reads are held too")

        try await assertNext(bridge.inbound, 1)
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 4, "3 waiting: still held")
        try await assertNext(bridge.inbound, 2)
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 4, "2 waiting: still held")
        try await assertNext(bridge.inbound, 3)
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 5, "1 waiting: the held read is issued")
        try await assertNext(bridge.inbound, 4)
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 5, "the held read is issued once")

        try deliverLikeASocket(5, to: channel)
        XCTAssertEqual(channel.readRequests, 6, "reading goes on as before")
        try await assertNext(bridge.inbound, 5)
    }

    @MainActor
    func testAHeldReadHandedBackIsHeldAgainIfTheQueueFilledUpBeforeItReachedTheLoop() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<Int, Int>(wrapping: channel, configuration: .init(highWatermark: 4, lowWatermark: 1))
        for message in 1...4 { try deliverLikeASocket(message, to: channel) }
        XCTAssertEqual(channel.readRequests, 3)

        // The consumer drains to 1 and hands the read back to the loop; before the loop runs it,
        // other stages push three more messages.
        for expected in 1...3 { try await assertNext(bridge.inbound, expected) }
        for message in 5...7 { channel.pipeline.fireChannelRead(message) }
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 3, "4 messages wait again when the read reaches the loop: it stays held")

        for expected in 4...6 { try await assertNext(bridge.inbound, expected) }
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 4, "down to 1 again: now it is issued")
        try await assertNext(bridge.inbound, 7)
    }

    // MARK: End of stream

    @MainActor
    func testTheStreamEndsWhenTheChannelClosesAfterTheQueuedMessages() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        try channel.writeInbound("queued")
        channel.close()
        try await assertNext(bridge.inbound, "queued")
        try await assertNext(bridge.inbound, nil)
        try await assertNext(bridge.inbound, nil, "an ended stream stays ended")
    }

    @MainActor
    func testAWaitingConsumerSeesTheEndWhenTheChannelCloses() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        let consumer = Task { @MainActor in try await firstMessage(of: bridge.inbound) }
        try await waitUntil("the consumer waits") { bridge.inbound.buffer.isConsumerWaiting }
        channel.close()
        let message = try await withDeadline("the waiting consumer sees the end") { try await consumer.value }
        XCTAssertNil(message)
    }

    @MainActor
    func testTheStreamEndsWhenTheInputCloses() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        try channel.writeInbound("last")
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        try await assertNext(bridge.inbound, "last")
        try await assertNext(bridge.inbound, nil)
        XCTAssertTrue(channel.isActive, "a half-closed channel stays open")
        XCTAssertEqual(channel.unhandledUserEvents.compactMap { $0 as? ChannelEvent }, [.inputClosed], "the event goes on")
    }

    @MainActor
    func testTheStreamThrowsTheCaughtErrorToAWaitingConsumerOnceAndThenEnds() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        let consumer = Task { @MainActor in
            var received: [String] = []
            do {
                for try await message in bridge.inbound { received.append(message) }
                return (received, nil as (any Error)?)
            } catch {
                return (received, error)
            }
        }
        try channel.writeInbound("before")
        try await waitUntil("the consumer waits") { bridge.inbound.buffer.isConsumerWaiting }
        channel.pipeline.fireErrorCaught(BridgeTestError.broken)
        let (received, error) = try await withDeadline("the consumer sees the error") { await consumer.value }
        XCTAssertEqual(received, ["before"])
        XCTAssertEqual(error as? BridgeTestError, .broken)
        XCTAssertThrowsError(try channel.throwIfErrorCaught(), "the error goes on down the pipeline") {
            XCTAssertEqual($0 as? BridgeTestError, .broken)
        }

        try await assertNext(bridge.inbound, nil, "thrown once, then the stream has ended")
        try channel.writeInbound("after")
        try await assertNext(bridge.inbound, nil, "what arrives after the end is dropped")
    }

    @MainActor
    func testQueuedMessagesComeBeforeTheCaughtErrorAndNothingIsReadAfterIt() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        try channel.writeInbound("a")
        try channel.writeInbound("b")
        channel.pipeline.fireErrorCaught(BridgeTestError.broken)
        _ = try? channel.throwIfErrorCaught()

        let readsBefore = channel.readRequests
        channel.pipeline.read()
        XCTAssertEqual(channel.readRequests, readsBefore, "after the end, reads are held: what they read would be dropped")

        try await assertNext(bridge.inbound, "a")
        try await assertNext(bridge.inbound, "b")
        let outcome = try await withDeadline("the consumer gets the error") { await nextResult(of: bridge.inbound) }
        XCTAssertThrowsError(try outcome.get(), "expected the caught error") { XCTAssertEqual($0 as? BridgeTestError, .broken) }
        try await assertNext(bridge.inbound, nil)
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, readsBefore, "draining an ended stream issues no read")
    }

    @MainActor
    func testWrappingAChannelThatHasAlreadyClosedEndsTheStreamAtOnce() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        channel.close()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        let consumer = Task { @MainActor in try await firstMessage(of: bridge.inbound) }
        let message = try await withDeadline("the stream of a closed channel ends") { try await consumer.value }
        XCTAssertNil(message)
    }

    @MainActor
    func testRemovingTheBridgePassesItsHeldReadOnAndEndsTheStream() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<Int, Int>(wrapping: channel, configuration: .init(highWatermark: 2, lowWatermark: 0))
        for message in 1...2 { try deliverLikeASocket(message, to: channel) }
        XCTAssertEqual(channel.readRequests, 1, "the second read is held")

        try channel.pipeline.removeHandler(name: "async-bridge")
        XCTAssertEqual(channel.readRequests, 2, "the held read is not swallowed: whoever reads next gets it")
        try await assertNext(bridge.inbound, 1)
        try await assertNext(bridge.inbound, 2)
        try await assertNext(bridge.inbound, nil)
        channel.loop.run()
        XCTAssertEqual(channel.readRequests, 2, "the removed bridge issues no other read")
    }

    @MainActor
    func testTheBridgeIsReleasedOnceTheChannelHasClosed() throws {
        weak var handler: AnyObject?
        weak var buffer: AnyObject?
        do {
            let channel = try EmbeddedChannel()
            channel.connect()
            let bridge = try AsyncChannel<Int, Int>(wrapping: channel, configuration: .init(highWatermark: 1, lowWatermark: 0))
            try deliverLikeASocket(1, to: channel)
            handler = channel.pipeline.handler(type: AsyncBridgeHandler<Int, Int>.self)
            buffer = bridge.inbound.buffer
            XCTAssertNotNil(handler)
            try channel.finish()
        }
        XCTAssertNil(handler, "the bridge handler leaked (a cycle through its context)")
        XCTAssertNil(buffer, "the inbound buffer leaked")
    }

    // MARK: Writing

    @MainActor
    func testTheWriterWritesAndFinishHalfClosesTheOutput() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)

        try await withDeadline("a write") { try await bridge.outbound.write("one") }
        XCTAssertEqual(try channel.readOutbound(as: String.self), "one")
        try await withDeadline("two writes") { try await bridge.outbound.write(contentsOf: ["two", "three"]) }
        XCTAssertEqual(try channel.readOutbound(as: String.self), "two")
        XCTAssertEqual(try channel.readOutbound(as: String.self), "three")
        XCTAssertNil(try channel.readOutbound(as: String.self))

        try await withDeadline("the output shutdown") { try await bridge.outbound.finish() }
        XCTAssertEqual(channel.unhandledUserEvents.compactMap { $0 as? ChannelEvent }, [.outputClosed])
        XCTAssertTrue(channel.isActive, "only the output is closed")
        try channel.writeInbound("still reading")
        try await assertNext(bridge.inbound, "still reading")
    }

    @MainActor
    func testAWriteToAClosedChannelThrows() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        channel.close()
        let failed = try await withDeadline("a write to a closed channel") {
            do { try await bridge.outbound.write("too late") } catch { return true }
            return false
        }
        XCTAssertTrue(failed, "a write to a closed channel succeeded")
    }

    // MARK: Cancellation

    @MainActor
    func testACancelledConsumerWaitingInNextGetsCancellationError() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        let consumer = Task { @MainActor in try await firstMessage(of: bridge.inbound) }
        try await waitUntil("the consumer waits in next()") { bridge.inbound.buffer.isConsumerWaiting }

        consumer.cancel()
        let outcome = try await withDeadline("the cancelled consumer returns") { await consumer.result }
        XCTAssertThrowsError(try outcome.get()) { XCTAssertTrue($0 is CancellationError, "got \($0)") }
        XCTAssertFalse(bridge.inbound.buffer.isConsumerWaiting, "the continuation was let go")

        // The stream is intact: the next consumer gets the next message.
        try channel.writeInbound("after")
        try await assertNext(bridge.inbound, "after")
    }

    @MainActor
    func testAConsumerCancelledBeforeItAsksGetsCancellationErrorAndTheQueuedMessageStays() async throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        let bridge = try AsyncChannel<String, String>(wrapping: channel)
        try channel.writeInbound("kept")
        let consumer = Task { @MainActor in try await firstMessage(of: bridge.inbound) }
        consumer.cancel()  // before it runs: this test holds the main actor until it awaits
        let outcome = try await withDeadline("the cancelled consumer returns") { await consumer.result }
        XCTAssertThrowsError(try outcome.get()) { XCTAssertTrue($0 is CancellationError, "got \($0)") }

        try await assertNext(bridge.inbound, "kept")
    }

    // MARK: Helpers

    /// Asserts that the stream's next message (taken on the main actor, within the deadline) is `expected`.
    @MainActor
    private func assertNext<Element: Equatable & Sendable>(
        _ stream: AsyncInboundStream<Element>, _ expected: Element?, _ explanation: String = "",
        file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let actual = try await withDeadline("the next message") { await nextResult(of: stream) }.get()
        XCTAssertEqual(actual, expected, explanation, file: file, line: line)
    }

    /// A batch of one message, then the read request a socket channel with auto-read issues after a batch.
    @MainActor
    private func deliverLikeASocket<Message>(_ message: Message, to channel: EmbeddedChannel) throws {
        try channel.writeInbound(message)
        channel.pipeline.read()
    }
}

private enum BridgeTestError: Error, Equatable {
    case broken
}

/// The outcome of one `next()` on `stream`, taken on the main actor.
@MainActor
private func nextResult<Element: Sendable>(of stream: AsyncInboundStream<Element>) async -> Result<Element?, any Error> {
    var messages = stream.makeAsyncIterator()
    do { return .success(try await messages.next(isolation: MainActor.shared)) } catch { return .failure(error) }
}

/// The first message of `stream`, iterated on the caller's isolation (nil if it ends first).
private func firstMessage<Element: Sendable>(
    of stream: AsyncInboundStream<Element>, isolation: isolated (any Actor)? = #isolation
) async throws -> Element? {
    for try await message in stream { return message }
    return nil
}

// MARK: - Bounded waiting

private struct DeadlineExceeded: Error, CustomStringConvertible {
    var what: String
    var seconds: Int
    var description: String { "not done within \(seconds) s: \(what)" }
}

/// Yields until `condition` holds; throws (failing the test) after `seconds`.
@MainActor
private func waitUntil(_ what: String, within seconds: Int = 10, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw DeadlineExceeded(what: what, seconds: seconds) }
        await Task.yield()
    }
}

/// The result of `body` (run on the main actor), or a `DeadlineExceeded` error (failing the test)
/// if it takes longer than `seconds`; the body's task is then cancelled and abandoned.
@MainActor
private func withDeadline<T: Sendable>(
    _ what: String, within seconds: Int = 10, _ body: @escaping @MainActor @Sendable () async throws -> T
) async throws -> T {
    let race = Race<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.arm(continuation)
        let work = Task { @MainActor in
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
