import CoreMetrics
import Synchronization

/// A metrics backend that records into atomics and allocates nothing when it records, as a
/// production backend (Prometheus' counters) does, without exporting anything: the allocation
/// test's and the benchmark server's stand-in, so that what they measure is the library's cost,
/// not a test backend's.
public final class AtomicMetricsFactory: MetricsFactory {
    public init() {}

    /// One handler for every kind of metric: the last or summed value, in an atomic.
    public final class Handler: CounterHandler, MeterHandler, RecorderHandler, TimerHandler, FloatingPointCounterHandler {
        /// The recorded value.
        public let value = Atomic<Int64>(0)

        public func increment(by amount: Int64) { value.add(amount, ordering: .relaxed) }
        public func increment(by amount: Double) { value.add(Int64(amount), ordering: .relaxed) }
        public func decrement(by amount: Double) { value.subtract(Int64(amount), ordering: .relaxed) }
        public func reset() { value.store(0, ordering: .relaxed) }
        public func set(_ newValue: Int64) { value.store(newValue, ordering: .relaxed) }
        public func set(_ newValue: Double) { value.store(Int64(newValue), ordering: .relaxed) }
        public func record(_ newValue: Int64) { value.store(newValue, ordering: .relaxed) }
        public func record(_ newValue: Double) { value.store(Int64(newValue), ordering: .relaxed) }
        public func recordNanoseconds(_ duration: Int64) { value.store(duration, ordering: .relaxed) }
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Handler() }
    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler { Handler() }
    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Handler() }
    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Handler() }
    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler() }
    public func destroyCounter(_ handler: any CounterHandler) {}
    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    public func destroyMeter(_ handler: any MeterHandler) {}
    public func destroyRecorder(_ handler: any RecorderHandler) {}
    public func destroyTimer(_ handler: any TimerHandler) {}
}
