import Benchmark
import CPerfEvents

extension Benchmark.Configuration {
    /// What the micro-benchmarks measure: wall clock, throughput, malloc counts and, where the
    /// machine can count them (`perf stat -e instructions true` tells), instructions.
    ///
    /// The allocation suite passes `countInstructions: false`: reading the instruction counters
    /// costs the harness allocations of its own inside every sample (16 per sample on the machine
    /// where the thresholds were taken), which would blur counts that must be exact.
    public static func microBenchmark(
        scalingFactor: BenchmarkScalingFactor = .one,
        maxIterations: Int = 50,
        countInstructions: Bool = true,
        thresholds: [BenchmarkMetric: BenchmarkThresholds]? = nil
    ) -> Benchmark.Configuration {
        let instructions: [BenchmarkMetric] = countInstructions && PerformanceCounters.available ? [.instructions] : []
        return .init(
            metrics: [.wallClock, .throughput, .mallocCountTotal] + instructions,
            scalingFactor: scalingFactor,
            maxDuration: .seconds(2),
            maxIterations: maxIterations,
            thresholds: thresholds)
    }
}

extension BenchmarkThresholds {
    /// Allocation counts per sample: more than `tolerance` above the committed threshold is a
    /// regression.
    public static func allocations(tolerance: Int = 0) -> BenchmarkThresholds {
        BenchmarkThresholds(relative: [.p90: 0], absolute: [.p90: tolerance])
    }

    /// For suites whose samples hold 1,000 or 1,000,000 operations and that may count
    /// instructions: the harness's own allocations per sample (see `microBenchmark`) are tolerated,
    /// one allocation more per operation is not.
    public static var allocationsPerOperation: BenchmarkThresholds { allocations(tolerance: 32) }
}

/// Whether hardware instruction counters work here.
enum PerformanceCounters {
    static let available = perf_events_can_count_instructions() != 0
}
