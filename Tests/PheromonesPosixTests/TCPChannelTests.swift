import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import Synchronization
import PheromonesEmbedded
import XCTest
import PheromonesTestSupport

/// TCP channels end to end over loopback: bulk transfer, many connections, half-closure, connect
/// failures, resets, backpressure, write promises, and the length-framed pipeline. Every socket is
/// on 127.0.0.1 with a kernel-chosen port; every wait is bounded; every test shuts its group down.
final class TCPChannelTests: XCTestCase {
    // MARK: Bulk transfer

    func testSixteenMebibytesInRandomChunksComeBackThroughAnEchoServerByteForByte() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let serverLog = ServerLog()
        let server = try await echoServer(group: group, log: serverLog)

        var random = SeededGenerator(seed: 0x16_16_16)
        let total = 16 << 20
        let payload = randomBuffer(count: total, using: &random)
        var pieces: [ByteBuffer] = []
        var offset = 0
        while offset < total {
            let size = min(Int.random(in: 1...65_536, using: &random), total - offset)
            pieces.append(payload.getSlice(at: offset, length: size)!)
            offset += size
        }
        let chunks = pieces

        let record = ConnectionRecord(name: "client", expectedBytes: total)
        let client = try await connectClient(group: group, to: server, record: record)
        // Written from the loop, one flush per chunk: most flushes meet a full socket and queue.
        try await client.loop.submit {
            for chunk in chunks { client.pipeline.writeAndFlush(chunk, promise: nil) }
        }.get(within: 10)

        await fulfillment(of: [record.receivedAll], timeout: 60)
        assertSameBytes(record.snapshot.received, payload)

        try await client.close().get(within: 10)
        let child = try XCTUnwrap(serverLog.records.first)
        await fulfillment(of: [record.inactive, child.inactive], timeout: 10)
        XCTAssertEqual(record.snapshot.inactiveCount, 1)
        XCTAssertEqual(child.snapshot.inactiveCount, 1)
        XCTAssertEqual(record.snapshot.errors.count, 0, "\(record.snapshot.errors)")
        try await group.shutdownGracefully()
    }

    func testOneThousandConcurrentConnectionsToOneServerOnASingleLoopEachGetTheirOwnMessageBack() async throws {
        let connections = 1_000
        try ensureDescriptorLimit(atLeast: 2 * connections + 256)
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serverLog = ServerLog()
        let server = try await echoServer(group: group, log: serverLog)

        var records: [ConnectionRecord] = []
        var messages: [ByteBuffer] = []
        var connects: [Future<SocketChannel>] = []
        for index in 0..<connections {
            let message = ByteBuffer(string: "connection #\(index) says \(String(repeating: "\(index % 10)", count: index % 97))")
            let record = ConnectionRecord(name: "client \(index)", expectedBytes: message.readableBytes)
            connects.append(ClientBootstrap(group: group)
                .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record, greeting: message)) }
                .connect(to: try XCTUnwrap(server.localAddress)))
            records.append(record)
            messages.append(message)
        }
        var clients: [SocketChannel] = []
        for connect in connects { clients.append(try await connect.get(within: 60)) }

        await fulfillment(of: records.map(\.receivedAll), timeout: 60)
        for (record, message) in zip(records, messages) {
            XCTAssertEqual(record.snapshot.received, message, "\(record.name) got someone else's bytes")
        }
        XCTAssertEqual(serverLog.records.count, connections)

        for client in clients { client.close() }
        await fulfillment(of: records.map(\.inactive) + serverLog.records.map(\.inactive), timeout: 60)
        for record in records + serverLog.records {
            XCTAssertEqual(record.snapshot.activeCount, 1, "\(record.name)")
            XCTAssertEqual(record.snapshot.inactiveCount, 1, "\(record.name)")
        }
        try await group.shutdownGracefully()
        // Shutdown closes nothing twice.
        for record in records + serverLog.records where record.snapshot.inactiveCount != 1 {
            XCTFail("\(record.name) fired channelInactive \(record.snapshot.inactiveCount) times")
        }
    }

    // MARK: Half-closure

    func testAClientThatClosesItsOutputStillReadsTheServersReplyAndThenSeesInactive() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let serverLog = ServerLog()
        var halfClosable = SocketOptions()
        halfClosable.allowRemoteHalfClosure = true
        let server = try await ServerBootstrap(group: group)
            .childOptions(halfClosable)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(serverLog.newRecord()), ReplyAtEndOfInputHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)

        let request = ByteBuffer(string: "the whole request, then end of stream")
        let reply = "reply to: the whole request, then end of stream"
        let record = ConnectionRecord(name: "client", expectedBytes: reply.utf8.count)
        let client = try await ClientBootstrap(group: group)
            .options(halfClosable)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        try await client.writeAndFlush(request).get(within: 10)
        try await client.close(mode: .output).get(within: 10)

        await fulfillment(of: [record.receivedAll, record.inactive], timeout: 10)
        let clientSaw = record.snapshot
        XCTAssertEqual(clientSaw.received, ByteBuffer(string: reply))
        XCTAssertEqual(clientSaw.events, [.outputClosed])
        XCTAssertEqual(clientSaw.inactiveCount, 1)
        XCTAssertEqual(clientSaw.errors.count, 0, "\(clientSaw.errors)")
        // `channelInactive` fires before the close future completes (the handlers are removed in between), and
        // the expectation is fulfilled on the loop thread: wait for the future rather than race it.
        try await client.closeFuture.get(within: 10)

        let child = try XCTUnwrap(serverLog.records.first)
        await fulfillment(of: [child.inactive], timeout: 10)
        let serverSaw = child.snapshot
        XCTAssertEqual(serverSaw.received, request)
        XCTAssertEqual(serverSaw.events, [.inputClosed], "the server did not see the end of input as a half-closure")
        XCTAssertEqual(serverSaw.inactiveCount, 1)
        XCTAssertEqual(serverSaw.errors.count, 0, "\(serverSaw.errors)")
        try await group.shutdownGracefully()
    }

    // MARK: Connect failures

    func testConnectingToAPortNobodyListensOnFailsWithConnectionRefused() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0)
        let address = try XCTUnwrap(listener.localAddress)
        try await listener.close().get(within: 10)

        let record = ConnectionRecord(name: "client")
        let start = Deadline.now()
        let error = await failure(of: ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: address))
        XCTAssertEqual(error as? ChannelError, .connectionRefused(address))
        XCTAssertLessThan((Deadline.now() - start).nanoseconds, TimeAmount.seconds(5).nanoseconds)
        XCTAssertEqual(record.snapshot.activeCount, 0)
        XCTAssertEqual(record.snapshot.inactiveCount, 0, "a channel that never became active fired channelInactive")
        try await group.shutdownGracefully()
    }

    func testConnectingToAListenerWhoseAcceptQueueIsFullFailsWithConnectTimeoutOnTime() async throws {
        // A listener with a backlog of 0 that never accepts holds one connection; the kernel drops
        // every later SYN, so a connect stays pending until our timeout. (A "non-routable" address
        // is no good here: this sandbox's network accepts outbound connections to anywhere.)
        let listener = try RawListener(backlog: 0)
        defer { listener.close() }
        let filler = try listener.connectRawClient()
        defer { try? Posix.live.close(filler) }

        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let timeout = TimeAmount.milliseconds(200)
        let record = ConnectionRecord(name: "client")
        let start = Deadline.now()
        let error = await failure(of: ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: listener.address))
        let elapsed = Deadline.now() - start
        XCTAssertEqual(error as? ChannelError, .connectTimeout(listener.address, timeout), "\(String(describing: error))")
        XCTAssertGreaterThanOrEqual(elapsed.nanoseconds, timeout.nanoseconds, "timed out before the timeout")
        XCTAssertLessThan(elapsed.nanoseconds, TimeAmount.seconds(5).nanoseconds)
        XCTAssertEqual(record.snapshot.activeCount, 0)
        XCTAssertEqual(record.snapshot.inactiveCount, 0, "a channel that never became active fired channelInactive")
        try await group.shutdownGracefully()
    }

    // MARK: Resets

    func testAPeerResetClosesTheChannelOnceWithConnectionResetOrPlainInactive() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try RawListener()
        defer { listener.close() }
        let record = ConnectionRecord(name: "client")
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: listener.address).get(within: 10)
        let peer = try listener.accept()
        try resetOnClose(peer)
        try Posix.live.close(peer)

        await fulfillment(of: [record.inactive], timeout: 10)
        try await client.closeFuture.get(within: 10)
        let saw = record.snapshot
        XCTAssertEqual(saw.inactiveCount, 1)
        for error in saw.errors {
            XCTAssertEqual(error as? ChannelError, .connectionReset, "unexpected error \(error)")
        }
        XCTAssertFalse(client.isActive)
        try await group.shutdownGracefully()
    }

    func testAPeerResetWhileWritesArePendingFailsThemAndClosesOnce() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try RawListener(receiveBufferSize: 64 * 1024)
        defer { listener.close() }
        var small = SocketOptions()
        small.sendBufferSize = 64 * 1024
        let record = ConnectionRecord(name: "client")
        let client = try await ClientBootstrap(group: group)
            .options(small)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: listener.address).get(within: 10)
        let peer = try listener.accept()

        // The peer never reads: most of this stays queued in the channel.
        let write = client.writeAndFlush(ByteBuffer(repeating: 0xAB, count: 8 << 20))
        try await client.loop.submit {}.get(within: 10)
        XCTAssertFalse(write.isFulfilled, "8 MiB fit into the kernel's buffers: the test proves nothing")
        try resetOnClose(peer)
        try Posix.live.close(peer)

        let error = await failure(of: write)
        XCTAssertTrue([.closedBeforeWriteCompleted, .connectionReset].contains(error as? ChannelError), "unexpected error \(String(describing: error))")
        await fulfillment(of: [record.inactive], timeout: 10)
        XCTAssertEqual(record.snapshot.inactiveCount, 1)
        try await group.shutdownGracefully()
    }

    // MARK: Backpressure

    func testAServerWritingToAClientThatStopsReadingTurnsUnwritableStopsAndResumesWhenTheClientReads() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let chunk = 64 * 1024
        var random = SeededGenerator(seed: 0xBACC_0FF)
        let total = 4 << 20
        let payload = randomBuffer(count: total, using: &random)
        let flood = FloodLog()
        let serverLog = ServerLog()
        var serverOptions = SocketOptions()
        serverOptions.sendBufferSize = 64 * 1024
        let waterMark = serverOptions.writeBufferWaterMark
        let server = try await ServerBootstrap(group: group)
            .childOptions(serverOptions)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([
                    Recorder(serverLog.newRecord(keepsBytes: false)),
                    FloodingHandler(payload: payload, chunkSize: chunk, log: flood),
                ])
            }
            .bind(host: "127.0.0.1", port: 0)

        var clientOptions = SocketOptions()
        clientOptions.autoRead = false
        clientOptions.receiveBufferSize = 64 * 1024
        let record = ConnectionRecord(name: "client", expectedBytes: total)
        let client = try await ClientBootstrap(group: group)
            .options(clientOptions)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        await fulfillment(of: [flood.becameUnwritable], timeout: 10)
        let writtenWhenBlocked = flood.bytesWritten
        // Let both loops run a full turn: a server still writing would have written more by now.
        for loop in group.epollLoops { try await loop.submit {}.get(within: 10) }
        XCTAssertEqual(flood.bytesWritten, writtenWhenBlocked, "the server kept writing while unwritable")
        XCTAssertEqual(flood.writability, [false])
        XCTAssertLessThan(writtenWhenBlocked, total, "everything fit in the buffers: the test proves nothing")
        // What the channel holds is at most the high water mark plus the chunk that crossed it; the
        // rest sits in the two sockets' kernel buffers (requested at 64 KiB, which Linux doubles and
        // loopback may stretch): a megabyte is far above all of that and far below the 4 MiB sent.
        XCTAssertLessThanOrEqual(writtenWhenBlocked, waterMark.high + chunk + (1 << 20), "\(writtenWhenBlocked) bytes written before the server stopped")
        XCTAssertEqual(record.snapshot.receivedCount, 0, "a client with auto-read off read before asking")

        try await client.loop.submit {
            let recorder = try XCTUnwrap(client.pipeline.handler(type: Recorder.self))
            recorder.readsOnDemand = true
            client.read()
        }.get(within: 10)

        await fulfillment(of: [record.receivedAll, flood.writableAgain], timeout: 60)
        assertSameBytes(record.snapshot.received, payload)
        let flips = flood.writability
        XCTAssertEqual(flips.first, false)
        for (before, after) in zip(flips, flips.dropFirst()) where before == after {
            XCTFail("writability changed to \(after) twice in a row: \(flips)")
        }
        // The server closes its output after the last byte; the client, not allowing half-closure,
        // closes in turn, and so does the server.
        let child = try XCTUnwrap(serverLog.records.first)
        await fulfillment(of: [record.inactive, child.inactive], timeout: 10)
        XCTAssertEqual(record.snapshot.inactiveCount, 1)
        XCTAssertEqual(child.snapshot.inactiveCount, 1)
        try await group.shutdownGracefully()
    }

    // MARK: Write promises

    func testWritePromisesCompleteInTheOrderTheWritesWereMade() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(DiscardingHandler()) }
            .bind(host: "127.0.0.1", port: 0)
        let client = try await connectClient(group: group, to: server, record: ConnectionRecord(name: "client"))

        var random = SeededGenerator(seed: 0x0DE7)
        let sizes = (0..<64).map { _ in Int.random(in: 1...256 * 1024, using: &random) }
        let completions = LockedValue<[Int]>([])
        let futures = try await client.loop.submit { () -> [Future<Void>] in
            var futures: [Future<Void>] = []
            for (index, size) in sizes.enumerated() {
                let promise = client.loop.makePromise(of: Void.self)
                promise.futureResult.whenComplete { _ in completions.withLock { $0.append(index) } }
                client.pipeline.write(ByteBuffer(repeating: UInt8(truncatingIfNeeded: index), count: size), promise: promise)
                if index % 3 == 2 { client.pipeline.flush() }
                futures.append(promise.futureResult)
            }
            client.pipeline.flush()
            return futures
        }.get(within: 10)
        try await Future.andAllSucceed(futures, on: client.loop).get(within: 30)
        XCTAssertEqual(completions.withLock { $0 }, Array(0..<sizes.count))
        try await group.shutdownGracefully()
    }

    func testWritesAfterCloseFailWithIOOnClosedChannelAndWritesPendingAtCloseFailWithClosedBeforeWriteCompleted() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var stalled = SocketOptions()
        stalled.autoRead = false
        stalled.receiveBufferSize = 64 * 1024
        let server = try await ServerBootstrap(group: group).childOptions(stalled).bind(host: "127.0.0.1", port: 0)
        var small = SocketOptions()
        small.sendBufferSize = 64 * 1024
        let record = ConnectionRecord(name: "client")
        let client = try await ClientBootstrap(group: group)
            .options(small)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        let (flushed, unflushed, closed) = try await client.loop.submit { () -> (Future<Void>, Future<Void>, Future<Void>) in
            let flushed = client.loop.makePromise(of: Void.self)
            client.pipeline.writeAndFlush(ByteBuffer(repeating: 1, count: 4 << 20), promise: flushed)
            let unflushed = client.loop.makePromise(of: Void.self)
            client.pipeline.write(ByteBuffer(repeating: 2, count: 1024), promise: unflushed)
            let closed = client.loop.makePromise(of: Void.self)
            client.pipeline.close(promise: closed)
            return (flushed.futureResult, unflushed.futureResult, closed.futureResult)
        }.get(within: 10)
        try await closed.get(within: 10)
        await fulfillment(of: [record.inactive], timeout: 10)
        await assertFails(flushed, with: ChannelError.closedBeforeWriteCompleted)
        await assertFails(unflushed, with: ChannelError.closedBeforeWriteCompleted)
        await assertFails(client.writeAndFlush(ByteBuffer(string: "too late")), with: ChannelError.ioOnClosedChannel)
        await assertFails(client.write(ByteBuffer(string: "too late")), with: ChannelError.ioOnClosedChannel)
        await assertFails(client.close(), with: ChannelError.alreadyClosed)
        XCTAssertEqual(record.snapshot.inactiveCount, 1)
        try await group.shutdownGracefully()
    }

    func testWhatAClientWritesInChannelActiveGoesOutAtOnceNotAfterAnotherLoopTurn() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serverLog = ServerLog()
        let server = try await echoServer(group: group, log: serverLog)
        let sentAtOnce = SharedCounter()
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(GreetsOnActive(sentAtOnce: sentAtOnce)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)

        XCTAssertEqual(sentAtOnce.value, 1, "the greeting's write promise was still pending when writeAndFlush returned")
        try await client.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    // MARK: Framing

    func testTheLengthFramedPipelineEchoesOneThousandFramesOfRandomSizes() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let server = try await framedEchoServer(group: group, log: ServerLog(), maximumFrameLength: 64 * 1024)
        var random = SeededGenerator(seed: 0xF7A3E)
        let frames = (0..<1_000).map { _ in randomBuffer(count: Int.random(in: 0...8_192, using: &random), using: &random) }
        let collector = FrameLog(expectedFrames: frames.count)
        let client = try await connectFramedClient(group: group, to: server, log: collector)

        try await client.loop.submit {
            for (index, frame) in frames.enumerated() {
                client.pipeline.write(frame, promise: nil)
                if index % 7 == 6 { client.pipeline.flush() }
            }
            client.pipeline.flush()
        }.get(within: 10)

        await fulfillment(of: [collector.receivedAll], timeout: 60)
        let received = collector.frames
        XCTAssertEqual(received.count, frames.count)
        for (index, (got, sent)) in zip(received, frames).enumerated() where got != sent {
            XCTFail("frame \(index) came back as \(got.readableBytes) different bytes (sent \(sent.readableBytes))")
            break
        }
        try await client.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAnOversizedFrameHeaderClosesOnlyThatConnectionAndTheOthersKeepWorking() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let serverLog = ServerLog()
        let server = try await framedEchoServer(group: group, log: serverLog, maximumFrameLength: 1024)

        let goodLog = FrameLog(expectedFrames: 2)
        let good = try await connectFramedClient(group: group, to: server, log: goodLog)
        try await good.writeAndFlush(ByteBuffer(string: "before")).get(within: 10)

        let badRecord = ConnectionRecord(name: "bad client")
        let bad = try await connectClient(group: group, to: server, record: badRecord)
        var header = ByteBuffer()
        header.writeInteger(UInt32(1 << 20))
        header.writeString("and a little payload")
        try await bad.writeAndFlush(header).get(within: 10)
        await fulfillment(of: [badRecord.inactive], timeout: 10)
        XCTAssertEqual(badRecord.snapshot.inactiveCount, 1)

        try await good.writeAndFlush(ByteBuffer(string: "after")).get(within: 10)
        await fulfillment(of: [goodLog.receivedAll], timeout: 10)
        XCTAssertEqual(goodLog.frames, [ByteBuffer(string: "before"), ByteBuffer(string: "after")])
        XCTAssertTrue(good.isActive)

        let errors = serverLog.records.flatMap { $0.snapshot.errors }
        XCTAssertEqual(errors.count, 1, "\(errors)")
        XCTAssertEqual(errors.first as? LengthFieldFramerError, .frameTooLarge(length: 1 << 20, maximum: 1024))
        let closedChildren = serverLog.records.filter { $0.snapshot.inactiveCount > 0 }
        XCTAssertEqual(closedChildren.count, 1, "closing the bad connection closed others")
        try await good.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    // MARK: Helpers

    private func echoServer(group: MultiThreadedEventLoopGroup, log: ServerLog) async throws -> ServerSocketChannel {
        try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([Recorder(log.newRecord(keepsBytes: false)), EchoingHandler()])
            }
            .bind(host: "127.0.0.1", port: 0)
    }

    private func framedEchoServer(group: MultiThreadedEventLoopGroup, log: ServerLog, maximumFrameLength: Int) async throws -> ServerSocketChannel {
        try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers(
                    LengthFieldFramer.handlers(maximumFrameLength: maximumFrameLength)
                        + [EchoingHandler(), Recorder(log.newRecord(keepsBytes: false))])
            }
            .bind(host: "127.0.0.1", port: 0)
    }

    private func connectClient(group: MultiThreadedEventLoopGroup, to server: ServerSocketChannel, record: ConnectionRecord) async throws -> SocketChannel {
        try await ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(Recorder(record)) }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
    }

    private func connectFramedClient(group: MultiThreadedEventLoopGroup, to server: ServerSocketChannel, log: FrameLog) async throws -> SocketChannel {
        try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                try channel.pipeline.addHandlers(LengthFieldFramer.handlers(maximumFrameLength: 64 * 1024) + [FrameCollector(log)])
            }
            .connect(to: try XCTUnwrap(server.localAddress)).get(within: 10)
    }

    /// Makes `fd`'s close send a reset (`SO_LINGER` on with a zero timeout).
    private func resetOnClose(_ fd: CInt) throws {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)) == 0 else {
            throw IOError(errnoCode: errno, function: "setsockopt(SO_LINGER)")
        }
    }

    /// Raises the soft descriptor limit if needed; skips the test if the hard limit is too low.
    private func ensureDescriptorLimit(atLeast needed: Int) throws {
        var limit = rlimit()
        guard getrlimit(CInt(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        if limit.rlim_cur >= rlim_t(needed) { return }
        guard limit.rlim_max >= rlim_t(needed) else {
            throw XCTSkip("the descriptor limit (\(limit.rlim_max)) is below the \(needed) this test needs")
        }
        limit.rlim_cur = rlim_t(needed)
        guard setrlimit(CInt(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw XCTSkip("could not raise the descriptor limit to \(needed)")
        }
    }
}

// MARK: - Shared test support (also used by EventLoopTests and AllocationTests)

/// Thrown by the bounded waits after they have reported the timeout as a test failure.
struct TestTimeout: Error {}

extension Future where Value: Sendable {
    /// Waits at most `seconds` for the result; a timeout fails the test and throws ``TestTimeout``.
    func get(within seconds: Double, file: StaticString = #filePath, line: UInt = #line) async throws -> Value {
        let completed = XCTestExpectation(description: "the future completes")
        Task { _ = try? await self.get(); completed.fulfill() }
        let outcome = await XCTWaiter().fulfillment(of: [completed], timeout: seconds)
        guard outcome == .completed, let result = resultIfAvailable else {
            XCTFail("the future did not complete within \(seconds) s", file: file, line: line)
            throw TestTimeout()
        }
        return try result.get()
    }
}

/// The error `future` fails with (waiting at most `seconds`), or nil after reporting a success or a timeout.
func failure<Value: Sendable>(
    of future: Future<Value>, within seconds: Double = 10, file: StaticString = #filePath, line: UInt = #line
) async -> (any Error)? {
    do {
        let value = try await future.get(within: seconds, file: file, line: line)
        XCTFail("expected a failure, got \(value)", file: file, line: line)
        return nil
    } catch is TestTimeout {
        return nil
    } catch {
        return error
    }
}

/// Fails unless `future` fails with `expected` (waiting at most `seconds`).
func assertFails<Value: Sendable, Failure: Error & Equatable>(
    _ future: Future<Value>, within seconds: Double = 10, with expected: Failure,
    file: StaticString = #filePath, line: UInt = #line
) async {
    let error = await failure(of: future, within: seconds, file: file, line: line)
    XCTAssertEqual(error as? Failure, expected, "failed with \(String(describing: error))", file: file, line: line)
}

/// A deterministic generator, so that random test data is the same on every run.
typealias SeededGenerator = SplitMix64

/// `count` random bytes from `generator`.
func randomBuffer(count: Int, using generator: inout SeededGenerator) -> ByteBuffer {
    var buffer = ByteBuffer(capacity: count)
    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { bytes in
        var index = 0
        while index < count {
            var word = generator.next()
            let take = min(8, count - index)
            withUnsafeBytes(of: &word) { wordBytes in
                UnsafeMutableRawBufferPointer(rebasing: bytes[index..<index + take]).copyMemory(from: UnsafeRawBufferPointer(rebasing: wordBytes[0..<take]))
            }
            index += take
        }
        return count
    }
    return buffer
}

/// Fails unless `received` holds exactly `expected`'s bytes, naming the first difference.
func assertSameBytes(_ received: ByteBuffer, _ expected: ByteBuffer, file: StaticString = #filePath, line: UInt = #line) {
    guard received != expected else { return }
    let got = received.readableBytesView, want = expected.readableBytesView
    let firstDifference = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
    XCTFail("received \(got.count) bytes, expected \(want.count); first difference at offset \(firstDifference)", file: file, line: line)
}

/// A count that any thread may bump and read.
final class SharedCounter: Sendable {
    private let storage = Atomic<Int>(0)
    func increment() { storage.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}

/// What happened to one connection, recorded by a ``Recorder`` on its loop and read by the test.
final class ConnectionRecord: @unchecked Sendable {
    // Unchecked: the expectations are fulfilled from the loops (XCTest's expectations are thread-safe)
    // and everything else is behind `state`'s mutex.
    struct Snapshot: Sendable {
        var activeCount = 0
        var inactiveCount = 0
        var errors: [any Error] = []
        var events: [ChannelEvent] = []
        var received = ByteBuffer()
        var receivedCount = 0
        /// The channel, from its first `channelActive` until its `channelInactive` (held no longer:
        /// the channel's pipeline holds the recorder that holds this).
        var channel: (any Channel)?
    }

    let name: String
    let expectedBytes: Int?
    let keepsBytes: Bool
    /// Fulfilled at the first `channelActive`.
    let active: XCTestExpectation
    /// Fulfilled at the first `channelInactive` (``Snapshot/inactiveCount`` counts them all).
    let inactive: XCTestExpectation
    /// Fulfilled once `expectedBytes` have arrived (never, without an expectation of bytes).
    let receivedAll: XCTestExpectation
    private let state = LockedValue(Snapshot())

    init(name: String, expectedBytes: Int? = nil, keepsBytes: Bool = true) {
        self.name = name
        self.expectedBytes = expectedBytes
        self.keepsBytes = keepsBytes
        active = XCTestExpectation(description: "\(name) became active")
        inactive = XCTestExpectation(description: "\(name) became inactive")
        receivedAll = XCTestExpectation(description: "\(name) received \(expectedBytes ?? 0) bytes")
        for expectation in [active, inactive, receivedAll] { expectation.assertForOverFulfill = false }
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    func noteActive(_ channel: any Channel) {
        let first = state.withLock { state -> Bool in
            state.activeCount += 1
            if state.channel == nil { state.channel = channel }
            return state.activeCount == 1
        }
        if first { active.fulfill() }
    }

    /// The recorded socket channel, once it has become active.
    var channel: SocketChannel? { state.withLock { $0.channel as? SocketChannel } }

    func noteInactive() {
        let first = state.withLock { state -> Bool in
            state.inactiveCount += 1
            state.channel = nil
            return state.inactiveCount == 1
        }
        if first { inactive.fulfill() }
    }

    func note(error: any Error) { state.withLock { $0.errors.append(error) } }
    func note(event: ChannelEvent) { state.withLock { $0.events.append(event) } }

    func note(received data: ByteBuffer) {
        let reachedExpectation = state.withLock { state -> Bool in
            let before = state.receivedCount
            state.receivedCount += data.readableBytes
            if keepsBytes { state.received.writeImmutableBuffer(data) }
            guard let expectedBytes else { return false }
            return before < expectedBytes && state.receivedCount >= expectedBytes
        }
        if reachedExpectation { receivedAll.fulfill() }
    }
}

/// The records of a server's accepted connections, one per connection, in accepting order.
final class ServerLog: Sendable {
    private let storage = LockedValue<[ConnectionRecord]>([])

    func newRecord(keepsBytes: Bool = true) -> ConnectionRecord {
        storage.withLock { records in
            let record = ConnectionRecord(name: "server connection \(records.count)", keepsBytes: keepsBytes)
            records.append(record)
            return record
        }
    }

    var records: [ConnectionRecord] { storage.withLock { $0 } }
}

/// A pass-through stage that reports every inbound event to a ``ConnectionRecord``.
///
/// With a `greeting` it writes that on `channelActive`. With ``readsOnDemand`` (for channels with
/// auto-read off) it asks for the next read after every batch.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let record: ConnectionRecord
    private let greeting: ByteBuffer?
    var readsOnDemand = false

    init(_ record: ConnectionRecord, greeting: ByteBuffer? = nil) {
        self.record = record
        self.greeting = greeting
    }

    func channelActive(context: ChannelHandlerContext) {
        record.noteActive(context.channel)
        if let greeting { context.writeAndFlush(greeting) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        record.noteInactive()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        record.note(received: data)
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if readsOnDemand { context.read() }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        record.note(error: error)
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent { record.note(event: event) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Writes back every message it reads, flushing once per read batch.
/// Writes a greeting from `channelActive` and counts it in `sentAtOnce` if its write promise was
/// fulfilled by the time `writeAndFlush` returned (the bytes went straight into the socket).
private final class GreetsOnActive: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let sentAtOnce: SharedCounter

    init(sentAtOnce: SharedCounter) { self.sentAtOnce = sentAtOnce }

    func channelActive(context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(ByteBuffer(string: "hello"), promise: written)
        if written.futureResult.isFulfilled { sentAtOnce.increment() }
        context.fireChannelActive()
    }
}

/// Reads and drops everything.
final class DiscardingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}
}

/// Collects the request until the peer's end of stream, then answers "reply to: <request>" and closes.
private final class ReplyAtEndOfInputHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var request = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { request.writeImmutableBuffer(data) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            var reply = ByteBuffer(string: "reply to: ")
            reply.writeBuffer(&request)
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(reply, promise: written)
            let bound = LoopBound(context, eventLoop: context.eventLoop)
            written.futureResult.whenComplete { _ in bound.value.close() }
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// What a ``FloodingHandler`` did, for the test to read.
final class FloodLog: @unchecked Sendable {
    // Unchecked: expectations are thread-safe; the rest is behind the mutex.
    let becameUnwritable = XCTestExpectation(description: "the server became unwritable")
    let writableAgain = XCTestExpectation(description: "the server became writable again")
    private let state = LockedValue<(written: Int, writability: [Bool])>((0, []))

    init() {
        becameUnwritable.assertForOverFulfill = false
        writableAgain.assertForOverFulfill = false
    }

    var bytesWritten: Int { state.withLock { $0.written } }
    var writability: [Bool] { state.withLock { $0.writability } }

    func wrote(_ count: Int) { state.withLock { $0.written += count } }

    func writabilityChanged(to writable: Bool) {
        state.withLock { $0.writability.append(writable) }
        (writable ? writableAgain : becameUnwritable).fulfill()
    }
}

/// On `channelActive`, writes `payload` in chunks for as long as the channel is writable, resumes
/// when it becomes writable again, and closes its output after the last byte.
private final class FloodingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let payload: ByteBuffer
    private let chunkSize: Int
    private let log: FloodLog
    private var offset = 0
    private var pumping = false

    init(payload: ByteBuffer, chunkSize: Int, log: FloodLog) {
        self.payload = payload
        self.chunkSize = chunkSize
        self.log = log
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        log.writabilityChanged(to: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
        if context.channel.isWritable { pump(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

    private func pump(context: ChannelHandlerContext) {
        guard !pumping, offset < payload.readableBytes else { return }
        pumping = true
        defer { pumping = false }
        while context.channel.isWritable, offset < payload.readableBytes {
            let size = min(chunkSize, payload.readableBytes - offset)
            let chunk = payload.getSlice(at: offset, length: size)!
            offset += size
            log.wrote(size)
            context.writeAndFlush(chunk)
        }
        if offset == payload.readableBytes { context.close(mode: .output) }
    }
}

/// Frames a framed client received.
final class FrameLog: @unchecked Sendable {
    // Unchecked: the expectation is thread-safe; the frames are behind the mutex.
    let receivedAll: XCTestExpectation
    private let expectedFrames: Int
    private let storage = LockedValue<[ByteBuffer]>([])

    init(expectedFrames: Int) {
        self.expectedFrames = expectedFrames
        receivedAll = XCTestExpectation(description: "\(expectedFrames) frames arrived")
        receivedAll.assertForOverFulfill = false
    }

    var frames: [ByteBuffer] { storage.withLock { $0 } }

    func note(_ frame: ByteBuffer) {
        if storage.withLock({ $0.append(frame); return $0.count }) == expectedFrames { receivedAll.fulfill() }
    }
}

/// Reports every decoded frame to a ``FrameLog``.
private final class FrameCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let log: FrameLog
    init(_ log: FrameLog) { self.log = log }
    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { log.note(data) }
}

/// A plain blocking-free listener on 127.0.0.1 made with the raw syscall layer, for tests that need
/// the peer's descriptor (to reset it, or to leave it unread).
private final class RawListener {
    let fd: CInt
    let address: SocketAddress
    private var closed = false

    /// Listens on 127.0.0.1 with a kernel-chosen port; accepted sockets inherit `receiveBufferSize`.
    init(backlog: CInt = 16, receiveBufferSize: CInt? = nil) throws {
        fd = try Posix.live.socket(domain: AF_INET, type: CInt(SOCK_STREAM.rawValue))
        do {
            if let receiveBufferSize { try Posix.live.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, value: receiveBufferSize) }
            try Posix.live.bind(fd, to: .loopbackV4(port: 0))
            try Posix.live.listen(fd, backlog: backlog)
            address = try Posix.live.localAddress(fd)
        } catch {
            try? Posix.live.close(fd)
            throw error
        }
    }

    /// Accepts one connection, waiting for it at most 10 s (in `poll`, not sleeping).
    func accept() throws -> CInt {
        var pollFD = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollFD, 1, 10_000) == 1 else {
            XCTFail("no connection to accept within 10 s")
            throw TestTimeout()
        }
        guard case .processed(let peer) = try Posix.live.accept(fd) else {
            XCTFail("no connection to accept after POLLIN")
            throw TestTimeout()
        }
        return peer
    }

    /// Connects a raw socket to the listener (without accepting it), waiting at most 10 s in `poll`.
    func connectRawClient() throws -> CInt {
        let client = try Posix.live.socket(domain: AF_INET, type: CInt(SOCK_STREAM.rawValue))
        if try !Posix.live.connect(client, to: address) {
            var pollFD = pollfd(fd: client, events: Int16(POLLOUT), revents: 0)
            guard poll(&pollFD, 1, 10_000) == 1, try Posix.live.socketError(client) == 0 else {
                try? Posix.live.close(client)
                XCTFail("a raw connection to the listener did not complete within 10 s")
                throw TestTimeout()
            }
        }
        return client
    }

    func close() {
        guard !closed else { return }
        closed = true
        try? Posix.live.close(fd)
    }
}
