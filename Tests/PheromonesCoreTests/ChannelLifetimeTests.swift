import XCTest

import Pheromones

/// How long a channel lives, and what a context or a channel reference that outlived the close can
/// still do: on the embedded channel, where every step is deterministic.
final class ChannelLifetimeTests: XCTestCase {
    // MARK: Lifetime

    func testAHandlerThatKeptItsContextCanUseItAfterTheChannelIsGoneAndEveryOperationFails() throws {
        let loop = EmbeddedEventLoop()
        let keeper = ContextKeeper()
        weak var weakChannel: EmbeddedChannel?
        do {
            let channel = try EmbeddedChannel(handler: keeper, loop: loop)
            weakChannel = channel
            channel.connect()
            channel.close()
            loop.run()
        }
        XCTAssertNil(weakChannel, "a closed channel that only a stale context refers to is freed")
        let context = try XCTUnwrap(keeper.context)

        XCTAssertFalse(context.channel.isActive)
        XCTAssertTrue(context.channel.closeFuture.isFulfilled)
        XCTAssertTrue(context.isRemoved)
        assertEveryOperationFails(through: context)
        assertEveryOperationFails(on: context.channel)
    }

    func testAContextKeptByAHandlerKeepsAnOpenChannelAlive() throws {
        let loop = EmbeddedEventLoop()
        let keeper = ContextKeeper()
        weak var weakChannel: EmbeddedChannel?
        do {
            let channel = try EmbeddedChannel(handler: keeper, loop: loop)
            weakChannel = channel
            channel.connect()
        }
        XCTAssertNotNil(weakChannel, "the handler's context keeps the channel alive")
        let context = try XCTUnwrap(keeper.context)
        XCTAssertTrue(context.channel.isActive)

        let written = loop.makePromise(of: Void.self)
        context.writeAndFlush("still here", promise: written)
        assertSucceeded(written.futureResult)
        XCTAssertEqual(try weakChannel?.readOutbound(as: String.self), "still here")

        let closed = loop.makePromise(of: Void.self)
        context.close(promise: closed)
        assertSucceeded(closed.futureResult)
        loop.run()
        XCTAssertNil(weakChannel, "once closed, the channel is freed although the handler keeps its context")
        assertEveryOperationFails(through: context)
    }

    func testOperationsThroughAStaleContextOrAHeldChannelFailBothBeforeAndAfterThePipelineLetsGoOfTheChannel() throws {
        let keeper = ContextKeeper()
        let channel = try EmbeddedChannel(handler: keeper)
        channel.connect()
        let context = try XCTUnwrap(keeper.context)
        channel.close()

        // The same turn: the removed context still links to the head, and the pipeline still holds the channel.
        assertEveryOperationFails(through: context)
        assertEveryOperationFails(on: channel)
        XCTAssertTrue(context.channel === channel)

        // The next turn: the pipeline has let go of the channel; the context reaches it while the test holds it.
        channel.loop.run()
        assertEveryOperationFails(through: context)
        assertEveryOperationFails(on: channel)
        XCTAssertTrue(context.channel === channel)
        XCTAssertEqual(channel.pipeline.handlerNames, [])
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testAClosedChannelThatNobodyHoldsIsFreedWhateverClosedIt() throws {
        for closing in ["close", "finish", "a handler", "never connected"] {
            weak var weakChannel: EmbeddedChannel?
            weak var weakHandler: ClosesOnRead?
            let loop = EmbeddedEventLoop()
            do {
                let handler = ClosesOnRead()
                weakHandler = handler
                let channel = try EmbeddedChannel(handlers: [ContextKeeper(), handler], loop: loop)
                weakChannel = channel
                if closing != "never connected" { channel.connect() }
                switch closing {
                case "close", "never connected": channel.close()
                case "finish": try channel.finish()
                default: try channel.writeInbound("close, please")
                }
                XCTAssertNotNil(weakChannel, "\(closing): the pipeline holds the channel until the loop's next turn")
                loop.run()
            }
            XCTAssertNil(weakChannel, "\(closing): the closed channel leaked")
            XCTAssertNil(weakHandler, "\(closing): the removed handler leaked")
        }
    }

    func testAHandlerAddedAfterTheChannelClosedIsRemovedAtOnce() throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        channel.close()
        for turn in ["same turn", "next turn"] {
            if turn == "next turn" { channel.loop.run() }
            let keeper = ContextKeeper()
            XCTAssertNoThrow(try channel.pipeline.addHandler(keeper))
            XCTAssertEqual(keeper.events, ["added", "removed"], turn)
            XCTAssertEqual(channel.pipeline.handlerNames, [], turn)
            let written = channel.loop.makePromise(of: Void.self)
            keeper.context?.write("too late", promise: written)
            assertFailed(written.futureResult, with: ChannelError.ioOnClosedChannel)
        }
    }

    // MARK: Failing without re-entrancy

    func testWritesFromChannelInactiveAndFromAFailedWritesCallbackFailAtOnceAndTheChannelIsInactiveThere() throws {
        let handler = WritesWhileClosing()
        let channel = try EmbeddedChannel(handler: handler)
        channel.connect()
        let pending = channel.loop.makePromise(of: Void.self)
        channel.pipeline.write("queued, never flushed", promise: pending)
        pending.futureResult.whenCompleteOnLoop { _ in handler.writeFromCallback() }

        let closed = channel.close()
        assertSucceeded(closed)
        assertFailed(pending.futureResult, with: ChannelError.closedBeforeWriteCompleted)
        XCTAssertEqual(handler.activeInInactive, [false])
        XCTAssertEqual(handler.writeResults.map { "\($0.0): \($0.1.map { "\($0)" } ?? "pending")" }, [
            "callback: I/O on a closed channel",
            "inactive: I/O on a closed channel",
        ])
        XCTAssertEqual(handler.closeFromInactive?.isFulfilled, true)
        XCTAssertTrue(try channel.finish().isClean)
    }

    // MARK: Helpers

    private func assertEveryOperationFails(through context: ChannelHandlerContext, file: StaticString = #filePath, line: UInt = #line) {
        let loop = context.eventLoop
        let write = loop.makePromise(of: Void.self)
        context.write("late", promise: write)
        let writeAndFlush = loop.makePromise(of: Void.self)
        context.writeAndFlush("late", promise: writeAndFlush)
        context.flush()
        context.read()
        let close = loop.makePromise(of: Void.self)
        context.close(promise: close)
        let connect = loop.makePromise(of: Void.self)
        context.connect(to: .loopbackV4(port: 1), promise: connect)
        let pipelineWrite = loop.makePromise(of: Void.self)
        context.pipeline.writeAndFlush("late", promise: pipelineWrite)
        assertFailed(write.futureResult, with: ChannelError.ioOnClosedChannel, file: file, line: line)
        assertFailed(writeAndFlush.futureResult, with: ChannelError.ioOnClosedChannel, file: file, line: line)
        assertFailed(close.futureResult, with: ChannelError.alreadyClosed, file: file, line: line)
        assertFailed(connect.futureResult, with: ChannelError.ioOnClosedChannel, file: file, line: line)
        assertFailed(pipelineWrite.futureResult, with: ChannelError.ioOnClosedChannel, file: file, line: line)
    }

    private func assertEveryOperationFails(on channel: any Channel, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(channel.isActive, file: file, line: line)
        assertFailed(channel.write("late"), with: ChannelError.ioOnClosedChannel, file: file, line: line)
        assertFailed(channel.writeAndFlush("late"), with: ChannelError.ioOnClosedChannel, file: file, line: line)
        channel.flush()
        channel.read()
        assertFailed(channel.close(), with: ChannelError.alreadyClosed, file: file, line: line)
    }
}

// MARK: - Fixtures

/// Keeps its context, as SwiftNIO handlers routinely do, and never lets it go.
private final class ContextKeeper: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String
    typealias OutboundOut = String

    private(set) var context: ChannelHandlerContext?
    private(set) var events: [String] = []

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        events.append("added")
    }

    func handlerRemoved(context: ChannelHandlerContext) { events.append("removed") }
}

/// Closes the channel when anything is read.
private final class ClosesOnRead: ChannelInboundHandler {
    typealias InboundIn = String

    func channelRead(context: ChannelHandlerContext, data: String) { context.close(promise: nil) }
}

/// Writes from `channelInactive` and from a failed write's callback, and records what happened.
private final class WritesWhileClosing: ChannelInboundHandler {
    typealias InboundIn = String
    typealias OutboundOut = String

    private var context: ChannelHandlerContext?
    private(set) var activeInInactive: [Bool] = []
    private(set) var writeResults: [(String, (any Error)?)] = []
    private(set) var closeFromInactive: Future<Void>?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }
    func channelRead(context: ChannelHandlerContext, data: String) {}

    func channelInactive(context: ChannelHandlerContext) {
        activeInInactive.append(context.channel.isActive)
        write("inactive", through: context)
        let close = context.eventLoop.makePromise(of: Void.self)
        context.close(promise: close)
        closeFromInactive = close.futureResult
    }

    func writeFromCallback() {
        guard let context else { return XCTFail("the callback ran after the handler was removed") }
        write("callback", through: context)
    }

    private func write(_ label: String, through context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(label, promise: promise)
        switch promise.futureResult.resultIfAvailable {
        case .failure(let error): writeResults.append((label, error))
        case .success: writeResults.append((label, nil)); XCTFail("\(label): a write on a closing channel succeeded")
        case nil: writeResults.append((label, nil)); XCTFail("\(label): a write on a closing channel did not fail at once")
        }
    }
}

private func assertFailed<Value, Expected: Error & Equatable>(
    _ future: Future<Value>, with expected: Expected, file: StaticString = #filePath, line: UInt = #line
) {
    guard let result = future.resultIfAvailable else {
        return XCTFail("the future has not completed", file: file, line: line)
    }
    switch result {
    case .success: XCTFail("the future succeeded; expected \(expected)", file: file, line: line)
    case .failure(let error): XCTAssertEqual(error as? Expected, expected, "failed with \(error)", file: file, line: line)
    }
}

private func assertSucceeded<Value>(_ future: Future<Value>, file: StaticString = #filePath, line: UInt = #line) {
    guard let result = future.resultIfAvailable else {
        return XCTFail("the future has not completed", file: file, line: line)
    }
    if case .failure(let error) = result { XCTFail("the future failed with \(error)", file: file, line: line) }
}
