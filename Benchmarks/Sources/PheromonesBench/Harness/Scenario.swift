/// The load scenarios, each a list of rows run against both servers.
///
/// (The `p2p` rows, which have no NIO counterpart, are measured in process: see `P2PPlan`.)
enum Scenario: String, Codable, Sendable, CaseIterable {
    case pingpong, framed, stream, conns
    /// The `tls` scenario's parts: echo over TLS (ours: PheromonesTLS; NIO: NIOSSL).
    case tlsPingpong = "tls-pingpong", tlsStream = "tls-stream", tlsHandshakes = "tls-handshakes", tlsIdle = "tls-idle"

    /// The protocol the scenario's servers speak.
    var proto: WireProtocol { self == .framed ? .framed : .echo }

    /// What the table's heading says the rows are.
    var heading: String {
        switch self {
        case .tlsPingpong: return "TLS 1.3 echo, 64-byte messages"
        case .tlsStream: return "TLS 1.3 echo, 4 KiB messages, 64 KiB in flight per connection"
        case .tlsHandshakes: return "TLS 1.3: connect, handshake, one 64-byte round trip, close_notify and close, again"
        case .tlsIdle: return "connections handshaken, answered once and held; tls: TLS 1.3, plain: plaintext"
        case .pingpong, .framed, .stream, .conns: return ""
        }
    }
}

/// One line of a scenario: a load shape, measured against each implementation in alternating rounds.
struct Row: Sendable {
    var scenario: Scenario
    /// A short name such as `c100` or `c10 x d16`.
    var name: String
    var plan: LoadPlan
}

/// `C` (connections, each with the default depth) or `CxD` (C connections, D messages in flight).
struct ConnectionShape: Sendable, Equatable {
    var connections: Int
    var depth: Int

    /// Parses a comma-separated list such as `1,100,1000,10x16`.
    static func list(_ text: String, defaultDepth: Int) -> [ConnectionShape]? {
        var shapes: [ConnectionShape] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "x").map { Int($0.filter { !$0.isWhitespace }) }
            guard (1...2).contains(parts.count), let connections = parts[0], connections > 0 else { return nil }
            let depth = parts.count == 2 ? parts[1] : defaultDepth
            guard let depth, depth > 0 else { return nil }
            shapes.append(ConnectionShape(connections: connections, depth: depth))
        }
        return shapes.isEmpty ? nil : shapes
    }

    var name: String { depth == 1 ? "c\(connections)" : "c\(connections) x d\(depth)" }
}

/// Durations and repetitions shared by every row of a run.
struct Timing: Sendable {
    var rounds: Int
    var warmup: Double
    var duration: Double
    var hold: Double
    var verify: Bool
}

extension Row {
    /// Ping-pong rows (echo or framed protocol): `size`-byte messages, each shape's depth in flight.
    static func pingPong(_ scenario: Scenario, shapes: [ConnectionShape], size: Int, timing: Timing) -> [Row] {
        shapes.map { shape in
            var plan = LoadPlan(mode: .pingpong, proto: scenario.proto, connections: shape.connections)
            plan.size = size
            plan.depth = shape.depth
            plan.apply(timing)
            return Row(scenario: scenario, name: shape.name, plan: plan)
        }
    }

    /// The streaming row: `connections` connections keeping `window` bytes of `size`-byte messages in flight.
    static func stream(connections: Int, size: Int, window: Int, timing: Timing) -> Row {
        var plan = LoadPlan(mode: .stream, proto: .echo, connections: connections)
        plan.size = size
        plan.window = window
        plan.apply(timing)
        return Row(scenario: .stream, name: "c\(connections) \(size / 1024) KiB", plan: plan)
    }

    /// The connections row: `connections` concurrent connections, one round trip each, to one loop.
    static func connections(_ connections: Int, timing: Timing) -> Row {
        var plan = LoadPlan(mode: .conns, proto: .echo, connections: connections)
        plan.apply(timing)
        return Row(scenario: .conns, name: "c\(connections)", plan: plan)
    }
}

/// The `tls` scenario's shape: which parts, and their connection counts.
struct TLSShape: Sendable {
    enum Part: String, CaseIterable, Sendable {
        case pingpong, stream, handshakes, idle
    }

    var parts: Set<Part> = Set(Part.allCases)
    /// Ping-pong connections, one 64-byte message in flight each.
    var pingpongConnections = 100
    /// Stream connections, 64 KiB of 4 KiB messages in flight each.
    var streamConnections = 10
    /// Connections cycling at once in the handshake rows.
    var handshakeConnections = 16
    /// Idle connections held for the memory rows.
    var idleConnections = 1000

    /// The rows, in the order of ``Part``: ping-pong and stream over TLS; handshakes full and
    /// resumed; idle connections over TLS, then plaintext for reference.
    func rows(timing: Timing) -> [Row] {
        var rows: [Row] = []
        if parts.contains(.pingpong) {
            var plan = LoadPlan(mode: .pingpong, proto: .echo, connections: pingpongConnections)
            plan.tls = .full
            plan.apply(timing)
            rows.append(Row(scenario: .tlsPingpong, name: "c\(pingpongConnections)", plan: plan))
        }
        if parts.contains(.stream) {
            var row = Row.stream(connections: streamConnections, size: 4096, window: 65_536, timing: timing)
            row.scenario = .tlsStream
            row.plan.tls = .full
            rows.append(row)
        }
        if parts.contains(.handshakes) {
            for mode in LoadPlan.TLSMode.allCases {
                var plan = LoadPlan(mode: .churn, proto: .echo, connections: handshakeConnections)
                plan.tls = mode
                plan.apply(timing)
                rows.append(Row(scenario: .tlsHandshakes, name: "\(mode.rawValue) c\(handshakeConnections)", plan: plan))
            }
        }
        if parts.contains(.idle) {
            for tls in [LoadPlan.TLSMode.full, nil] {
                var plan = LoadPlan(mode: .conns, proto: .echo, connections: idleConnections)
                plan.tls = tls
                plan.apply(timing)
                rows.append(Row(scenario: .tlsIdle, name: "\(tls == nil ? "plain" : "tls") c\(idleConnections)", plan: plan))
            }
        }
        return rows
    }
}

extension LoadPlan {
    mutating func apply(_ timing: Timing) {
        warmup = timing.warmup
        duration = timing.duration
        hold = timing.hold
        verify = timing.verify
    }
}
