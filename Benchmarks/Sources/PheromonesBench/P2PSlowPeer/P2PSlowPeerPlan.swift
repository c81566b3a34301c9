/// The wire a p2p-slow-peer run speaks to the node (`pheromones node --wire`).
enum PeerWire: String, Codable, Sendable, CaseIterable {
    /// 4-byte big-endian length, then a native envelope; every message carries an id.
    case native
    /// Go-style JSON objects back to back, no ids.
    case json
}

/// The node's router (`pheromones node --router`).
enum PeerRouter: String, Codable, Sendable, CaseIterable {
    /// Kept connections: the flooder pipelines requests over one.
    case persistent
    /// One request and one reply per connection: the flooder opens many connections instead.
    case short
}

/// What a p2p-slow-peer run does, for one wire and router: how much the flooder sends, when it
/// gives up, how long the ping-pong client runs, and the bounds of every wait.
struct P2PSlowPeerPlan: Codable, Sendable {
    var wire: PeerWire
    var router: PeerRouter
    /// MiB the flooder offers on the wire (rounded up to whole requests).
    var megabytes: Int
    /// Data bytes of each pipelined `getreq` (persistent router).
    var payload: Int
    /// Connections the short-router flooder opens at most, one request each.
    var connections: Int
    /// Whether the short-router flooder keeps back the last byte of each request, so that the node
    /// holds every request it has read until its reply timeout.
    var withholdLastByte: Bool
    /// Seconds without progress after which the flooder stops: the node stopped reading it.
    var stallSeconds: Double
    /// Seconds during which the ping-pong client starts new round trips, alongside the flooder.
    var pingPongSeconds: Double
    /// Seconds a ping-pong reply may take before the client counts a failure.
    var replyTimeout: Double
    /// Seconds after which the flood stops even if the node still takes bytes.
    var floodTimeout: Double
    /// The most the node's peak RSS may grow over its idle RSS, in MiB, before the run fails.
    var maxGrowthMiB: Double
    /// The slowest p99 of the ping-pong round trips allowed, in milliseconds (nil: not judged).
    var maxP99Milliseconds: Double?

    /// Data bytes of one ping-pong `getreq`.
    var messageSize = 64
    /// Round trips of the warm-up client, before the idle RSS is read.
    var warmUpRoundTrips = 20
    /// Seconds between two readings of the node's RSS and descriptors while the flooder is there.
    var sampleEvery = 0.05
    /// Seconds the node is left alone before the idle reading, and with the flooder still
    /// connected (and done) before the reading "while the flooder holds".
    var settleSeconds = 0.5
    /// Seconds between the flooder's reset and the reading after it left.
    var leaveSeconds = 2.0
    /// Seconds a connect may take.
    var connectTimeout = 5.0
    /// Connects the short-router flooder leaves in progress at once (established connections do
    /// not count): enough to open a thousand connections in well under a second, few enough not
    /// to overflow the node's listen backlog.
    var connectsInProgress = 64

    /// The only address a run connects to.
    static let host = ChaosPlan.host
    /// The node's largest message (`Node.Configuration.maximumMessageSize`, 1 MiB): a native
    /// frame's payload, or a JSON object.
    static let nodeMaximumMessage = 1 << 20
    /// The largest data a request may carry so that it stays under ``nodeMaximumMessage`` on
    /// either wire: JSON's base64 takes 4 bytes for 3, and the envelope's fields need a few more.
    static let maximumPayload = (nodeMaximumMessage - 1024) / 4 * 3

    /// The name the flooder and the ping-pong client give in their envelopes.
    static let flooderName = "flooder"
    static let pingerName = "pinger"

    /// Data bytes of each request the flooder sends: `payload` on the persistent router; on the
    /// short router the flood spread over the connections (one request each; on the JSON wire 3
    /// data bytes for 4 on the wire, base64's rate), within what the node accepts in one message.
    var floodPayload: Int {
        switch router {
        case .persistent:
            return payload
        case .short:
            let perRequest = (megabytes << 20) / connections
            return min(Self.maximumPayload, wire == .json ? perRequest / 4 * 3 : perRequest)
        }
    }
}
