import Pheromones
import PheromonesP2P
import Synchronization

/// The `broadcast` row: `nodes` persistent nodes on loopback in one process, meshed as a circulant
/// graph (a ring, each node also linked to the node `chord` places ahead), one broadcast per round.
struct BroadcastRow: Sendable {
    var nodes: Int
    var rounds: Int

    var name: String { "broadcast n\(nodes)" }
    /// The chord length: a quarter of the ring, at least 2 (so the mesh has cycles besides the ring).
    var chord: Int { max(2, nodes / 4) }

    /// Each link once, as (lower index, higher index).
    var links: [(Int, Int)] {
        var seen = Set<[Int]>()
        var links: [(Int, Int)] = []
        for node in 0..<nodes {
            for step in [1, chord] {
                let other = (node + step) % nodes
                let pair = [min(node, other), max(node, other)]
                guard other != node, seen.insert(pair).inserted else { continue }
                links.append((pair[0], pair[1]))
            }
        }
        return links
    }

    func neighbours() -> [Set<Int>] {
        var neighbours = [Set<Int>](repeating: [], count: nodes)
        for (a, b) in links {
            neighbours[a].insert(b)
            neighbours[b].insert(a)
        }
        return neighbours
    }
}

/// What one broadcast measured.
struct BroadcastResult: Sendable {
    /// From the `broadcast` call until the last node's protocol saw the message.
    var microsecondsToCoverage: Double
    /// Copies of the broadcast each node received on the wire (duplicates included), on average.
    var copiesPerNode: Double
    var maximumCopies: Int
    /// How many times a node's protocol was handed the broadcast, at most (1: repeats were dropped).
    var maximumDeliveries: Int
    var problems: [String]
}

/// What the nodes' protocols saw of the current broadcast, shared by all of them.
final class CoverageRecorder: Sendable {
    private struct State {
        var operation = ""
        var firstSeen: [UInt64?]
        var firstFrom: [SocketAddress?]
        var deliveries: [Int]
        var uncovered: Int
        var waiter: CheckedContinuation<Bool, Never>?
    }

    private let state: Mutex<State>
    private let nodes: Int

    init(nodes: Int) {
        self.nodes = nodes
        state = Mutex(State(firstSeen: [], firstFrom: [], deliveries: [], uncovered: 0))
    }

    /// Starts watching for the broadcast `operation`; the origin counts as covered.
    func reset(operation: String, origin: Int, at time: UInt64) {
        state.withLock { state in
            state = State(
                operation: operation, firstSeen: .init(repeating: nil, count: nodes), firstFrom: .init(repeating: nil, count: nodes),
                deliveries: .init(repeating: 0, count: nodes), uncovered: nodes - 1)
            state.firstSeen[origin] = time
        }
    }

    /// Called by node `index`'s protocol on its loop.
    func delivered(_ operation: String, to index: Int, from address: SocketAddress?) {
        let now = Clock.now()
        let waiter: CheckedContinuation<Bool, Never>? = state.withLock { state in
            guard operation == state.operation else { return nil }
            state.deliveries[index] += 1
            guard state.firstSeen[index] == nil else { return nil }
            state.firstSeen[index] = now
            state.firstFrom[index] = address
            state.uncovered -= 1
            guard state.uncovered == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: true)
    }

    /// Waits until every node has seen the broadcast (true) or `timeout` nanoseconds passed (false).
    func waitForCoverage(timeout: UInt64) async -> Bool {
        let timer = Task {
            try await Task.sleep(nanoseconds: timeout)
            self.giveUp()
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let covered = state.withLock { state in
                if state.uncovered == 0 { return true }
                state.waiter = continuation
                return false
            }
            if covered { continuation.resume(returning: true) }
        }
    }

    private func giveUp() {
        let waiter = state.withLock { state in
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: false)
    }

    func snapshot() -> (firstSeen: [UInt64?], firstFrom: [SocketAddress?], deliveries: [Int]) {
        state.withLock { ($0.firstSeen, $0.firstFrom, $0.deliveries) }
    }
}

/// Reports every message to the recorder and answers nothing.
final class CoverageProtocol: PeerProtocol {
    private let index: Int
    private let recorder: CoverageRecorder

    init(index: Int, recorder: CoverageRecorder) {
        self.index = index
        self.recorder = recorder
    }

    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        recorder.delivered(message.operation, to: index, from: context.peerAddress)
        return nil
    }
}

/// Builds the mesh once, then broadcasts from node 0 once per round.
enum BroadcastBench {
    static func measure(_ row: BroadcastRow, loops: Int, size: Int) async throws -> [BroadcastResult] {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let recorder = CoverageRecorder(nodes: row.nodes)
        var nodes: [Node] = []
        do {
            for index in 0..<row.nodes {
                let protocolInstance = CoverageProtocol(index: index, recorder: recorder)
                nodes.append(try Node(configuration: .init(name: "n\(index)"), protocol: protocolInstance, group: group))
            }
            let addresses = try await mesh(nodes, row: row)
            var results: [BroadcastResult] = []
            for round in 1...row.rounds {
                results.append(try await broadcastOnce(round: round, nodes: nodes, addresses: addresses, row: row, recorder: recorder, size: size))
            }
            await DispatchBench.shutdown(nodes)
            try? await group.shutdownGracefully()
            return results
        } catch {
            await DispatchBench.shutdown(nodes)
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Starts every server, dials each link once, and waits until every node has a route to each
    /// of its neighbours (the accepting side learns its route from the dialer's hello).
    private static func mesh(_ nodes: [Node], row: BroadcastRow) async throws -> [SocketAddress] {
        var addresses: [SocketAddress] = []
        for node in nodes { addresses.append(try await node.listen(on: .loopbackV4(port: 0))) }
        for (a, b) in row.links { try await nodes[a].add(peer: "n\(b)", address: addresses[b]) }
        let degrees = row.neighbours().map(\.count)
        let deadline = Clock.now() + 5_000_000_000
        for (index, node) in nodes.enumerated() {
            while await node.peers.filter(\.isConnected).count < degrees[index] {
                guard Clock.now() < deadline else { throw HarnessError("node n\(index) did not reach all its neighbours") }
                try await Task.sleep(nanoseconds: 1_000_000)
            }
        }
        return addresses
    }

    private static func broadcastOnce(
        round: Int, nodes: [Node], addresses: [SocketAddress], row: BroadcastRow, recorder: CoverageRecorder, size: Int
    ) async throws -> BroadcastResult {
        let operation = "flood-\(round)"
        let started = Clock.now()
        recorder.reset(operation: operation, origin: 0, at: started)
        let message = Envelope(name: "n0", operation: operation, data: ByteBuffer(repeating: 0x2A, count: size))
        try await nodes[0].broadcast(message, hopLimit: UInt8(clamping: row.nodes))
        let covered = await recorder.waitForCoverage(timeout: 5_000_000_000)
        // Let the repeats arrive (and be dropped) before counting deliveries and starting the next round.
        try await Task.sleep(nanoseconds: 20_000_000)
        return summarize(recorder.snapshot(), started: started, covered: covered, addresses: addresses, row: row)
    }

    /// Coverage time from the first sightings; copies on the wire from who each node heard first:
    /// a node forwards to every neighbour but the one it first heard from, and the origin to all.
    private static func summarize(
        _ seen: (firstSeen: [UInt64?], firstFrom: [SocketAddress?], deliveries: [Int]), started: UInt64, covered: Bool,
        addresses: [SocketAddress], row: BroadcastRow
    ) -> BroadcastResult {
        let indexOf = Dictionary(uniqueKeysWithValues: addresses.enumerated().map { ($1, $0) })
        let firstFrom = seen.firstFrom.map { $0.flatMap { indexOf[$0] } }
        let copies = row.neighbours().enumerated().map { node, neighbours in
            neighbours.filter { $0 == 0 || firstFrom[$0] != node }.count
        }
        var problems: [String] = []
        if !covered { problems.append("\(seen.firstSeen.filter { $0 == nil }.count) node(s) never saw the broadcast") }
        let maximumDeliveries = seen.deliveries.dropFirst().max() ?? 0
        if maximumDeliveries > 1 { problems.append("a node's protocol saw the broadcast \(maximumDeliveries) times") }
        let last = seen.firstSeen.compactMap { $0 }.max() ?? started
        return BroadcastResult(
            microsecondsToCoverage: Double(last - started) / 1000, copiesPerNode: Double(copies.reduce(0, +)) / Double(row.nodes),
            maximumCopies: copies.max() ?? 0, maximumDeliveries: maximumDeliveries, problems: problems)
    }
}
