import Foundation

/// The `p2p` rows of a run, measured in this process (there is no NIO counterpart to alternate with).
struct P2PPlan: Sendable {
    /// The kinds of row a plan can hold, in the order they run.
    enum Part: String, CaseIterable, Sendable {
        case dispatch, conversation, broadcast
    }

    var dispatchRows = DispatchRow.defaults
    var conversationRows = ConversationRow.defaults
    /// nil: no broadcast row.
    var broadcast: BroadcastRow?
    var timing: Timing
    /// Event loops in the nodes' group.
    var loops: Int
    var size = 64

    init(quick: Bool, timing: Timing, loops: Int, nodes: Int? = nil, broadcasts: Int? = nil) {
        broadcast = BroadcastRow(nodes: nodes ?? (quick ? 8 : 16), rounds: broadcasts ?? (quick ? 5 : 20))
        self.timing = timing
        self.loops = loops
    }

    /// Keeps only the rows of `parts`.
    mutating func restrict(to parts: Set<Part>) {
        if !parts.contains(.dispatch) { dispatchRows = [] }
        if !parts.contains(.conversation) { conversationRows = [] }
        if !parts.contains(.broadcast) { broadcast = nil }
    }

    /// Keeps only the dispatch and conversation rows named in `names` (exact names).
    mutating func restrict(toRows names: Set<String>) {
        dispatchRows.removeAll { !names.contains($0.name) }
        conversationRows.removeAll { !names.contains($0.name) }
    }

    /// Each dispatch row, then each conversation row, `timing.rounds` times (fresh nodes each
    /// round), then the broadcasts.
    func run() async -> [P2PRowReport] {
        var reports = await measureAlternating(dispatchRows)
        for row in conversationRows { reports.append(await measure(row)) }
        if let broadcast { reports.append(await measureBroadcast(broadcast)) }
        return reports
    }

    /// Measures the dispatch rows round by round, each round going through every row, so that rows
    /// compared with each other (Noise and plaintext) share the machine's moods.
    private func measureAlternating(_ rows: [DispatchRow]) async -> [P2PRowReport] {
        var results = [[DispatchResult]](repeating: [], count: rows.count)
        var problems = [[String]](repeating: [], count: rows.count)
        for round in 1...timing.rounds {
            for (index, row) in rows.enumerated() {
                do {
                    let result = try await DispatchBench.measure(row, timing: timing, loops: loops, size: size)
                    results[index].append(result)
                    problems[index] += result.problems.map { "round \(round): \($0)" }
                    P2PProgress.report("\(row.name), round \(round)/\(timing.rounds): "
                        + "\(NumberText.format(result.dispatchesPerSecond, decimals: 0)) dispatches/s, "
                        + "p99 \(NumberText.format(result.latencyP99, decimals: 1)) µs, "
                        + "CPU \(NumberText.format(result.cpuMicrosecondsPerDispatch, decimals: 1)) µs/dispatch")
                } catch {
                    problems[index].append("round \(round): \(error)")
                    P2PProgress.report("\(row.name), round \(round)/\(timing.rounds): \(error)")
                }
            }
        }
        return rows.indices.map { index in
            P2PRowReport(
                kind: .dispatch, row: rows[index].name, connectionType: rows[index].connectionType.rawValue,
                concurrency: rows[index].concurrency,
                metrics: P2PRowReport.spreads(results[index], P2PMetric<DispatchResult>.dispatch), problems: problems[index])
        }
    }

    private func measure(_ row: ConversationRow) async -> P2PRowReport {
        var results: [ConversationResult] = []
        var problems: [String] = []
        for round in 1...timing.rounds {
            do {
                let result = try await ConversationBench.measure(row, timing: timing, loops: loops)
                results.append(result)
                problems += result.problems.map { "round \(round): \($0)" }
                P2PProgress.report("\(row.name), round \(round)/\(timing.rounds): "
                    + "\(NumberText.format(result.conversationsPerSecond, decimals: 0)) conversations/s, "
                    + "p99 \(NumberText.format(result.latencyP99, decimals: 1)) µs, "
                    + "CPU \(NumberText.format(result.cpuMicrosecondsPerConversation, decimals: 1)) µs/conversation "
                    + "(user \(NumberText.format(result.userCPUMicrosecondsPerConversation, decimals: 1)))")
            } catch {
                problems.append("round \(round): \(error)")
                P2PProgress.report("\(row.name), round \(round)/\(timing.rounds): \(error)")
            }
        }
        return P2PRowReport(
            kind: .conversation, row: row.name, connectionType: row.connectionType.rawValue, concurrency: row.concurrency,
            wire: "json", prefersDriverLoop: row.prefersDriverLoop,
            metrics: P2PRowReport.spreads(results, P2PMetric<ConversationResult>.conversation), problems: problems)
    }

    private func measureBroadcast(_ row: BroadcastRow) async -> P2PRowReport {
        var report = P2PRowReport(
            kind: .broadcast, row: row.name, connectionType: "persistent", nodes: row.nodes,
            linksPerNode: Double(2 * row.links.count) / Double(row.nodes), metrics: [:], problems: [])
        do {
            let results = try await BroadcastBench.measure(row, loops: loops, size: size)
            report.metrics = P2PRowReport.spreads(results, P2PMetric<BroadcastResult>.broadcast)
            for (round, result) in results.enumerated() {
                report.problems += result.problems.map { "broadcast \(round + 1): \($0)" }
            }
            let times = results.map { NumberText.format($0.microsecondsToCoverage, decimals: 0) }
            P2PProgress.report("\(row.name), \(results.count) broadcasts: µs to full coverage \(times.joined(separator: ", "))")
        } catch {
            report.problems.append("\(error)")
            P2PProgress.report("\(row.name): \(error)")
        }
        return report
    }
}

enum P2PProgress {
    static func report(_ line: String) {
        FileHandle.standardError.write(Data(("p2p " + line + "\n").utf8))
    }
}
