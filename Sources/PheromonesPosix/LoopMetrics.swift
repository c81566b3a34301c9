import CoreMetrics
import PheromonesCore

/// What a loop reports through swift-metrics when its group was given a `MetricsFactory`
/// (``MultiThreadedEventLoopGroup/init(numberOfThreads:logger:metricsFactory:)``): its connections
/// and their bytes, and how late its queued work runs. Every figure has the dimension `loop=<index>`.
///
/// | label | kind | what |
/// |---|---|---|
/// | `pheromones_connections_accepted_total` | counter | connections accepted |
/// | `pheromones_connections_active` | meter | connections active now (accepted or dialed) |
/// | `pheromones_connections_closed_total` | counter, `reason` | closed: `closed` (by either side), `reset`, `error` |
/// | `pheromones_bytes_received_total` | counter | bytes read from sockets |
/// | `pheromones_bytes_sent_total` | counter | bytes written to sockets |
/// | `pheromones_loop_lag_seconds` | timer | how long a task queued on the loop waited to run, sampled once a second |
///
/// Off by default, and then free: a channel checks one optional per read and per write. On, the
/// handles are made once per loop, and recording allocates nothing of ours (what the backend does
/// is the backend's).
final class LoopMetrics: Sendable {
    /// How often the loop measures its lag (a second, but for tests).
    let lagSamplingInterval: TimeAmount

    let accepted: Counter
    let active: Meter
    let closedNormally: Counter
    let closedByReset: Counter
    let closedByError: Counter
    let bytesReceived: Counter
    let bytesSent: Counter
    let lag: Timer

    init(loopIndex: Int, factory: any MetricsFactory, lagSamplingInterval: TimeAmount = .seconds(1)) {
        self.lagSamplingInterval = lagSamplingInterval
        let dimensions = [("loop", "\(loopIndex)")]
        accepted = Counter(label: "pheromones_connections_accepted_total", dimensions: dimensions, factory: factory)
        active = Meter(label: "pheromones_connections_active", dimensions: dimensions, factory: factory)
        func closed(_ reason: String) -> Counter {
            Counter(label: "pheromones_connections_closed_total", dimensions: dimensions + [("reason", reason)], factory: factory)
        }
        closedNormally = closed("closed")
        closedByReset = closed("reset")
        closedByError = closed("error")
        bytesReceived = Counter(label: "pheromones_bytes_received_total", dimensions: dimensions, factory: factory)
        bytesSent = Counter(label: "pheromones_bytes_sent_total", dimensions: dimensions, factory: factory)
        lag = Timer(label: "pheromones_loop_lag_seconds", dimensions: dimensions, factory: factory)
    }

    /// Counts a connection closed because of `error` (nil: closed by either side, normally).
    func recordClose(_ error: (any Error)?) {
        switch error {
        case nil: closedNormally.increment()
        case let error as ChannelError where error == .connectionReset: closedByReset.increment()
        default: closedByError.increment()
        }
        active.decrement()
    }
}
