import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// The failure path: a peer that resets closes its channel exactly once, one failure reaches
/// `errorCaught` once with the channel already inactive, and what handlers do while a channel fails
/// (write and close in `errorCaught`, broadcast from `channelInactive` to channels failing too)
/// fails at once instead of recursing. Loopback, port 0, bounded waits; clients are raw sockets that
/// reset (`SO_LINGER` 0) at moments chosen by a seeded generator.
final class ChannelFailureTests: XCTestCase {
    func testAHandlerThatWritesInErrorCaughtAndClosesSurvivesFiveHundredClientsResettingAtRandomMoments() async throws {
        let clients = 500, threads = 4
        try raiseDescriptorLimit(atLeast: 2 * clients + 256)
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = FailureLog(connections: clients)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(StreamingServer(record: log.newRecord())) }
            .bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(server.localAddress?.port)

        // Each client, by a seeded draw: resets before the server's greeting can arrive, after the
        // greeting, or somewhere in the middle of the stream that follows it; a few close normally.
        let clientsDone = XCTestExpectation(description: "every client has gone")
        clientsDone.expectedFulfillmentCount = threads
        let clientErrors = ClientErrors()
        for thread in 0..<threads {
            Thread {
                var random = SeededGenerator(seed: 0x5E7 + UInt64(thread))
                for _ in 0..<(clients / threads) {
                    do {
                        let client = try RawClient.connect(port: port)
                        switch Int.random(in: 0..<8, using: &random) {
                        case 0, 1: client.reset()
                        case 2, 3:
                            client.read(StreamingServer.greeting.readableBytes)
                            client.reset()
                        case 4, 5, 6:
                            client.read(Int.random(in: 1...(256 * 1024), using: &random))
                            client.reset()
                        default:
                            client.read(Int.random(in: 1...(64 * 1024), using: &random))
                            client.close()
                        }
                    } catch {
                        clientErrors.note(error)
                    }
                }
                clientsDone.fulfill()
            }.start()
        }
        await fulfillment(of: [clientsDone], timeout: 60)
        XCTAssertEqual(clientErrors.all, [])
        await fulfillment(of: [log.allInactive], timeout: 60)

        let records = log.records.map(\.snapshot)
        XCTAssertEqual(records.count, clients)
        var failed = 0
        for (index, record) in records.enumerated() {
            XCTAssertEqual(record.inactiveCount, 1, "connection \(index) fired channelInactive \(record.inactiveCount) times")
            XCTAssertLessThanOrEqual(record.errors.count, 1, "connection \(index) caught \(record.errors)")
            XCTAssertEqual(record.activeInErrorCaught, [], "connection \(index) was still active in errorCaught")
            XCTAssertEqual(record.errorWrites.count, record.errors.count)
            for outcome in record.errorWrites {
                XCTAssertEqual(outcome, "failed at once: I/O on a closed channel", "connection \(index)")
            }
            XCTAssertEqual(record.errorCloses.count, record.errors.count)
            for outcome in record.errorCloses {
                XCTAssertEqual(outcome, "succeeded", "connection \(index): the close from errorCaught")
            }
            if !record.errors.isEmpty { failed += 1 }
        }
        XCTAssertGreaterThan(failed, 0, "no connection failed: the test proves nothing")

        // The server survives and still greets.
        let client = try RawClient.connect(port: port)
        XCTAssertEqual(client.read(StreamingServer.greeting.readableBytes), Array(StreamingServer.greeting.readableBytesView))
        client.close()
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }

    func testAChatRoomBroadcastingFromChannelInactiveSurvivesFiveHundredMembersResettingAtOnceWithoutNestingTheirCloses() async throws {
        let members = 500
        try raiseDescriptorLimit(atLeast: 2 * members + 256)
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.nextLoop()
        let log = FailureLog(connections: members)
        let room = try await loop.submit { LoopBound(ChatRoom(), eventLoop: loop) }.get(within: 10)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandler(ChatMember(room: room.value, record: log.newRecord()))
            }
            .bind(host: "127.0.0.1", port: 0)
        let port = try XCTUnwrap(server.localAddress?.port)

        var clients: [RawClient] = []
        for _ in 0..<members { clients.append(try RawClient.connect(port: port)) }
        await fulfillment(of: [log.allActive], timeout: 60)
        for client in clients { client.reset() }
        await fulfillment(of: [log.allInactive], timeout: 60)

        let records = log.records.map(\.snapshot)
        for (index, record) in records.enumerated() {
            XCTAssertEqual(record.inactiveCount, 1, "member \(index) fired channelInactive \(record.inactiveCount) times")
            XCTAssertLessThanOrEqual(record.errors.count, 1, "member \(index) caught \(record.errors)")
        }
        // A member's failure handled inside another member's close would nest their events, as deep
        // as there are failing members, and the stack with them.
        let nesting = try await loop.submit { room.value.deepestNesting }.get(within: 10)
        XCTAssertLessThanOrEqual(nesting, 1, "one member's channelInactive or errorCaught ran inside another's, \(nesting) deep")
        let (broadcasts, failures) = try await loop.submit { (room.value.broadcasts, room.value.failedBroadcasts) }.get(within: 10)
        XCTAssertGreaterThan(failures, 0, "no broadcast met a failing member: the test proves nothing (\(broadcasts) broadcasts)")

        // The room is empty, and the server still serves.
        let client = try RawClient.connect(port: port)
        XCTAssertEqual(String(decoding: client.read(ChatMember.welcome.readableBytes), as: UTF8.self), "welcome\n")
        client.close()
        try await server.close().get(within: 10)
        try await group.shutdownGracefully()
    }
}

// MARK: - Fixtures

/// Errors the client threads met.
private final class ClientErrors: Sendable {
    private let errors = LockedValue<[String]>([])
    func note(_ error: any Error) { errors.withLock { $0.append("\(error)") } }
    var all: [String] { errors.withLock { $0 } }
}

/// What one connection's handler saw. Written on its loop, read by the test.
private final class FailureRecord: Sendable {
    struct Snapshot: Sendable {
        var inactiveCount = 0
        var errors: [String] = []
        var activeInErrorCaught: [Bool] = []
        var errorWrites: [String] = []
        var errorCloses: [String] = []
    }

    private let state = LockedValue(Snapshot())
    private let log: FailureLog

    init(log: FailureLog) { self.log = log }

    var snapshot: Snapshot { state.withLock { $0 } }

    func active() { log.allActive.fulfill() }

    func inactive() {
        state.withLock { $0.inactiveCount += 1 }
        log.allInactive.fulfill()
    }

    func caught(_ error: any Error, stillActive: Bool) {
        state.withLock { state in
            state.errors.append("\(error)")
            if stillActive { state.activeInErrorCaught.append(true) }
        }
    }

    func errorWrite(_ outcome: String) { state.withLock { $0.errorWrites.append(outcome) } }
    func errorClose(_ outcome: String) { state.withLock { $0.errorCloses.append(outcome) } }
}

/// Every connection's ``FailureRecord``.
private final class FailureLog: Sendable {
    let allActive: XCTestExpectation
    let allInactive: XCTestExpectation
    private let all = LockedValue<[FailureRecord]>([])

    init(connections: Int) {
        allActive = XCTestExpectation(description: "every connection is active")
        allActive.expectedFulfillmentCount = connections
        allInactive = XCTestExpectation(description: "every connection is inactive")
        allInactive.expectedFulfillmentCount = connections
    }

    func newRecord() -> FailureRecord {
        let record = FailureRecord(log: self)
        all.withLock { $0.append(record) }
        return record
    }

    var records: [FailureRecord] { all.withLock { $0 } }
}

/// Greets, then streams up to 1 MiB in 16 KiB chunks, each written from the previous one's
/// promise callback; in `errorCaught` writes an error line and closes, as a chat server written
/// against the README would.
private final class StreamingServer: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let greeting = ByteBuffer(string: "hello\n")
    private static let chunk = ByteBuffer(repeating: 0x2A, count: 16 * 1024)
    private static let chunks = 64

    private let record: FailureRecord
    private var sent = 0

    init(record: FailureRecord) { self.record = record }

    func channelActive(context: ChannelHandlerContext) {
        record.active()
        context.write(Self.greeting, promise: nil)
        stream(context: context)
    }

    private func stream(context: ChannelHandlerContext) {
        guard sent < Self.chunks else { return }
        sent += 1
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(Self.chunk, promise: written)
        written.futureResult.whenCompleteOnLoop { [self] result in
            if case .success = result { stream(context: context) }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {}

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        record.caught(error, stillActive: context.channel.isActive)
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(ByteBuffer(string: "error: \(error)\n"), promise: written)
        switch written.futureResult.resultIfAvailable {
        case .failure(let error): record.errorWrite("failed at once: \(error)")
        case .success: record.errorWrite("succeeded")
        case nil: record.errorWrite("pending")
        }
        let closed = context.eventLoop.makePromise(of: Void.self)
        context.close(promise: closed)
        closed.futureResult.whenComplete { [record] result in
            switch result {
            case .success: record.errorClose("succeeded")
            case .failure(let error): record.errorClose("failed: \(error)")
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) { record.inactive() }
}

/// The members of a chat room, on the room's loop.
private final class ChatRoom {
    var members: [ObjectIdentifier: ChannelHandlerContext] = [:]
    /// How many members' `channelInactive`/`errorCaught` are running right now, one inside another.
    private var nesting = 0
    private(set) var deepestNesting = 0
    var broadcasts = 0
    var failedBroadcasts = 0

    /// Runs a member's event, noting how deeply events nest.
    func event(_ body: () -> Void) {
        nesting += 1
        deepestNesting = max(deepestNesting, nesting)
        body()
        nesting -= 1
    }

    func broadcast(_ line: String, from sender: ObjectIdentifier) {
        let message = ByteBuffer(string: line)
        for (id, member) in members where id != sender {
            broadcasts += 1
            let written = member.eventLoop.makePromise(of: Void.self)
            member.writeAndFlush(message, promise: written)
            written.futureResult.whenCompleteOnLoop { [self] result in
                if case .failure = result { failedBroadcasts += 1 }
            }
        }
    }
}

/// A chat room member: welcomes its peer, and tells everyone else when its peer leaves.
private final class ChatMember: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let welcome = ByteBuffer(string: "welcome\n")

    private let room: ChatRoom
    private let record: FailureRecord

    init(room: ChatRoom, record: FailureRecord) {
        self.room = room
        self.record = record
    }

    func channelActive(context: ChannelHandlerContext) {
        room.members[ObjectIdentifier(self)] = context
        context.writeAndFlush(Self.welcome, promise: nil)
        record.active()
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        room.broadcast(data.getString(at: data.readerIndex, length: data.readableBytes) ?? "", from: ObjectIdentifier(self))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        room.event {
            record.caught(error, stillActive: context.channel.isActive)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        room.event {
            room.members[ObjectIdentifier(self)] = nil
            record.inactive()
            room.broadcast("someone left\n", from: ObjectIdentifier(self))
        }
    }
}
