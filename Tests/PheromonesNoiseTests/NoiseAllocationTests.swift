// Encrypted echo round trips over loopback allocate O(1) in total, not a little per round trip:
// after the handshake, transport messages are sealed and opened in the stage's own reused buffers
// (Sources/PheromonesNoise/CipherState.swift). Counted in a child process with an interposed
// allocator, as the plaintext echo's test does (Tests/TestSupport/AllocationCounter.swift).
//
// A client (initiator) and a server (responder) each with a NoiseHandler, over loopback: the
// probe warms up with 1,000 round trips of 1 KiB (the handshake included), then counts the
// allocations of 2,000 and of 20,000. 20,000 must allocate fewer than 500 more times than 2,000:
// one allocation per message anywhere (cipher, stage, pipeline) adds at least 18,000.

import Pheromones
import PheromonesNoise
import PheromonesTestSupport
import XCTest

final class NoiseAllocationTests: XCTestCase {
    private static let probeTest = "PheromonesNoiseTests.NoiseAllocationTests/testTheNoiseAllocationProbeOnlyMeasuresInsideTheCountingChildProcess"

    func testEncryptedEchoRoundTripsAllocateAConstantAmountNotAnAmountPerRoundTrip() throws {
        try AllocationCounter.assertConstantAllocations(probe: Self.probeTest, unit: "encrypted round trip")
    }

    /// Runs in the child process only (with the counting allocator preloaded); passes trivially otherwise.
    func testTheNoiseAllocationProbeOnlyMeasuresInsideTheCountingChildProcess() throws {
        guard AllocationCounter.isCountingChild else { return }
        guard AllocationCounter.count() != nil else {
            XCTFail("the counting allocator is not loaded")
            return
        }
        let sanity = AllocationCounter.sanityCount()
        let serverConfiguration = try NoiseConfiguration(identity: Identities.bob)
        let clientConfiguration = try NoiseConfiguration(identity: Identities.alice)

        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { group.syncShutdownGracefully() }
        let server = try blockingWait(for: ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers([NoiseHandler(responderWith: serverConfiguration), EchoingHandler()])
            }
            .bind(to: .loopbackV4(port: 0)))
        let client = try blockingWait(for: ClientBootstrap(group: group)
            .channelInitializer { channel in
                try channel.pipeline.addHandlers([NoiseHandler(initiatorWith: clientConfiguration), PingPongHandler(messageSize: 1_024)])
            }
            .connect(to: try XCTUnwrap(server.localAddress)))
        try AllocationCounter.countRoundTrips(client: client, server: server, sanity: sanity)
    }
}
