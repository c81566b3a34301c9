import Logging
import Pheromones
import PheromonesNoise
import PheromonesP2P

/// A broadcast experiment on a ``SimulatedNetwork``: real node stacks on a random connected
/// graph, broadcasts from random origins, and a ``SimulationReport`` of coverage, exactly-once
/// delivery, duplicates, wire cost and time to coverage.
///
/// The run is deterministic for given ``SimulationSettings`` (the seed included): same settings,
/// same report, apart from ``SimulationReport/wallSeconds``.
public final class BroadcastSimulation {
    /// Where a run is, for a progress line.
    public struct Progress: Sendable {
        /// What the run is doing: "connecting", "warming up", "broadcasting" or "settling".
        public var phase: String
        /// Broadcasts started so far.
        public var broadcastsStarted: Int
        /// Deliveries so far over the deliveries a full coverage needs.
        public var deliveries: Int
        /// The deliveries a full coverage needs: every node but the origin, per broadcast.
        public var deliveriesExpected: Int
        /// The network's virtual time since the start.
        public var virtualTime: TimeAmount
    }

    /// What can stop a run.
    public enum Failure: Error, CustomStringConvertible {
        /// A node could not be made or could not listen.
        case nodeFailed(node: Int, reason: String)
        /// Some dials of the graph's links (or of the seed) did not connect in time.
        case notConnected(nodes: Int)

        /// What went wrong, in a sentence.
        public var description: String {
            switch self {
            case .nodeFailed(let node, let reason): return "node \(node) failed to start: \(reason)"
            case .notConnected(let nodes): return "\(nodes) links did not connect"
            }
        }
    }

    /// What the run does.
    public let settings: SimulationSettings
    private let network: SimulatedNetwork
    private var random: SplitMix64
    private let graph: RandomGraph
    private var cores: [NodeCore] = []
    private let log: DeliveryLog
    private let start: Deadline

    /// Draws the graph and the latencies for `settings`; nothing runs until ``run(progress:)``.
    public init(settings: SimulationSettings) {
        self.settings = settings
        var random = SplitMix64(seed: settings.seed)
        self.network = SimulatedNetwork(seed: random.next(), latency: settings.latency)
        self.graph = RandomGraph(nodeCount: max(2, settings.nodes), degree: settings.degree, random: &random)
        self.random = random
        self.log = DeliveryLog(broadcasts: settings.messages, nodes: max(2, settings.nodes))
        self.start = network.now
    }

    /// The address of node `index`: 10.x.y.z, port 7000.
    public static func address(ofNode index: Int) -> SocketAddress {
        let host = UInt32(0x0A00_0000) | UInt32(truncatingIfNeeded: index + 1) & 0x00FF_FFFF
        return .v4(SocketAddress.IPv4(address: host, port: 7000))
    }

    /// Runs the experiment: starts the nodes, connects the graph's links, lets gossip meshes
    /// form, broadcasts, fails links halfway if asked, and waits for full coverage (or gives up
    /// 60 virtual seconds after the last broadcast).
    public func run(progress: (Progress) -> Void = { _ in }) throws -> SimulationReport {
        // However it ends: the nodes close their connections and stop their timers.
        defer { shutDown() }
        try startNodes()
        progress(snapshot("connecting", broadcasts: 0))
        try connectLinks()
        progress(snapshot("warming up", broadcasts: 0))
        network.run(for: warmUp)
        let connections = cores.map(\.openConnectionCount)
        let before = cores.map { $0.statistics() }
        let dropped = broadcastAll(progress: progress)
        waitForCoverage(progress: progress)
        let after = cores.map { $0.statistics() }
        return makeReport(before: before, after: after, connections: connections, droppedLinks: dropped, virtual: network.now - start)
    }

    private var warmUp: TimeAmount {
        if case .gossip(let parameters) = settings.mode { return parameters.heartbeatInterval * 3 }
        return .seconds(1)
    }

    // MARK: Phases

    private func startNodes() throws {
        var seeds = SplitMix64(seed: random.next())
        for index in 0 ..< graph.nodeCount {
            let address = Self.address(ofNode: index)
            var configuration = Node.Configuration(
                name: "n\(index)", security: settings.noise ? .noise : .insecure, identity: try identity(seed: seeds.next()),
                logger: Logger(label: "pheromones.simulate"))
            configuration.broadcast = settings.mode
            configuration.randomSeed = seeds.next()
            configuration.peerExchange = settings.peerExchangeTarget.map { PeerExchange(targetPeerCount: $0) }
            let core: NodeCore
            do {
                core = try NodeCore(
                    configuration: configuration, network: network.host(address),
                    protocol: RecordingProtocol(node: index, log: log, loop: network.loop))
            } catch {
                throw Failure.nodeFailed(node: index, reason: "\(error)")
            }
            cores.append(core)
            let listening = core.listen(on: address)
            network.loop.run()
            guard case .success = listening.resultIfAvailable else {
                throw Failure.nodeFailed(node: index, reason: "it could not listen at \(address)")
            }
        }
    }

    private func identity(seed: UInt64) throws -> NodeIdentity {
        var bytes = [UInt8]()
        var state = SplitMix64(seed: seed)
        for _ in 0 ..< NodeIdentity.seedLength / 8 {
            withUnsafeBytes(of: state.next().bigEndian) { bytes.append(contentsOf: $0) }
        }
        return try NodeIdentity(seed: bytes)
    }

    private func connectLinks() throws {
        if settings.peerExchangeTarget != nil { return try connectThroughTheSeed() }
        let dials = graph.edges.map { edge in
            cores[edge.0].add(name: "n\(edge.1)", address: Self.address(ofNode: edge.1), pin: nil)
        }
        try awaitDials(dials)
    }

    /// Runs the network until `dials` are through (each is a round trip and a hello, a Noise
    /// handshake first if on: well within the time given), and throws if any is not.
    private func awaitDials(_ dials: [Future<Void>]) throws {
        network.run(for: settings.latency.upperBound * 8 + .seconds(1))
        let failed = dials.filter { future in
            guard case .success = future.resultIfAvailable else { return true }
            return false
        }
        guard failed.isEmpty else { throw Failure.notConnected(nodes: failed.count) }
    }

    /// Gives every node the seed (node 0) only, and lets peer exchange find the rest: it asks the
    /// seed at once, then dials what it learns, two a second at most, up to its target.
    private func connectThroughTheSeed() throws {
        let seed = Self.address(ofNode: 0)
        try awaitDials(cores.dropFirst().map { $0.add(name: "n0", address: seed, pin: nil) })
        // Enough for a node to ask, learn and dial its target at the default rate, with rounds to spare.
        network.run(for: .seconds(Int64(2 * (settings.peerExchangeTarget ?? 0) + 20)))
    }

    /// Starts the broadcasts, one per interval from a random origin; fails links halfway if asked.
    /// Returns how many links failed.
    private func broadcastAll(progress: (Progress) -> Void) -> Int {
        var dropped = 0
        for index in 0 ..< settings.messages {
            if index > 0 { network.run(for: settings.interval) }
            let origin = Int(random.next() % UInt64(graph.nodeCount))
            var data = ByteBuffer()
            data.writeInteger(UInt32(index))
            data.writeRepeatingByte(0x70, count: max(0, settings.messageSize - 4))
            let message = Envelope(name: "n\(origin)", operation: "simulated-broadcast", data: data)
            log.publish(index, from: origin, at: network.now)
            _ = try? cores[origin].broadcast(message, hopLimit: settings.hopLimit, to: .connected)
            if index == settings.messages / 2, settings.dropLinks > 0, settings.peerExchangeTarget == nil {
                // While this broadcast is on its way: a typical latency after it started.
                network.run(for: .nanoseconds((settings.latency.lowerBound.nanoseconds + settings.latency.upperBound.nanoseconds) / 2))
                dropped = dropLinks()
            }
            progress(snapshot("broadcasting", broadcasts: index + 1))
        }
        return dropped
    }

    private func dropLinks() -> Int {
        var candidates = graph.removableEdges
        candidates.shuffle(using: &random)
        let count = min(candidates.count, Int((Double(graph.edges.count) * settings.dropLinks).rounded()))
        for edge in candidates.prefix(count).map({ graph.edges[$0] }) {
            network.cut(between: Self.address(ofNode: edge.0), and: Self.address(ofNode: edge.1))
        }
        return count
    }

    private func waitForCoverage(progress: (Progress) -> Void) {
        let giveUp = network.now + .seconds(60)
        var lastReport = network.now
        while log.firstDeliveries < expectedDeliveries, network.now < giveUp {
            network.run(for: .milliseconds(100))
            if network.now - lastReport >= .seconds(1) {
                lastReport = network.now
                progress(snapshot("settling", broadcasts: settings.messages))
            }
        }
        // Late copies and gossip still on their way are counted too.
        network.run(for: settleTime)
    }

    private var settleTime: TimeAmount {
        if case .gossip(let parameters) = settings.mode { return parameters.heartbeatInterval * 2 }
        return settings.latency.upperBound * 4
    }

    private var expectedDeliveries: Int { settings.messages * (graph.nodeCount - 1) }

    private func snapshot(_ phase: String, broadcasts: Int) -> Progress {
        Progress(
            phase: phase, broadcastsStarted: broadcasts, deliveries: log.firstDeliveries, deliveriesExpected: expectedDeliveries,
            virtualTime: network.now - start)
    }

    private func shutDown() {
        for core in cores { core.shutdown() }
        network.run(for: .seconds(1))
        cores = []
    }

    // MARK: The report

    /// `connections`: each node's open connections when the broadcasts began (its degree).
    private func makeReport(
        before: [NodeStatistics], after: [NodeStatistics], connections: [Int], droppedLinks: Int, virtual: TimeAmount
    ) -> SimulationReport {
        let nodes = graph.nodeCount
        let messages = max(1, settings.messages)
        let perNodeAndMessage = Double(nodes * messages)
        let degrees = connections
        let links = connections.reduce(0, +) / 2
        var copies = 0
        var duplicates = 0
        var sent = 0
        var maximumDuplicates = 0.0
        var withinBound = true
        var control = (iHave: 0, iWant: 0, iDontWant: 0, mesh: 0)
        for node in 0 ..< nodes {
            let delta = after[node].subtracting(before[node])
            copies += delta.broadcastCopiesReceived
            duplicates += delta.duplicatesDropped
            sent += delta.messagesOut
            let perMessage = Double(delta.duplicatesDropped) / Double(messages)
            maximumDuplicates = max(maximumDuplicates, perMessage)
            if perMessage > Double(max(0, degrees[node] - 1)) { withinBound = false }
            control.iHave += delta.gossip.iHaveBytesSent
            control.iWant += delta.gossip.iWantBytesSent
            control.iDontWant += delta.gossip.iDontWantBytesSent
            control.mesh += delta.gossip.meshControlBytesSent
        }
        let latencies = deliveryLatencies()
        return SimulationReport(
            mode: settings.modeName, nodes: nodes, averageDegree: Double(2 * links) / Double(nodes), links: links,
            fewestConnections: connections.min() ?? 0, droppedLinks: droppedLinks,
            messages: settings.messages, seed: settings.seed, coverage: coverage(), exactlyOnce: isExactlyOnce(),
            repeatedDeliveries: log.repeats + log.strays,
            wireMessagesPerNode: Double(sent) / perNodeAndMessage, copiesReceivedPerNode: Double(copies) / perNodeAndMessage,
            duplicatesPerNode: Double(duplicates) / perNodeAndMessage,
            duplicateShare: copies == 0 ? 0 : Double(duplicates) / Double(copies),
            maximumDuplicatesPerNode: maximumDuplicates, duplicatesWithinDegreeBound: withinBound,
            deliveryP50Milliseconds: percentile(latencies, 0.50), deliveryP99Milliseconds: percentile(latencies, 0.99),
            deliveryMaximumMilliseconds: latencies.last ?? 0,
            iHaveBytesPerNode: Double(control.iHave) / perNodeAndMessage, iWantBytesPerNode: Double(control.iWant) / perNodeAndMessage,
            iDontWantBytesPerNode: Double(control.iDontWant) / perNodeAndMessage,
            meshControlBytesPerNode: Double(control.mesh) / perNodeAndMessage,
            virtualSeconds: Double(virtual.nanoseconds) / 1e9, wallSeconds: 0)
    }

    private func coverage() -> Double {
        guard settings.messages > 0 else { return 1 }
        let others = Double(graph.nodeCount - 1)
        return (0 ..< settings.messages).map { Double(log.covered($0)) / others }.min() ?? 1
    }

    private func isExactlyOnce() -> Bool {
        guard log.repeats == 0, log.strays == 0 else { return false }
        for broadcast in 0 ..< settings.messages {
            for (node, count) in log.counts[broadcast].enumerated() where node != log.origins[broadcast] && count != 1 {
                return false
            }
            // The origin does not deliver its own broadcast to itself.
            if log.origins[broadcast] >= 0, log.counts[broadcast][log.origins[broadcast]] != 0 { return false }
        }
        return true
    }

    /// Every node's delivery latency, sorted, in milliseconds.
    private func deliveryLatencies() -> [Double] {
        var latencies: [Double] = []
        for broadcast in 0 ..< settings.messages {
            guard let published = log.published[broadcast] else { continue }
            for case let delivered? in log.firstDelivery[broadcast] {
                latencies.append(Double((delivered - published).nanoseconds) / 1e6)
            }
        }
        return latencies.sorted()
    }

    private func percentile(_ sorted: [Double], _ share: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((Double(sorted.count) * share).rounded(.up)) - 1
        return sorted[min(sorted.count - 1, max(0, rank))]
    }
}
