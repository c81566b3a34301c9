/// What a slow-reader run does, for one protocol: how much the flooder sends, when it gives up,
/// how long the ping-pong client runs, and the bounds of every wait.
struct SlowReaderPlan: Codable, Sendable {
    var proto: WireProtocol
    /// MiB the flooder offers (framed: rounded up to whole frames of `floodPayload` bytes).
    var megabytes: Int
    /// Seconds without a byte accepted by the flooder's socket after which the flood stops: the
    /// server has stopped reading it (back pressure), which is the outcome hoped for.
    var stallSeconds: Double
    /// Seconds during which the ping-pong client starts new round trips, alongside the flooder.
    var pingPongSeconds: Double
    /// Seconds a ping-pong reply may take before the client counts a failure.
    var replyTimeout: Double
    /// Seconds after which the flood stops even if the socket still takes bytes (a server reading
    /// at a trickle would otherwise keep it going for ever).
    var floodTimeout: Double
    /// The most the server's peak RSS may grow over its idle RSS, in MiB, before the run fails.
    var maxGrowthMiB: Double

    /// Payload bytes of one ping-pong message (the framed protocol adds its 4-byte length).
    var messageSize = 64
    /// Payload bytes of one flood frame (framed), and the flood's write granularity (echo).
    var floodPayload = 64 << 10
    /// Round trips of the warm-up client, before the idle RSS is read.
    var warmUpRoundTrips = 20
    /// Seconds between two RSS samples while the flooder is connected.
    var sampleEvery = 0.05
    /// Seconds the server is left alone before the idle reading, and with the flooder still
    /// connected (and done) before the reading "while the flooder holds".
    var settleSeconds = 0.5
    /// Seconds between the flooder's reset and the reading after it left.
    var leaveSeconds = 2.0
    /// Seconds a connect may take.
    var connectTimeout = 5.0

    /// The only address a slow-reader run connects to.
    static let host = ChaosPlan.host

    /// Bytes the flooder offers on the wire: `megabytes` MiB, in framed mode rounded up to whole
    /// frames (each `floodPayload` bytes after a 4-byte length).
    var floodBytes: Int {
        let frames = ((megabytes << 20) + floodPayload - 1) / floodPayload
        return proto == .framed ? frames * (floodPayload + proto.headerLength) : megabytes << 20
    }
}
