/// The two wire protocols every server in this package speaks.
enum WireProtocol: String, Codable, Sendable, CaseIterable {
    /// The server writes back every byte it reads.
    case echo
    /// 4-byte big-endian length, then that many payload bytes; the server answers each frame with
    /// a frame carrying the same payload.
    case framed

    /// Bytes before the payload of each message on the wire.
    var headerLength: Int { self == .framed ? 4 : 0 }
}

/// What one load-generator process does: the plan the harness hands to `pheromones-bench load`.
struct LoadPlan: Codable, Sendable {
    enum Mode: String, Codable, Sendable, CaseIterable {
        /// Each connection keeps `depth` messages in flight; every reply sends the next message.
        case pingpong
        /// Each connection keeps `window` bytes of messages in flight.
        case stream
        /// Opens `connections` connections, one round trip on each, and holds them all open.
        case conns
        /// Keeps `connections` connections cycling: connect (and, with TLS, handshake), one round
        /// trip, close (TLS: after `close_notify`), connect again; measures connections per second.
        case churn
    }

    /// How the load generator's connections speak TLS (nil: plaintext).
    enum TLSMode: String, Codable, Sendable, CaseIterable {
        /// A full handshake on every connection.
        case full
        /// Every connection offers the last session ticket a server gave (TLS 1.3 resumption).
        case resumed
    }

    var mode: Mode
    var proto: WireProtocol
    var host = "127.0.0.1"
    var port = 0
    /// Concurrent connections.
    var connections: Int
    /// Payload bytes per message.
    var size = 64
    /// Messages in flight per connection (pingpong).
    var depth = 1
    /// Bytes in flight per connection (stream).
    var window = 65_536
    /// Seconds of load before measuring.
    var warmup = 1.0
    /// Seconds measured.
    var duration = 3.0
    /// Seconds the conns mode holds every connection open before it samples memory again.
    var hold = 1.0
    /// The whole run is abandoned after this many seconds.
    var timeout = 60.0
    /// Connects (and in conns mode, unanswered connections) pending at once.
    var connectsInFlight = 256
    /// The server's process id, for its CPU time and resident memory; nil: not sampled.
    var serverPID: Int32?
    /// Check every reply byte against what was sent.
    var verify = false
    /// TLS (the servers then serve TLS too), or nil for plaintext.
    var tls: TLSMode?

    /// Bytes of one message on the wire.
    var wireLength: Int { size + proto.headerLength }

    /// Messages each connection keeps in flight.
    var messagesInFlight: Int {
        switch mode {
        case .pingpong: return max(1, depth)
        case .stream: return max(1, window / wireLength)
        case .conns, .churn: return 1
        }
    }
}

/// What a load-generator process measured (printed as one JSON line).
struct LoadResult: Codable, Sendable {
    /// Connections established.
    var connected = 0
    /// Connections that could not be established (or, in conns mode, never answered).
    var failed = 0
    /// Connections the server closed, or that failed, while the load ran.
    var dropped = 0
    /// Replies that were not what was sent (wrong length, wrong bytes, more than asked for).
    var bad = 0
    /// The first error seen, for the report.
    var firstError: String?

    /// Seconds measured (pingpong, stream).
    var seconds = 0.0
    /// Round trips completed while measuring.
    var messages = 0
    var messagesPerSecond = 0.0
    /// Reply bytes per second while measuring, in MB (10^6 bytes).
    var megabytesPerSecond = 0.0
    /// Latency percentiles in microseconds (conns mode: of each connection's first round trip).
    var latencyP50 = 0.0
    var latencyP99 = 0.0
    var latencyP999 = 0.0
    /// Server CPU (user + system) per message in microseconds, from /proc/PID/stat.
    var serverMicrosecondsPerMessage: Double?

    /// conns mode: connections that completed their round trip.
    var answered = 0
    /// conns mode: seconds from the first connect until every connection had been answered.
    var secondsToAllAnswered: Double?
    /// conns mode: server resident memory before connecting and while holding, in KiB.
    var serverRSSBeforeKiB: Int?
    var serverRSSAfterKiB: Int?
    /// conns mode: growth of the server's resident memory per answered connection, in bytes.
    var serverBytesPerConnection: Double?
    /// churn mode with TLS: the share of the measured connections whose handshake resumed a session.
    var resumedFraction: Double?

    /// Whether anything went wrong.
    var hasErrors: Bool { failed > 0 || dropped > 0 || bad > 0 || firstError != nil }
}
