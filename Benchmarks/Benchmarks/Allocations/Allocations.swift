import Benchmark
import BenchmarkSupport

// Allocations of a real server over loopback, in this process (so the malloc counts include its
// event loop thread), driven by a client that only makes system calls:
// - one 64-byte echo round trip on a warm connection (goal: 0); a sample is 1,000 round trips;
// - one connection accepted, answered once and closed by the client, until the server has seen
//   it close; a sample is one connection.
// Our figures are guarded by the committed thresholds (Thresholds/); NIO's are shown for context.

let benchmarks: @Sendable () -> Void = {
    let roundTrips = Benchmark.Configuration.microBenchmark(
        scalingFactor: .kilo, maxIterations: 200, countInstructions: false,
        thresholds: [.mallocCountTotal: .allocations()])
    let connections = Benchmark.Configuration.microBenchmark(
        maxIterations: 1000, countInstructions: false, thresholds: [.mallocCountTotal: .allocations()])

    let ours = LoopbackFixture(PheromonesEchoServer())
    Benchmark("ping-pong-round-trip-steady-state(Pheromones)", configuration: roundTrips) { benchmark in
        try ours.roundTrips(benchmark.scaledIterations.count, benchmark: benchmark)
    } setup: {
        try await ours.startWithConnection()
    } teardown: {
        try await ours.stop()
    }
    Benchmark("connection-accepted-answered-once-closed(Pheromones)", configuration: connections) { benchmark in
        try ours.connectionLifecycle(benchmark: benchmark)
    } setup: {
        try await ours.start()
    } teardown: {
        try await ours.stop()
    }

    let nio = LoopbackFixture(NIOEchoServer())
    Benchmark("ping-pong-round-trip-steady-state(NIO)", configuration: roundTrips) { benchmark in
        try nio.roundTrips(benchmark.scaledIterations.count, benchmark: benchmark)
    } setup: {
        try await nio.startWithConnection()
    } teardown: {
        try await nio.stop()
    }
    Benchmark("connection-accepted-answered-once-closed(NIO)", configuration: connections) { benchmark in
        try nio.connectionLifecycle(benchmark: benchmark)
    } setup: {
        try await nio.start()
    } teardown: {
        try await nio.stop()
    }
}
