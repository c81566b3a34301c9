import ArgumentParser
import Foundation
import Pheromones
import PheromonesP2P
import PheromonesSimulation

/// `pheromones simulate`: broadcasts on a simulated network of real node stacks, in virtual
/// time, in flood mode, gossip mode or both, and a report of what each cost.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Broadcast on a simulated network of real nodes (in memory, in virtual time) and report coverage, duplicates and delays.",
        discussion: """
            Builds a random connected graph of --nodes nodes of about --degree links each, with one-way latencies drawn \
            from --latency-ms, and broadcasts --messages messages from random nodes, one per --interval-ms. \
            With --drop-links, that share of the links fails while the middle broadcast is on its way (the graph stays \
            connected). The same --seed gives the same run. It prints a table per mode, then one JSON line.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case flood, gossip, both
    }

    @Option(help: "How many nodes.")
    var nodes = 1000

    @Option(help: "About how many links each node has.")
    var degree = 8

    @Option(help: "flood, gossip, or both (one after the other, on the same graph).")
    var mode: Mode = .both

    @Option(help: "How many broadcasts.")
    var messages = 10

    @Option(help: "The seed of the graph, the latencies, the origins and every node's randomness.")
    var seed: UInt64 = 1

    @Option(name: .customLong("drop-links"), help: "The share of links (0 to 0.9) that fail in the middle of the broadcasts.")
    var dropLinks = 0.0

    @Option(name: .customLong("latency-ms"), help: "The range of one-way link latencies, as LOW..HIGH milliseconds.")
    var latency = "5..50"

    @Option(name: .customLong("message-size"), help: "Bytes of data per broadcast.")
    var messageSize = 256

    @Option(name: .customLong("interval-ms"), help: "Milliseconds between two broadcasts.")
    var interval = 1000

    @Flag(help: "Run the nodes' wire inside Noise (a handshake per link) instead of in the clear.")
    var noise = false

    @Option(name: .customLong("peer-exchange"), help: "Instead of a drawn graph, give every node the first node only and let peer exchange find this many peers for each.")
    var peerExchange: Int?

    @Option(name: .customLong("mesh-degree"), help: "Gossip: D, the mesh size aimed for (default 6; D_lo and D_hi follow as D-2 and 2D).")
    var meshDegree: Int?

    @Option(name: .customLong("heartbeat-ms"), help: "Gossip: milliseconds between heartbeats (default 1000).")
    var heartbeat: Int?

    @Option(name: .customLong("unchoked"), help: "Gossip: the fewest mesh peers kept sending full messages (default 2).")
    var unchoked: Int?

    @Option(name: .customLong("lazy-pull-ms"), help: "Gossip: milliseconds to wait after a choked peer's IHAVE before asking (IWANT).")
    var lazyPull: Int?

    @Flag(name: .customLong("no-choking"), help: "Gossip: never choke mesh peers (gossipsub v1.2 with IDONTWANT, no choke extension).")
    var noChoking = false

    /// The gossip parameters: gossipsub's defaults, with the options given.
    var gossipParameters: GossipParameters {
        var parameters = GossipParameters()
        if let meshDegree {
            parameters.meshDegree = meshDegree
            parameters.meshDegreeLow = max(1, meshDegree - 2)
            parameters.meshDegreeHigh = 2 * meshDegree
        }
        if let heartbeat { parameters.heartbeatInterval = .milliseconds(Int64(heartbeat)) }
        if let unchoked { parameters.minimumUnchokedPeers = unchoked }
        if let lazyPull { parameters.lazyPullDelay = .milliseconds(Int64(lazyPull)) }
        if noChoking { parameters.choking = false }
        return parameters
    }

    func validate() throws {
        guard nodes >= 2, nodes <= 1 << 20 else { throw ValidationError("--nodes must be between 2 and 1048576") }
        guard degree >= 2, degree < nodes else { throw ValidationError("--degree must be at least 2 and below --nodes") }
        guard messages >= 1, messages <= 100_000 else { throw ValidationError("--messages must be between 1 and 100000") }
        // The delivery log holds a few bytes per node and broadcast.
        guard nodes * messages <= 20_000_000 else { throw ValidationError("--nodes times --messages must be at most 20000000") }
        guard (0 ... 0.9).contains(dropLinks) else { throw ValidationError("--drop-links must be between 0 and 0.9") }
        guard messageSize >= 4, messageSize <= 1 << 20 else { throw ValidationError("--message-size must be between 4 and 1048576") }
        guard interval >= 1 else { throw ValidationError("--interval-ms must be at least 1") }
        _ = try latencyRange()
        if let meshDegree, meshDegree < 1 || meshDegree > 64 { throw ValidationError("--mesh-degree must be between 1 and 64") }
        if let heartbeat, heartbeat < 10 { throw ValidationError("--heartbeat-ms must be at least 10") }
        if let unchoked, unchoked < 0 { throw ValidationError("--unchoked must be at least 0") }
        if let lazyPull, lazyPull < 0 { throw ValidationError("--lazy-pull-ms must be at least 0") }
        if let peerExchange {
            guard (1 ... 64).contains(peerExchange) else { throw ValidationError("--peer-exchange must be between 1 and 64") }
            guard dropLinks == 0 else { throw ValidationError("--drop-links needs a drawn graph: leave out --peer-exchange") }
        }
    }

    /// `--latency-ms` as a range.
    func latencyRange() throws -> ClosedRange<TimeAmount> {
        let parts = latency.split(separator: ".", omittingEmptySubsequences: true)
        guard latency.contains(".."), parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]), low >= 0, low <= high,
              high <= 60_000
        else {
            throw ValidationError("--latency-ms must read LOW..HIGH, in milliseconds (say 5..50)")
        }
        return .milliseconds(Int64(low)) ... .milliseconds(Int64(high))
    }

    func run() throws {
        let modes: [(String, BroadcastMode)] = switch mode {
        case .flood: [("flood", .flood)]
        case .gossip: [("gossip", .gossip(gossipParameters))]
        case .both: [("flood", .flood), ("gossip", .gossip(gossipParameters))]
        }
        let latencies = try latencyRange()
        Console.printLine(
            "pheromones simulate: \(nodes) nodes, " + (peerExchange.map { "bootstrapped from one seed by peer exchange (target \($0))" } ?? "degree \(degree)")
                + ", \(messages) broadcasts of \(messageSize) B every \(interval) ms, "
                + "latency \(latency) ms, seed \(seed)" + (dropLinks > 0 ? ", \(Int(dropLinks * 100))% of links dropped halfway" : ""))
        var reports: [SimulationReport] = []
        for (name, broadcastMode) in modes {
            let settings = SimulationSettings(
                nodes: nodes, degree: degree, mode: broadcastMode, messages: messages, seed: seed, dropLinks: dropLinks,
                latency: latencies, messageSize: messageSize, interval: .milliseconds(Int64(interval)), noise: noise,
                peerExchangeTarget: peerExchange)
            let progress = ProgressLine(mode: name)
            let clock = ContinuousClock()
            let started = clock.now
            var report = try BroadcastSimulation(settings: settings).run { progress.show($0, wall: clock.now - started) }
            progress.finish()
            let wall = clock.now - started
            report.wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
            reports.append(report)
        }
        for line in SimulationTable(reports: reports).lines { Console.printLine(line) }
        Console.printLine(jsonLine(reports))
        if reports.contains(where: { !$0.isComplete }) { throw ExitCode(1) }
    }

    private func jsonLine(_ reports: [SimulationReport]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let runs = Dictionary(reports.map { ($0.mode, $0) }, uniquingKeysWith: { first, _ in first })
        guard let data = try? encoder.encode(runs), let text = String(data: data, encoding: .utf8) else { return "{}" }
        return text
    }
}

/// The progress line on standard error: rewritten in place on a terminal, a line per step elsewhere.
final class ProgressLine {
    private let mode: String
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private var lastPhase = ""
    private var lastBroadcasts = -1

    init(mode: String) { self.mode = mode }

    func show(_ progress: BroadcastSimulation.Progress, wall: Duration) {
        let virtual = Double(progress.virtualTime.nanoseconds) / 1e9
        let line = String(
            format: "[%@] %@: %d broadcasts started, %d/%d deliveries, %.1f s virtual, %.1f s wall", mode, progress.phase,
            progress.broadcastsStarted, progress.deliveries, progress.deliveriesExpected, virtual, Double(wall.components.seconds))
        if isTerminal {
            write("\r\u{1B}[K" + line)
        } else if progress.phase != lastPhase || progress.broadcastsStarted != lastBroadcasts {
            write(line + "\n")
        }
        lastPhase = progress.phase
        lastBroadcasts = progress.broadcastsStarted
    }

    func finish() {
        if isTerminal { write("\r\u{1B}[K") }
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Foundation.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
