/// A figure of a P2P row: its JSON key, its column title, and how it is read off one result.
struct P2PMetric<Result>: Sendable {
    var key: String
    var title: String
    var decimals: Int
    var value: @Sendable (Result) -> Double

    static var dispatch: [P2PMetric<DispatchResult>] {
        [
            .init(key: "dispatchesPerSecond", title: "dispatches/s", decimals: 0) { $0.dispatchesPerSecond },
            .init(key: "latencyP50", title: "p50 µs", decimals: 1) { $0.latencyP50 },
            .init(key: "latencyP99", title: "p99 µs", decimals: 1) { $0.latencyP99 },
            .init(key: "cpuMicrosecondsPerDispatch", title: "CPU µs/dispatch", decimals: 1) { $0.cpuMicrosecondsPerDispatch },
        ]
    }

    static var conversation: [P2PMetric<ConversationResult>] {
        [
            .init(key: "conversationsPerSecond", title: "conversations/s", decimals: 0) { $0.conversationsPerSecond },
            .init(key: "latencyP50", title: "p50 µs", decimals: 1) { $0.latencyP50 },
            .init(key: "latencyP99", title: "p99 µs", decimals: 1) { $0.latencyP99 },
            .init(key: "cpuMicrosecondsPerConversation", title: "CPU µs/conversation", decimals: 1) { $0.cpuMicrosecondsPerConversation },
        ]
    }

    static var broadcast: [P2PMetric<BroadcastResult>] {
        [
            .init(key: "microsecondsToCoverage", title: "µs to full coverage", decimals: 0) { $0.microsecondsToCoverage },
            .init(key: "copiesPerNode", title: "copies received per node", decimals: 2) { $0.copiesPerNode },
            .init(key: "maximumCopies", title: "most copies at a node", decimals: 0) { Double($0.maximumCopies) },
            .init(key: "maximumDeliveries", title: "protocol deliveries per node (max)", decimals: 0) { Double($0.maximumDeliveries) },
        ]
    }
}

/// One P2P row over all its rounds (ours only).
struct P2PRowReport: Codable, Sendable {
    enum Kind: String, Codable, Sendable { case dispatch, conversation, broadcast }

    var kind: Kind
    var row: String
    var connectionType: String
    var concurrency: Int?
    /// The conversation rows' wire (the dispatch and broadcast rows run on the native wire).
    var wire: String?
    /// Conversation rows: whether the driver's tasks preferred its loop as their executor.
    var prefersDriverLoop: Bool?
    var nodes: Int?
    var linksPerNode: Double?
    var metrics: [String: Spread]
    var problems: [String]

    static func spreads<Result>(_ results: [Result], _ metrics: [P2PMetric<Result>]) -> [String: Spread] {
        var spreads: [String: Spread] = [:]
        for metric in metrics { spreads[metric.key] = Spread(results.map(metric.value)) }
        return spreads
    }
}

extension Report {
    /// The P2P tables: dispatch rows, conversation rows, then the broadcast row (each table only
    /// when the run had such rows).
    func p2pTable(_ reports: [P2PRowReport], loops: Int) -> String {
        var text = "### p2p (ours only: SwiftNIO has no P2P layer to compare with; \(loops) loop(s) in the nodes' group)\n"
        let dispatch = reports.filter { $0.kind == .dispatch }
        if !dispatch.isEmpty {
            text += "\nDispatch: native wire, 64-byte payloads, both nodes on the group.\n\n"
            text += table(dispatch, titles: P2PMetric<DispatchResult>.dispatch.map { ($0.key, $0.title, $0.decimals) })
        }
        let conversation = reports.filter { $0.kind == .conversation }
        if !conversation.isEmpty {
            text += "\nConversation: the Go original's example conversation (8 messages), JSON wire; "
            text += "the target on the group, the driver a node on a loop of its own.\n\n"
            text += table(conversation, titles: P2PMetric<ConversationResult>.conversation.map { ($0.key, $0.title, $0.decimals) })
        }
        let broadcast = reports.filter { $0.kind == .broadcast }
        if !broadcast.isEmpty {
            text += "\nBroadcast: native wire, 64-byte payloads.\n\n"
            text += table(
                broadcast, titles: P2PMetric<BroadcastResult>.broadcast.map { ($0.key, $0.title, $0.decimals) },
                extra: ("links per node", { $0.linksPerNode.map { NumberText.format($0, decimals: 1) } ?? "-" }))
        }
        return text
    }

    private func table(
        _ reports: [P2PRowReport], titles: [(key: String, title: String, decimals: Int)],
        extra: (title: String, cell: (P2PRowReport) -> String)? = nil
    ) -> String {
        let extraTitles = extra.map { [$0.title] } ?? []
        var text = "| row | " + (extraTitles + titles.map(\.title)).joined(separator: " | ") + " |\n"
        text += "|---|" + String(repeating: "---:|", count: titles.count + extraTitles.count) + "\n"
        for report in reports {
            let flag = report.problems.isEmpty ? "" : " !"
            let cells = titles.map { column in
                report.metrics[column.key].map { spread in
                    let format = { NumberText.format($0, decimals: column.decimals) }
                    guard spread.rounds.count > 1 else { return format(spread.median) }
                    return "\(format(spread.median)) (\(format(spread.min))–\(format(spread.max)))"
                } ?? "-"
            }
            let extraCells = extra.map { [$0.cell(report)] } ?? []
            text += "| \(report.row)\(flag) | " + (extraCells + cells).joined(separator: " | ") + " |\n"
        }
        return text
    }
}
