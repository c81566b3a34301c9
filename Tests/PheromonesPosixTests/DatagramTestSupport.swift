import Glibc
import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

/// Keeps every datagram a channel receives, and the errors and writability changes it sees
/// (loop-confined, like any handler); tests ask for them through ``received(_:atLeast:timeout:)``.
final class DatagramCollector: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private(set) var datagrams: [AddressedEnvelope<ByteBuffer>] = []
    private(set) var errors: [any Error] = []
    private(set) var writabilityChanges: [Bool] = []
    private var waiters: [(count: Int, promise: Promise<Void>)] = []

    func channelRead(context: ChannelHandlerContext, data: AddressedEnvelope<ByteBuffer>) {
        datagrams.append(data)
        let due = waiters.filter { $0.count <= datagrams.count }
        waiters.removeAll { $0.count <= datagrams.count }
        for waiter in due { waiter.promise.succeed(()) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append(error) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writabilityChanges.append(context.channel.isWritable)
    }

    /// Completes once `count` datagrams have arrived (at once if they have).
    func waitFor(_ count: Int, on loop: any EventLoop) -> Future<Void> {
        guard datagrams.count < count else { return loop.makeSucceededFuture(()) }
        let promise = loop.makePromise(of: Void.self)
        waiters.append((count, promise))
        return promise.futureResult
    }
}

/// Sendable snapshots of what a collector holds.
struct CollectedDatagram: Sendable, Equatable {
    var sender: SocketAddress
    var bytes: [UInt8]
}

extension DatagramChannel {
    /// The collector of this channel's pipeline, on its loop.
    func withCollector<Value: Sendable>(_ body: @escaping @Sendable (DatagramCollector) -> Value) throws -> Value {
        try blockingWait(for: loop.submit { [self] () throws -> Value in
            guard let collector = pipeline.handler(type: DatagramCollector.self) else { throw ChannelError.ioOnClosedChannel }
            return body(collector)
        }, timeout: 10)
    }

    /// Waits (at most `timeout` seconds) until the collector holds `count` datagrams, then returns
    /// what it holds; returns what it holds after the timeout otherwise.
    func received(atLeast count: Int, timeout: Double = 10) throws -> [CollectedDatagram] {
        let arrived = loop.flatSubmit { [self] () -> Future<Void> in
            guard let collector = pipeline.handler(type: DatagramCollector.self) else {
                return loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            return collector.waitFor(count, on: loop)
        }
        _ = try? blockingWait(for: arrived, timeout: timeout)
        return try withCollector { collector in
            collector.datagrams.map { CollectedDatagram(sender: $0.remoteAddress, bytes: Array($0.data.readableBytesView)) }
        }
    }

    /// Writes and flushes `bytes` to `target` and waits for the write's promise.
    func send(_ bytes: [UInt8], to target: SocketAddress) throws {
        try blockingWait(for: writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: bytes))), timeout: 10)
    }
}

/// The bytes of datagram `index` of a test run: its index in 4 bytes, then `size - 4` filler bytes.
func numberedDatagram(_ index: Int, size: Int = 64) -> [UInt8] {
    var bytes = withUnsafeBytes(of: UInt32(index).bigEndian) { Array($0) }
    bytes += (4..<max(size, 4)).map { UInt8(truncatingIfNeeded: $0 &+ index) }
    return bytes
}

/// A bound channel on `group` whose pipeline is a ``DatagramCollector``.
func collectingChannel(
    on group: MultiThreadedEventLoopGroup, at address: SocketAddress = .loopbackV4(port: 0), options: DatagramOptions = DatagramOptions()
) throws -> DatagramChannel {
    try blockingWait(for: DatagramBootstrap(group: group)
        .options(options)
        .channelInitializer { channel in try channel.pipeline.addHandler(DatagramCollector()) }
        .bind(to: address), timeout: 10)
}

/// A bound channel on `group` that echoes every datagram.
func echoingChannel(on group: MultiThreadedEventLoopGroup, options: DatagramOptions = DatagramOptions()) throws -> DatagramChannel {
    try blockingWait(for: DatagramBootstrap(group: group)
        .options(options)
        .channelInitializer { channel in try channel.pipeline.addHandler(DatagramEchoHandler()) }
        .bind(to: .loopbackV4(port: 0)), timeout: 10)
}
