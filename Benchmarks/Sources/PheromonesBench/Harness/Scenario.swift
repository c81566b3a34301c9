/// The load scenarios, each a list of rows run against both servers.
///
/// (The `p2p` rows, which have no NIO counterpart, are measured in process: see `P2PPlan`.)
enum Scenario: String, Codable, Sendable, CaseIterable {
    case pingpong, framed, stream, conns

    /// The protocol the scenario's servers speak.
    var proto: WireProtocol { self == .framed ? .framed : .echo }
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

extension LoadPlan {
    mutating func apply(_ timing: Timing) {
        warmup = timing.warmup
        duration = timing.duration
        hold = timing.hold
        verify = timing.verify
    }
}
