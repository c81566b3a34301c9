import Benchmark
import BenchmarkSupport

// ByteBuffer basics, ours against SwiftNIO's: integers written and read back, and slices cut from
// one buffer and appended to another. One iteration is one call of 1,000 operations of each kind.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .microBenchmark(
        scalingFactor: .kilo, thresholds: [.mallocCountTotal: .allocationsPerOperation])

    Benchmark("integers-write-read-1000-each-of-4-widths(Pheromones)") { benchmark, buffers in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(buffers.integers(count: 1000)) }
    } setup: {
        PheromonesBuffers()
    }

    Benchmark("integers-write-read-1000-each-of-4-widths(NIO)") { benchmark, buffers in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(buffers.integers(count: 1000)) }
    } setup: {
        NIOBuffers()
    }

    Benchmark("slices-read-1000-of-64-bytes-and-append(Pheromones)") { benchmark, buffers in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(buffers.slices(count: 1000, length: 64)) }
    } setup: {
        PheromonesBuffers()
    }

    Benchmark("slices-read-1000-of-64-bytes-and-append(NIO)") { benchmark, buffers in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(buffers.slices(count: 1000, length: 64)) }
    } setup: {
        NIOBuffers()
    }
}
