// Datagram echo over loopback allocates O(1) in total, not a little per datagram: counted in a
// child process with an interposed allocator (how and why: Tests/TestSupport/AllocationCounter.swift).
//
// A client keeps 16 datagrams in flight against an echo server, both DatagramChannels, and sends
// each reply back until it has received the run's count: the receive slab, the slices delivered,
// the envelopes, the write queue and the sendmmsg headers are all on the per-datagram path. The
// probe warms up with 1,000 datagrams, then counts the allocations of 2,000 and of 20,000; the
// parent asserts that the larger run allocates fewer than 500 more times than the smaller.

import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

final class DatagramAllocationTests: XCTestCase {
    private static let probeTest =
        "PheromonesPosixTests.DatagramAllocationTests/testTheDatagramAllocationProbeOnlyMeasuresInsideTheCountingChildProcess"

    func testDatagramEchoOverLoopbackAllocatesAConstantAmountNotAnAmountPerDatagram() throws {
        try AllocationCounter.assertConstantAllocations(probe: Self.probeTest, unit: "datagram")
    }

    /// Runs in the child process only (with the counting allocator preloaded); passes trivially otherwise.
    func testTheDatagramAllocationProbeOnlyMeasuresInsideTheCountingChildProcess() throws {
        guard AllocationCounter.isCountingChild else { return }
        guard AllocationCounter.count() != nil else {
            XCTFail("the counting allocator is not loaded")
            return
        }
        let sanity = AllocationCounter.sanityCount()
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.syncShutdownGracefully() }
        let server = try blockingWait(for: DatagramBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(DatagramEchoHandler()) }
            .bind(to: .loopbackV4(port: 0)))
        let client = try blockingWait(for: DatagramBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(DatagramVolley()) }
            .bind(to: .loopbackV4(port: 0)))
        let target = try XCTUnwrap(server.localAddress)

        func volley(_ count: Int) throws -> Int64 {
            let start = AllocationCounter.count() ?? 0
            try blockingWait(for: client.loop.flatSubmit { () -> Future<Void> in
                guard let handler = client.pipeline.handler(type: DatagramVolley.self) else {
                    return client.loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
                }
                return handler.start(datagrams: count, inFlight: 16, to: target, on: client)
            })
            return (AllocationCounter.count() ?? 0) - start
        }
        _ = try volley(1_000)
        let small = try volley(2_000)
        let large = try volley(20_000)

        try blockingWait(for: client.close())
        try blockingWait(for: server.close())
        try AllocationCounter.report([("sanity", sanity), ("small", small), ("large", large)])
    }
}

/// Sends `inFlight` 64-byte datagrams, then sends each reply back until `datagrams` replies have
/// arrived (reusing the received buffers: nothing to allocate per datagram). Loop-confined.
final class DatagramVolley: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private var remaining = 0
    private var unsent = 0
    private var done: Promise<Void>?

    func start(datagrams: Int, inFlight: Int, to target: SocketAddress, on channel: DatagramChannel) -> Future<Void> {
        let promise = channel.loop.makePromise(of: Void.self)
        done = promise
        remaining = datagrams
        unsent = datagrams - inFlight
        for _ in 0..<inFlight {
            channel.pipeline.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(repeating: 7, count: 64)), promise: nil)
        }
        channel.pipeline.flush()
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: AddressedEnvelope<ByteBuffer>) {
        remaining -= 1
        if unsent > 0 {
            unsent -= 1
            context.write(data, promise: nil)
        }
        if remaining == 0, let done {
            self.done = nil
            done.succeed(())
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
}
