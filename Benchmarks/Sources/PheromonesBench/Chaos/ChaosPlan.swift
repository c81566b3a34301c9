/// What a chaos run does: how many clients, for how long, against which server.
struct ChaosPlan: Sendable {
    var proto: WireProtocol
    /// Client slots, each running one connection at a time.
    var clients: Int
    /// Seconds of load; then every client closes (with a reset) and the run stops.
    var duration: Double
    /// Seconds between two sample lines.
    var sampleEvery: Double
    /// Seeds every client slot's choices (and the reference bytes).
    var seed: UInt64
    /// The server's loopback port and process id.
    var port: Int
    var serverPID: Int32
    /// Seconds a client waits for an expected reply byte before counting a stall.
    var stallTimeout = 10.0
    /// Seconds a connect may take.
    var connectTimeout = 5.0
    /// Seconds of pause between two sessions of one slot, drawn uniformly.
    var pause: ClosedRange<Double> = 0.001...0.05

    /// The only address a chaos run connects to.
    static let host = "127.0.0.1"

    /// When the RSS reference is taken, in seconds from the start: after the first minute, or at a
    /// fifth of runs shorter than two minutes.
    var referenceSeconds: Double { duration >= 120 ? 60 : duration / 5 }
}
