import Foundation
import Pheromones
import Synchronization
import XCTest

@testable import EchoExample

/// Why a bounded wait gave up.
struct TestTimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Runs `body`, which blocks, on a thread of its own, and returns what it returns.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// The value of `future`, or ``TestTimedOut`` after `seconds` (timed by `loop`).
func value<T: Sendable>(of future: Future<T>, _ what: String, within seconds: Int64 = 20, on loop: any EventLoop) async throws -> T {
    let promise = loop.makePromise(of: T.self)
    future.whenComplete { promise.tryComplete($0) }
    let timer = loop.scheduleTask(in: .seconds(seconds)) { promise.tryFail(TestTimedOut(what: what)) }
    defer { timer.cancel() }
    return try await promise.futureResult.get()
}

/// The example's echo server on 127.0.0.1 (one loop, any free port), built from the same
/// ``EchoProtocol`` as `pheromones-echo`, with an ``EchoProbe`` put next to each connection's
/// socket to watch it.
struct EchoTestServer {
    let group: MultiThreadedEventLoopGroup
    let loop: EpollEventLoop
    let listener: ServerSocketChannel
    /// The probe record of the first connection accepted.
    let firstConnection: Future<ConnectionRecord>

    var port: Int { listener.localAddress?.port ?? 0 }

    static func start(_ proto: EchoProtocol, maximumFrameLength: Int = 1 << 20) async throws -> EchoTestServer {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.nextLoop()
        let first = loop.makePromise(of: ConnectionRecord.self)
        let listener = try await ServerBootstrap(group: group)
            .childOptions(EchoProtocol.connectionOptions)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers(proto.handlers(maximumFrameLength: maximumFrameLength))
                let record = ConnectionRecord(loop: channel.eventLoop)
                try channel.pipeline.addHandler(EchoProbe(record: record), position: .first)
                first.trySucceed(record)
            }
            .bind(host: "127.0.0.1", port: 0)
        return EchoTestServer(group: group, loop: loop, listener: listener, firstConnection: first.futureResult)
    }

    func stop() async throws {
        try await listener.close().get()
        try await group.shutdownGracefully()
    }
}

/// What an ``EchoProbe`` saw on one connection.
struct ConnectionStats: Sendable {
    /// Bytes the socket read.
    var bytesRead = 0
    /// Bytes the socket handed to the kernel (write promises that succeeded).
    var bytesSent = 0
    /// The most bytes read and not yet sent back at any time: what the connection held in memory.
    var maximumHeld = 0
    /// `read()` requests that reached the socket.
    var readsPassed = 0
    /// Whether the channel has been unwritable.
    var becameUnwritable = false
}

/// A connection's probe results, shared with the test.
final class ConnectionRecord: Sendable {
    /// A `read()` reached the socket while the channel was unwritable.
    struct ReadWhileUnwritable: Error, CustomStringConvertible {
        var stats: ConnectionStats
        var description: String { "a read reached the socket while the channel was unwritable: \(stats)" }
    }

    private let state = LockedValue(ConnectionStats())
    /// Succeeds once a read batch ended and no `read()` request followed it (the socket stopped
    /// reading); fails with ``ReadWhileUnwritable`` if the socket was asked to read while unwritable.
    let stalled: Promise<ConnectionStats>
    /// Succeeds when the connection has closed.
    let closed: Promise<Void>

    init(loop: any EventLoop) {
        stalled = loop.makePromise()
        closed = loop.makePromise()
    }

    var stats: ConnectionStats { state.withLock { $0 } }

    @discardableResult
    func update(_ change: (inout ConnectionStats) -> Void) -> ConnectionStats {
        state.withLock { stats in
            change(&stats)
            return stats
        }
    }
}

/// Sits next to the socket (in front of everything, back pressure included): counts the bytes
/// read and sent, and watches the `read()` requests that reach the socket.
final class EchoProbe: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let record: ConnectionRecord
    private var readRequestedSinceBatch = true

    init(record: ConnectionRecord) { self.record = record }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        let count = data.readableBytes
        record.update { stats in
            stats.bytesRead += count
            stats.maximumHeld = max(stats.maximumHeld, stats.bytesRead - stats.bytesSent)
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readRequestedSinceBatch = false
        // The socket asks for its next read right after this event returns; a task runs after that.
        let bound = LoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let probe = bound.value
            if !probe.readRequestedSinceBatch { probe.record.stalled.trySucceed(probe.record.stats) }
        }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable { record.update { $0.becameUnwritable = true } }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        record.closed.trySucceed(())
        context.fireChannelInactive()
    }

    func read(context: ChannelHandlerContext) {
        readRequestedSinceBatch = true
        let stats = record.update { $0.readsPassed += 1 }
        if !context.channel.isWritable { record.stalled.tryFail(ConnectionRecord.ReadWhileUnwritable(stats: stats)) }
        context.read()
    }

    func write(context: ChannelHandlerContext, data: ByteBuffer, promise: Promise<Void>?) {
        let count = data.readableBytes
        let sent = context.eventLoop.makePromise(of: Void.self)
        let record = record
        sent.futureResult.whenComplete { result in
            if case .success = result { record.update { $0.bytesSent += count } }
            promise?.complete(result)
        }
        context.write(data, promise: sent)
    }
}

/// The bytes clients send: a pattern whose byte at stream offset `i` is `i % 251` (so a lost,
/// repeated or reordered byte shows), raw or cut into length-prefixed frames.
enum Traffic {
    static func pattern(from offset: Int, count: Int) -> [UInt8] {
        // Whole periods are copied rather than computed byte by byte: debug builds are slow.
        let start = offset % 251
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 251)
        bytes += period[start...]
        while bytes.count < count { bytes += period }
        bytes.removeSubrange(count...)
        return bytes
    }

    private static let period: [UInt8] = (0..<251).map { UInt8($0) }

    /// A 4-byte big-endian length, then `payload`.
    static func frame(_ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + payload
    }

    /// About `total` bytes in `proto`'s form: raw pattern bytes, or frames of payloads from 1 byte to 9 KiB.
    static func stream(_ proto: EchoProtocol, total: Int) -> [UInt8] {
        switch proto {
        case .echo:
            return pattern(from: 0, count: total)
        case .framed:
            var bytes: [UInt8] = []
            bytes.reserveCapacity(total + 8192)
            var size = 1
            while bytes.count < total {
                bytes += frame(pattern(from: bytes.count, count: size))
                size = size % 8192 + 997
            }
            return bytes
        }
    }
}
