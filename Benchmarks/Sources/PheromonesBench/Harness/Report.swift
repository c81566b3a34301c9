import Foundation

/// One row's figures for one implementation, over all rounds.
struct RowReport: Codable, Sendable {
    var scenario: Scenario
    var row: String
    var proto: WireProtocol
    var implementation: Implementation
    var connections: Int
    var messagesInFlight: Int
    var size: Int
    /// TLS rows: full handshakes or resumed ones (nil: plaintext).
    var tls: LoadPlan.TLSMode?
    var metrics: [String: Spread]
    var problems: [String]
}

/// The machine a run was taken on.
struct MachineDescription: Codable, Sendable {
    var date: String
    var cpu: String
    var cores: Int
    var system: String
    var kernel: String
    var memoryGiB: Int

    static func current() -> MachineDescription {
        let info = ProcessInfo.processInfo
        let cpuinfo = ProcessStats.readFile("/proc/cpuinfo") ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return MachineDescription(
            date: ISO8601DateFormatter().string(from: Date()), cpu: model, cores: info.activeProcessorCount,
            system: info.operatingSystemVersionString,
            kernel: ProcessStats.readFile("/proc/sys/kernel/osrelease")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?",
            memoryGiB: Int(info.physicalMemory >> 30))
    }
}

/// The settings a run used, and how busy the machine was around it.
struct RunDescription: Codable, Sendable {
    var rounds: Int
    var warmupSeconds: Double
    var durationSeconds: Double
    var serverLoops: Int
    var verify: Bool
    /// The 1-minute load average before the first measurement and after the last: other work on
    /// the machine shows here (the run itself adds about 2 on a busy row).
    var loadAverageBefore: Double?
    var loadAverageAfter: Double?

    /// The 1-minute load average, from `/proc/loadavg`.
    static func loadAverage() -> Double? {
        ProcessStats.readFile("/proc/loadavg")?.split(separator: " ").first.flatMap { Double($0) }
    }
}

/// The results of a run: a readable table and a JSON document with one object per row and server.
struct Report: Codable, Sendable {
    var machine: MachineDescription
    var settings: RunDescription
    var rows: [RowReport]
    /// The `p2p` rows, when the run had them (ours only).
    var p2p: [P2PRowReport]? = nil

    init(rows: [Row], measurements: [Measurement], settings: RunDescription) {
        machine = .current()
        self.settings = settings
        self.rows = rows.enumerated().flatMap { index, row in
            Self.summarize(row, measurements: measurements.filter { $0.row == index })
        }
    }

    var hasProblems: Bool { rows.contains { !$0.problems.isEmpty } || (p2p ?? []).contains { !$0.problems.isEmpty } }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    private static func summarize(_ row: Row, measurements: [Measurement]) -> [RowReport] {
        var reports = Implementation.allCases.map { implementation in
            let mine = measurements.filter { $0.implementation == implementation }
            let results = mine.compactMap(\.result)
            var metrics: [String: Spread] = [:]
            for metric in row.scenario.metrics {
                metrics[metric.key] = Spread(results.compactMap(metric.value))
            }
            return RowReport(
                scenario: row.scenario, row: row.name, proto: row.plan.proto, implementation: implementation,
                connections: row.plan.connections, messagesInFlight: row.plan.messagesInFlight, size: row.plan.size,
                tls: row.plan.tls, metrics: metrics, problems: mine.flatMap { m in m.problems.map { "round \(m.round): \($0)" } })
        }
        guard let ours = reports.firstIndex(where: { $0.implementation == .pheromones }),
              let nio = reports.firstIndex(where: { $0.implementation == .nio }) else { return reports }
        for (key, spread) in reports[ours].metrics {
            guard let theirs = reports[nio].metrics[key]?.median, theirs != 0 else { continue }
            reports[ours].metrics[key]?.ratio = spread.median / theirs
        }
        return reports
    }
}

extension Report {
    /// Markdown tables, one per scenario: each row's median (min–max) per server, then ours/NIO.
    func table() -> String {
        var text = "Machine: \(machine.cpu), \(machine.cores) cores, \(machine.memoryGiB) GiB, "
        text += "\(machine.system), Linux \(machine.kernel); \(machine.date)\n"
        text += "Rounds: \(settings.rounds) " + (rows.isEmpty ? "per row" : "per server, alternating")
        text += "; \(settings.warmupSeconds) s warm-up, "
        text += "\(settings.durationSeconds) s measured; \(settings.serverLoops) server loop(s)"
        text += settings.verify ? "; every reply byte verified" : ""
        text += "; load average \(Self.format(settings.loadAverageBefore)) before, "
        text += "\(Self.format(settings.loadAverageAfter)) after\n"
        if !rows.isEmpty {
            text += "ours/NIO is the ratio of medians: above 1 is better for msg/s, MB/s and answered; "
            text += "below 1 is better for latency, seconds, CPU and memory.\n"
        }
        var scenarios: [Scenario] = []
        for row in rows where !scenarios.contains(row.scenario) { scenarios.append(row.scenario) }
        for scenario in scenarios {
            text += "\n" + table(for: scenario)
        }
        if let p2p { text += "\n" + p2pTable(p2p, loops: settings.serverLoops) }
        let problems = rows.filter { !$0.problems.isEmpty }
        let p2pProblems = (p2p ?? []).filter { !$0.problems.isEmpty }
        if !problems.isEmpty || !p2pProblems.isEmpty {
            text += "\nProblems (flagged ! above):\n"
            for row in problems {
                text += row.problems.map { "- \(row.scenario.rawValue) \(row.row) \(row.implementation.rawValue): \($0)\n" }.joined()
            }
            for row in p2pProblems {
                text += row.problems.map { "- p2p \(row.row): \($0)\n" }.joined()
            }
        }
        return text
    }

    private func table(for scenario: Scenario) -> String {
        let metrics = scenario.metrics
        let mine = rows.filter { $0.scenario == scenario }
        let first = mine.first
        var text = scenario.heading.isEmpty
            ? "### \(scenario.rawValue) (\(first?.proto.rawValue ?? "") protocol, \(first?.size ?? 0)-byte messages)\n\n"
            : "### \(scenario.rawValue) (\(scenario.heading))\n\n"
        text += "| row | server | " + metrics.map(\.title).joined(separator: " | ") + " |\n"
        text += "|---|---|" + String(repeating: "---:|", count: metrics.count) + "\n"
        for report in mine {
            let flag = report.problems.isEmpty ? "" : " !"
            let cells = metrics.map { metric in report.metrics[metric.key].map { cell($0, metric) } ?? "-" }
            text += "| \(report.row) | \(report.implementation.rawValue)\(flag) | " + cells.joined(separator: " | ") + " |\n"
            if report.implementation == .pheromones { continue }
            let ours = mine.first { $0.row == report.row && $0.implementation == .pheromones }
            let ratios = metrics.map { metric in
                ours?.metrics[metric.key]?.ratio.map { NumberText.format($0, decimals: 2) } ?? "-"
            }
            text += "| \(report.row) | ours/NIO | " + ratios.joined(separator: " | ") + " |\n"
        }
        return text
    }

    private static func format(_ loadAverage: Double?) -> String {
        loadAverage.map { NumberText.format($0, decimals: 2) } ?? "?"
    }

    private func cell(_ spread: Spread, _ metric: Metric) -> String {
        guard spread.rounds.count > 1 else { return metric.format(spread.median) }
        return "\(metric.format(spread.median)) (\(metric.format(spread.min))–\(metric.format(spread.max)))"
    }
}
