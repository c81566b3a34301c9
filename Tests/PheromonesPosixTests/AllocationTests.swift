// Echo round trips over loopback allocate O(1) in total, not a little per round trip: counted in a
// child process with an interposed allocator (how and why: Tests/TestSupport/AllocationCounter.swift).
//
// The probe warms up with 1,000 round trips, then counts the allocations of 2,000 and of 20,000.
// The parent asserts, generously, that 20,000 round trips allocate fewer than 500 more times than
// 2,000 do: O(1), not O(N). A per-round-trip allocation anywhere in the path (loops, channels,
// pipeline, buffers, write queue, timers, metrics) adds about 18,000 and fails the test.

import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

final class AllocationTests: XCTestCase {
    private static let probeTest = "PheromonesPosixTests.AllocationTests/testTheAllocationProbeOnlyMeasuresInsideTheCountingChildProcess"
    private static let meteredProbeTest = "PheromonesPosixTests.AllocationTests/testTheMeteredAllocationProbeOnlyMeasuresInsideTheCountingChildProcess"

    func testEchoRoundTripsOverLoopbackAllocateAConstantAmountNotAnAmountPerRoundTrip() throws {
        try AllocationCounter.assertConstantAllocations(probe: Self.probeTest, unit: "round trip")
    }

    /// The same with the loops' metrics on (a backend that itself allocates nothing to record).
    func testWithMetricsOnEchoRoundTripsStillAllocateAConstantAmount() throws {
        try AllocationCounter.assertConstantAllocations(probe: Self.meteredProbeTest, unit: "round trip")
    }

    /// Runs in the child process only (with the counting allocator preloaded); passes trivially otherwise.
    func testTheAllocationProbeOnlyMeasuresInsideTheCountingChildProcess() throws {
        guard AllocationCounter.isCountingChild else { return }
        try probe(group: try MultiThreadedEventLoopGroup(numberOfThreads: 2))
    }

    /// The probe, with the loops' metrics on.
    func testTheMeteredAllocationProbeOnlyMeasuresInsideTheCountingChildProcess() throws {
        guard AllocationCounter.isCountingChild else { return }
        try probe(group: try MultiThreadedEventLoopGroup(numberOfThreads: 2, metricsFactory: AtomicMetricsFactory()))
    }

    private func probe(group: MultiThreadedEventLoopGroup) throws {
        guard AllocationCounter.count() != nil else {
            XCTFail("the counting allocator is not loaded")
            return
        }
        let sanity = AllocationCounter.sanityCount()
        defer { group.syncShutdownGracefully() }
        // A timer pending on each loop, as an idle timeout or a P2P deadline keeps one: the loop
        // looks at its earliest timer every turn (that look once allocated, in a debug build).
        for loop in group.epollLoops {
            _ = try blockingWait(for: loop.submit { loop.scheduleTask(in: .seconds(600)) {} })
        }
        let server = try blockingWait(for: ServerBootstrap(group: group)
            .childChannelInitializer { channel in try channel.pipeline.addHandler(EchoingHandler()) }
            .bind(to: .loopbackV4(port: 0)))
        let client = try blockingWait(for: ClientBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(PingPongHandler(messageSize: 64)) }
            .connect(to: try XCTUnwrap(server.localAddress)))
        try AllocationCounter.countRoundTrips(client: client, server: server, sanity: sanity)
    }
}
