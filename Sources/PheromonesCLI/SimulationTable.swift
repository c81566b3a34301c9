import Foundation
import PheromonesSimulation

/// `pheromones simulate`'s table: a row per figure, a column per mode, then the goals.
struct SimulationTable {
    let reports: [SimulationReport]

    var lines: [String] {
        var lines = [row("", reports.map(\.mode))]
        lines.append(row("graph", reports.map { String(format: "%.2f avg degree, %d links", $0.averageDegree, $0.links) }))
        lines.append(row("fewest connections at a node", reports.map { "\($0.fewestConnections)" }))
        if reports.contains(where: { $0.droppedLinks > 0 }) {
            lines.append(row("links dropped halfway", reports.map { "\($0.droppedLinks)" }))
        }
        lines.append(row("coverage (worst broadcast)", reports.map { String(format: "%.2f%%", $0.coverage * 100) }))
        lines.append(row("exactly once everywhere", reports.map { $0.exactlyOnce ? "yes" : "NO (\($0.repeatedDeliveries) repeats)" }))
        lines.append(row("wire messages / node / bcast", reports.map { String(format: "%.2f", $0.wireMessagesPerNode) }))
        lines.append(row("copies received / node / bcast", reports.map { String(format: "%.2f", $0.copiesReceivedPerNode) }))
        lines.append(row("duplicates / node / bcast", reports.map { String(format: "%.2f (%.1f%%)", $0.duplicatesPerNode, $0.duplicateShare * 100) }))
        lines.append(row("most duplicates at one node", reports.map { String(format: "%.2f", $0.maximumDuplicatesPerNode) }))
        lines.append(row("delivery p50 / p99 / max (ms)", reports.map {
            String(format: "%.0f / %.0f / %.0f", $0.deliveryP50Milliseconds, $0.deliveryP99Milliseconds, $0.deliveryMaximumMilliseconds)
        }))
        lines.append(row("IHAVE / IWANT / IDONTWANT B/node/bcast", reports.map {
            String(format: "%.1f / %.1f / %.1f", $0.iHaveBytesPerNode, $0.iWantBytesPerNode, $0.iDontWantBytesPerNode)
        }))
        lines.append(row("mesh upkeep B/node/bcast", reports.map { String(format: "%.1f", $0.meshControlBytesPerNode) }))
        lines.append(row("virtual / wall time (s)", reports.map { String(format: "%.1f / %.1f", $0.virtualSeconds, $0.wallSeconds) }))
        lines.append("")
        lines += goals
        return lines
    }

    /// The goals, each met or missed.
    private var goals: [String] {
        var lines: [String] = []
        for report in reports {
            lines.append(goal("\(report.mode): 100% coverage, exactly once", report.isComplete))
        }
        if let flood = reports.first(where: { $0.mode == "flood" }) {
            lines.append(goal("flood: duplicates at most degree - 1 per node", flood.duplicatesWithinDegreeBound))
        }
        if let gossip = reports.first(where: { $0.mode == "gossip" }) {
            lines.append(goal(String(format: "gossip: duplicates at most 30%% of received (%.1f%%)", gossip.duplicateShare * 100), gossip.duplicateShare <= 0.30))
            if let flood = reports.first(where: { $0.mode == "flood" }), flood.deliveryP99Milliseconds > 0 {
                let ratio = gossip.deliveryP99Milliseconds / flood.deliveryP99Milliseconds
                lines.append(goal(String(format: "gossip: p99 delivery at most 2x flood's (%.2fx)", ratio), ratio <= 2))
            }
        }
        return lines
    }

    private func goal(_ text: String, _ met: Bool) -> String {
        (met ? "met     " : "MISSED  ") + text
    }

    private func row(_ label: String, _ cells: [String]) -> String {
        label.padding(toLength: 40, withPad: " ", startingAt: 0) + cells.map { $0.padding(toLength: 30, withPad: " ", startingAt: 0) }.joined()
    }
}
