import Benchmark
import BenchmarkSupport

// Length-prefixed decoding: one buffer holding 1M frames (4-byte big-endian length, 16-byte payload)
// fed to each library's decoder in its byte-to-message handler, in an embedded channel, with a
// counting sink after it. One iteration is one frame (scaling factor 1M per sample).

let frameCount = 1_000_000
let payloadLength = 16

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .microBenchmark(
        scalingFactor: .mega, maxIterations: 20, thresholds: [.mallocCountTotal: .allocationsPerOperation])

    Benchmark("decode-1M-length-prefixed-frames-from-one-buffer(Pheromones)") { benchmark, decoder in
        benchmark.startMeasurement()
        blackHole(decoder.decodeAll())
    } setup: {
        PheromonesFrameDecoding(frames: frameCount, payloadLength: payloadLength)
    }

    Benchmark("decode-1M-length-prefixed-frames-from-one-buffer(NIO)") { benchmark, decoder in
        benchmark.startMeasurement()
        blackHole(decoder.decodeAll())
    } setup: {
        NIOFrameDecoding(frames: frameCount, payloadLength: payloadLength)
    }
}
