import Benchmark
import BenchmarkSupport

// 1M `channelRead` events through 5 pass-through handlers into a counting sink, in an embedded
// channel: ours against SwiftNIO's. One iteration is one event (scaling factor 1M per sample).

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .microBenchmark(
        scalingFactor: .mega, thresholds: [.mallocCountTotal: .allocationsPerOperation])

    Benchmark("1M-reads-through-5-handlers(Pheromones)") { benchmark, pipeline in
        benchmark.startMeasurement()
        blackHole(pipeline.fireReads(benchmark.scaledIterations.count))
    } setup: {
        try PheromonesPipeline(passThroughHandlers: 5)
    }

    Benchmark("1M-reads-through-5-handlers(NIO)") { benchmark, pipeline in
        benchmark.startMeasurement()
        blackHole(pipeline.fireReads(benchmark.scaledIterations.count))
    } setup: {
        try NIOPipeline(passThroughHandlers: 5)
    }
}
