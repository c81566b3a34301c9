import CoreMetrics
import Synchronization

/// A metrics backend that records into atomics, as a production one (Prometheus' counters) does,
/// without exporting anything: `serve --metrics` measures what reporting costs the server.
final class AtomicMetricsBackend: MetricsFactory {
    final class Handler: CounterHandler, MeterHandler, RecorderHandler, TimerHandler, FloatingPointCounterHandler {
        let value = Atomic<Int64>(0)

        func increment(by amount: Int64) { value.add(amount, ordering: .relaxed) }
        func increment(by amount: Double) { value.add(Int64(amount), ordering: .relaxed) }
        func decrement(by amount: Double) { value.subtract(Int64(amount), ordering: .relaxed) }
        func reset() { value.store(0, ordering: .relaxed) }
        func set(_ newValue: Int64) { value.store(newValue, ordering: .relaxed) }
        func set(_ newValue: Double) { value.store(Int64(newValue), ordering: .relaxed) }
        func record(_ newValue: Int64) { value.store(newValue, ordering: .relaxed) }
        func record(_ newValue: Double) { value.store(Int64(newValue), ordering: .relaxed) }
        func recordNanoseconds(_ duration: Int64) { value.store(duration, ordering: .relaxed) }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { Handler() }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler { Handler() }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { Handler() }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler { Handler() }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { Handler() }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}
