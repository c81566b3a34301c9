/// A client that sends the node requests as fast as its sockets take them and never reads: one
/// connection pipelining them (persistent router), or many connections with one request each
/// (short router).
protocol PeerFlooder: SlowReaderClient {
    /// How the flood ended (nil while it goes on).
    var outcome: FloodOutcome? { get }
    /// What it got in so far.
    var figures: PeerFloodFigures { get }
    /// Starts connecting to the node on `port`.
    func connect(port: Int, now: UInt64)
    /// Leaves with a reset (SO_LINGER 0, then close) on every connection it still holds.
    func leave()
}

/// What a flooder got in, and how its flood ended.
struct PeerFloodFigures: Codable, Sendable {
    /// Bytes offered and accepted by the kernel (its buffers on both sides of the loopback included).
    var bytesOffered = 0
    var bytesAccepted = 0
    /// Requests offered, and wholly accepted by the kernel.
    var requestsOffered = 0
    var requestsAccepted = 0
    var outcome: FloodOutcome?
    var detail = ""
    /// Seconds from the (first) connection to the last byte accepted, and to the end of the flood.
    var secondsToLastByte: Double?
    var seconds: Double?
    /// Short router only: connections opened, established, closed by the node (it shut its side,
    /// having answered), cut off (reset or closed before the whole request went), failed connects.
    var connectionsOpened: Int?
    var connectionsEstablished: Int?
    var closedByNode: Int?
    var cutOff: Int?
    var connectFailures: Int?
    /// How the flooder leaves.
    var close = "reset (SO_LINGER 0, then close)"
}
