import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest
import PheromonesTestSupport

/// How long socket channels live: a channel stays alive while anything refers to it, every
/// operation after the close fails with a ``ChannelError`` instead of trapping, and a closed channel
/// nobody refers to is freed. Loopback, port 0, bounded waits.
final class SocketChannelLifetimeTests: XCTestCase {
    func testAHandlerThatKeepsItsContextAndWritesFromATimerAfterThePeerHasGoneGetsChannelErrorsOnOneThousandConnections() async throws {
        let connections = 1_000
        try raiseDescriptorLimit(atLeast: 2 * connections + 256)
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = LateWriteLog(connections: connections)
        let accepted = WeakChannels()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.track(channel)
                try channel.pipeline.addHandler(LateWriter(log: log))
            }
            .bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(server.localAddress?.port)

        var clients: [RawClient] = []
        for _ in 0..<connections { clients.append(try RawClient.connect(port: port)) }
        await fulfillment(of: [log.allActive], timeout: 60)
        // Half the peers reset, half close: either way each channel closes, and 10 ms later its
        // handler writes through the context it kept.
        for (index, client) in clients.enumerated() {
            if index.isMultiple(of: 2) { client.reset() } else { client.close() }
        }
        await fulfillment(of: [log.allInactive, log.allLateWritesDone], timeout: 60)

        let outcomes = log.outcomes
        XCTAssertEqual(outcomes.count, connections * LateWriter.attempts.count)
        for (attempt, outcome) in outcomes {
            let expected: ChannelError = attempt == "close" ? .alreadyClosed : .ioOnClosedChannel
            XCTAssertEqual(outcome as? ChannelError, expected, "\(attempt): \(String(describing: outcome))")
        }
        // The channels are gone although their handlers kept their contexts until the timers fired.
        try await server.loop.submit {}.get(within: 10)
        XCTAssertEqual(accepted.count, connections)
        XCTAssertEqual(accepted.alive, 0, "closed channels were not freed")

        // And the server still serves.
        let client = try RawClient.connect(port: port)
        try client.write(Array("still there?".utf8))
        XCTAssertEqual(String(decoding: client.read(12), as: UTF8.self), "still there?")
        client.close()
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testOperationsThroughAStaleContextOrAHeldSocketChannelFailOnceClosedBeforeAndAfterThePipelineLetsGoOfIt() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(ByteContextKeeper(), name: "keeper") }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        // Close, and try everything in the same turn: the pipeline still holds the channel.
        let (sameTurn, kept) = try await client.loop.submit { () -> ([String], LoopBound<ChannelHandlerContext?>) in
            let context = client.pipeline.context(name: "keeper")
            client.pipeline.close(promise: nil)
            return (Self.everyOperationsFailure(through: context, channel: client), LoopBound(context, eventLoop: client.loop))
        }.get(within: 10)
        // And in a later turn: the pipeline has let go of it.
        let laterTurn = try await client.loop.submit { () -> [String] in
            Self.everyOperationsFailure(through: kept.value, channel: client)
        }.get(within: 10)
        let expected = [
            "context.write: I/O on a closed channel", "context.writeAndFlush: I/O on a closed channel",
            "context.close: the channel is already closed", "context.channel.writeAndFlush: I/O on a closed channel",
            "channel.write: I/O on a closed channel", "channel.writeAndFlush: I/O on a closed channel",
            "channel.close: the channel is already closed", "channel.pipeline.connect: I/O on a closed channel",
        ]
        XCTAssertEqual(sameTurn, expected)
        XCTAssertEqual(laterTurn, expected)
        XCTAssertFalse(client.isActive)
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAClosedSocketChannelThatNobodyHoldsIsFreedOnBothEnds() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let accepted = WeakChannels()
        let serverLog = ServerLog()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.track(channel)
                try channel.pipeline.addHandlers([Recorder(serverLog.newRecord()), EchoingHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)

        weak var weakClient: SocketChannel?
        let clientLoop: EpollEventLoop
        do {
            let record = ConnectionRecord(name: "client", expectedBytes: 5)
            let client = try await ClientBootstrap(group: group)
                .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
                .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
            weakClient = client
            clientLoop = client.loop
            try await client.writeAndFlush(ByteBuffer(string: "hello")).get(within: 10)
            await fulfillment(of: [record.receivedAll], timeout: 10)
            try await client.close().get(within: 10)
        }
        let child = try XCTUnwrap(serverLog.records.first)
        await fulfillment(of: [child.inactive], timeout: 10)
        // The pipelines let go of their channels on the loops' next turns.
        try await clientLoop.submit {}.get(within: 10)
        for loop in group.epollLoops { try await loop.submit {}.get(within: 10) }
        XCTAssertNil(weakClient, "the closed client channel leaked")
        XCTAssertEqual(accepted.count, 1)
        XCTAssertEqual(accepted.alive, 0, "the closed accepted channel leaked")
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testTheCloseFutureCompletesWhetherAskedForBeforeTheCloseFromChannelInactiveOrAfterTheClose() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        let askedInInactive = LockedValue<Future<Void>?>(nil)
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(CloseFutureAsker(slot: askedInInactive)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        // Asked from another thread before the close, twice: the same future.
        let before = client.closeFuture
        XCTAssertTrue(before === client.closeFuture)
        XCTAssertFalse(before.isFulfilled)
        try await client.close().get(within: 10)
        try await before.get(within: 10)
        try await XCTUnwrap(askedInInactive.withLock { $0 }).get(within: 10)
        // Asked after the close (the state the channel keeps instead of a future): complete at once.
        let after = client.closeFuture
        XCTAssertTrue(after.isFulfilled)
        try await after.get(within: 10)
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    /// Every operation through `context` and `channel`, each described as "what: how it failed".
    private static func everyOperationsFailure(through context: ChannelHandlerContext?, channel: SocketChannel) -> [String] {
        guard let context else { return ["the handler lost its context"] }
        let loop = channel.loop
        var attempts: [(String, Future<Void>)] = []
        func attempt(_ name: String, _ body: (Promise<Void>) -> Void) {
            let promise = loop.makePromise(of: Void.self)
            body(promise)
            attempts.append((name, promise.futureResult))
        }
        attempt("context.write") { context.write(ByteBuffer(string: "late"), promise: $0) }
        attempt("context.writeAndFlush") { context.writeAndFlush(ByteBuffer(string: "late"), promise: $0) }
        context.flush()
        context.read()
        attempt("context.close") { context.close(promise: $0) }
        attempts.append(("context.channel.writeAndFlush", context.channel.writeAndFlush(ByteBuffer(string: "late"))))
        attempts.append(("channel.write", channel.write(ByteBuffer(string: "late"))))
        attempts.append(("channel.writeAndFlush", channel.writeAndFlush(ByteBuffer(string: "late"))))
        channel.flush()
        channel.read()
        attempts.append(("channel.close", channel.close()))
        attempt("channel.pipeline.connect") { channel.pipeline.connect(to: .loopbackV4(port: 1), promise: $0) }
        return attempts.map { name, future in
            switch future.resultIfAvailable {
            case .failure(let error as ChannelError): return "\(name): \(error)"
            case .failure(let error): return "\(name): not a ChannelError: \(error)"
            case .success: return "\(name): succeeded"
            case nil: return "\(name): did not fail at once"
            }
        }
    }
}

// MARK: - Fixtures

/// What the ``LateWriter``s saw, across the loop and the test.
private final class LateWriteLog: Sendable {
    let allActive: XCTestExpectation
    let allInactive: XCTestExpectation
    let allLateWritesDone: XCTestExpectation
    private let results = LockedValue<[(String, (any Error)?)]>([])

    init(connections: Int) {
        allActive = XCTestExpectation(description: "every connection is active")
        allActive.expectedFulfillmentCount = connections
        allInactive = XCTestExpectation(description: "every connection is inactive")
        allInactive.expectedFulfillmentCount = connections
        allLateWritesDone = XCTestExpectation(description: "every late write has completed")
        allLateWritesDone.expectedFulfillmentCount = connections
    }

    func record(_ attempt: String, _ result: Result<Void, any Error>) {
        let error: (any Error)? = if case .failure(let error) = result { error } else { nil }
        results.withLock { $0.append((attempt, error)) }
    }

    var outcomes: [(String, (any Error)?)] { results.withLock { $0 } }
}

/// Keeps its context, as SwiftNIO handlers routinely do; echoes; and once the channel is inactive,
/// writes and closes through the kept context from a timer, as a handler with periodic work would.
private final class LateWriter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let attempts = ["context.writeAndFlush", "context.channel.writeAndFlush", "context.pipeline.writeAndFlush", "close"]

    private let log: LateWriteLog
    private var context: ChannelHandlerContext?

    init(log: LateWriteLog) { self.log = log }

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        log.allActive.fulfill()
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { context.writeAndFlush(data, promise: nil) }

    func channelInactive(context: ChannelHandlerContext) {
        log.allInactive.fulfill()
        let bound = LoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: .milliseconds(10)) { bound.value.writeLate() }
    }

    private func writeLate() {
        guard let context else { return XCTFail("the context is gone") }
        let loop = context.eventLoop
        let viaContext = loop.makePromise(of: Void.self)
        context.writeAndFlush(ByteBuffer(string: "late"), promise: viaContext)
        let viaChannel = context.channel.writeAndFlush(ByteBuffer(string: "late"))
        let viaPipeline = loop.makePromise(of: Void.self)
        context.pipeline.writeAndFlush(ByteBuffer(string: "late"), promise: viaPipeline)
        let close = loop.makePromise(of: Void.self)
        context.close(promise: close)
        for (attempt, future) in zip(Self.attempts, [viaContext.futureResult, viaChannel, viaPipeline.futureResult, close.futureResult]) {
            future.whenComplete { [log] in log.record(attempt, $0) }
        }
        self.context = nil
        log.allLateWritesDone.fulfill()
    }
}

/// A `ByteBuffer` stage whose context the test keeps.
private final class ByteContextKeeper: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer
}

/// Asks for the channel's close future in `channelInactive`, when the close is under way but its
/// future is not complete yet.
private final class CloseFutureAsker: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let slot: LockedValue<Future<Void>?>

    init(slot: LockedValue<Future<Void>?>) { self.slot = slot }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

    func channelInactive(context: ChannelHandlerContext) {
        let future = context.channel.closeFuture
        XCTAssertFalse(future.isFulfilled, "the close future completed before channelInactive")
        slot.withLock { $0 = future }
        context.fireChannelInactive()
    }
}
