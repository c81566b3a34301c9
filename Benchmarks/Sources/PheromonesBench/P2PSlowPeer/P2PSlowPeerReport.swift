import Foundation

/// A p2p-slow-peer run over one or more wires and routers: the settings, the machine, and one
/// result per combination, as a readable table each and as JSON.
struct P2PSlowPeerReport: Codable, Sendable {
    struct Settings: Codable, Sendable {
        var megabytes: Int
        var payload: Int
        var connections: Int
        var withholdLastByte: Bool
        var stallSeconds: Double
        var pingPongSeconds: Double
        var replyTimeout: Double
        var floodTimeout: Double
        var maxGrowthMiB: Double
        var maxP99Milliseconds: Double?
        var messageSize: Int
        var sampleEverySeconds: Double
        var settleSeconds: Double
        var leaveSeconds: Double

        init(_ plan: P2PSlowPeerPlan) {
            megabytes = plan.megabytes
            payload = plan.payload
            connections = plan.connections
            withholdLastByte = plan.withholdLastByte
            stallSeconds = plan.stallSeconds
            pingPongSeconds = plan.pingPongSeconds
            replyTimeout = plan.replyTimeout
            floodTimeout = plan.floodTimeout
            maxGrowthMiB = plan.maxGrowthMiB
            maxP99Milliseconds = plan.maxP99Milliseconds
            messageSize = plan.messageSize
            sampleEverySeconds = plan.sampleEvery
            settleSeconds = plan.settleSeconds
            leaveSeconds = plan.leaveSeconds
        }
    }

    var scenario = "p2p-slow-peer"
    var machine: MachineDescription
    var settings: Settings
    var loadAverageBefore: Double?
    var loadAverageAfter: Double?
    var results: [P2PSlowPeerResult] = []

    var passed: Bool { results.allSatisfy { $0.problems.isEmpty } }

    func writeJSON(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Text

    /// The lines printed before the first combination runs.
    func header() -> String {
        let machine = machine
        return """
            Machine: \(machine.cpu), \(machine.cores) cores, \(machine.memoryGiB) GiB, \(machine.kernel); \(machine.date)
            p2p-slow-peer: a flooder sends the node \(settings.megabytes) MiB of getreq and never reads (persistent \
            router: pipelined on one connection, \(NumberText.format(Double(settings.payload), decimals: 0)) data bytes \
            each; short router: one request each on up to \(NumberText.format(Double(settings.connections), decimals: 0)) \
            connections\(settings.withholdLastByte ? ", each request but its last byte" : "")), stopping after \(Self.seconds(settings.stallSeconds)) without progress; meanwhile a second \
            peer does getreq/getresp round trips for \(Self.seconds(settings.pingPongSeconds)); load average \
            \(loadAverageBefore.map { NumberText.format($0, decimals: 2) } ?? "-")
            """
    }

    /// One combination's table, and its problems if any.
    static func table(_ result: P2PSlowPeerResult) -> String {
        var lines = [
            "", "#### p2p-slow-peer, \(result.combination)", "",
            "node: \(result.nodeCommand) (pid \(result.nodePID)), \(result.nodeExit ?? "running")", "",
            "| figure | value |", "|---|---|",
        ]
        lines += rows(result).map { "| \($0.0) | \($0.1) |" }
        lines += result.problems.map { "- problem: \($0)" }
        return lines.joined(separator: "\n")
    }

    private static func rows(_ result: P2PSlowPeerResult) -> [(String, String)] {
        let flood = result.flood
        var rows = [
            ("idle RSS (after \(result.warmUpRoundTrips) warm-up round trips)", "\(mebibytes(result.idleRSSKiB)), \(fds(result.idleFDs))"),
            ("peak RSS, flooder connected (\(result.rssSamples) samples)", "\(mebibytes(result.peakRSSKiB)), at most \(fds(result.peakFDs))"),
            ("peak growth over idle", "**\(mebibytes(result.peakGrowthKiB, signed: true))** (limit \(NumberText.format(result.maxGrowthMiB, decimals: 1)) MiB)"),
            ("MiB the flooder got in (accepted by the kernel)", "\(mebibytes(bytes: flood.bytesAccepted)) of \(mebibytes(bytes: flood.bytesOffered)); "
                + "\(count(flood.requestsAccepted)) of \(count(flood.requestsOffered)) requests"),
            ("how the flood ended", floodEnd(flood)),
        ]
        if let opened = flood.connectionsOpened {
            rows.append(("flooder's connections", "\(count(opened)) opened, \(count(flood.connectionsEstablished ?? 0)) established, "
                + "\(count(flood.closedByNode ?? 0)) closed by the node, \(count(flood.cutOff ?? 0)) cut off, "
                + "\(count(flood.connectFailures ?? 0)) failed connects"))
        }
        rows += [
            ("RSS while the flooder holds", "\(mebibytes(result.holdRSSKiB)), \(fds(result.holdFDs))"),
            ("ping-pong round trips during the flood", pingPong(result)),
            ("ping-pong p50 / p99 / max", latencies(result)),
            ("RSS \(seconds(result.afterLeaveSeconds)) after the flooder's \(flood.close)", "\(mebibytes(result.afterLeaveRSSKiB)), "
                + "\(fds(result.afterLeaveFDs))"),
            ("after leaving, over idle", "**\(mebibytes(result.afterLeaveGrowthKiB, signed: true))**"),
            ("verdict", result.passed ? "PASS" : "FAIL"),
        ]
        return rows
    }

    private static func pingPong(_ result: P2PSlowPeerResult) -> String {
        let pingPong = result.pingPong
        let failures = pingPong.failure.map { "**\(pingPong.failures) failure**: \($0)" } ?? "0 failures"
        return "\(count(pingPong.roundTrips)) in \(seconds(pingPong.seconds)), \(failures)"
    }

    private static func latencies(_ result: P2PSlowPeerResult) -> String {
        let pingPong = result.pingPong
        guard pingPong.roundTrips > 0 else { return "-" }
        var text = [pingPong.p50Milliseconds, pingPong.p99Milliseconds, pingPong.maxMilliseconds]
            .map { NumberText.format($0, decimals: 2) }.joined(separator: " / ") + " ms"
        if let limit = result.maxP99Milliseconds { text += " (p99 limit \(NumberText.format(limit, decimals: 2)) ms)" }
        return text
    }

    private static func floodEnd(_ flood: PeerFloodFigures) -> String {
        guard let outcome = flood.outcome else { return "-" }
        // The outcomes are slow-reader's, which speaks of a server.
        var text = "\(outcome.rawValue.replacingOccurrences(of: "server", with: "node")) (\(flood.detail))"
        if let last = flood.secondsToLastByte { text += "; last byte accepted at \(seconds(last))" }
        return text
    }

    // MARK: Units

    private static func mebibytes(_ kib: Int?, signed: Bool = false) -> String {
        SlowReaderReport.mebibytes(kib, signed: signed)
    }

    private static func mebibytes(bytes: Int) -> String {
        NumberText.format(Double(bytes) / 1_048_576, decimals: 1) + " MiB"
    }

    private static func count(_ value: Int) -> String { NumberText.format(Double(value), decimals: 0) }

    private static func fds(_ count: Int?) -> String { "\(count.map { "\($0)" } ?? "-") fds" }

    private static func seconds(_ value: Double) -> String {
        NumberText.format(value, decimals: value < 1 ? 3 : value < 10 ? 2 : 1) + " s"
    }
}
