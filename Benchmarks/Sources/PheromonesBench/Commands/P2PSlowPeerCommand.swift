import ArgumentParser
import CEpoll
import Foundation

/// A peer that sends a P2P node requests and never reads its answers: how much the node's memory
/// grows, and whether another peer is still served meanwhile, per wire and router.
struct P2PSlowPeerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "p2p-slow-peer",
        abstract: "A peer that floods a pheromones node with getreq and never reads: the node's RSS growth, and another peer's round trips.",
        discussion: """
            Per wire and router, on a fresh node: a warm-up peer does a few getreq/getresp round \
            trips and the node's idle RSS is read; then a flooder sends --megabytes MiB of getreq \
            and never reads (persistent router: pipelined on one connection, --payload data bytes \
            each, after a hello on the native wire, each with its own message id; short router: one \
            request on each of up to --connections connections, the flood spread over them, with \
            --withhold-last-byte all of each request but its last byte), until \
            everything is sent or nothing moved for --stall-seconds; at the same moment a second \
            peer does round trips for --pingpong-seconds (short router: a connection each), each \
            timed. The node's RSS and descriptors are read every 50 ms; again while the flooder \
            holds, and 2 s after it left with a reset. The node is started on a free 127.0.0.1 \
            port: by default the repository's .build/release/pheromones node, otherwise \
            --node-cmd, with {port}, {wire} and {router} replaced. Exits with status 1 if the \
            ping-pong peer failed, the node died, its peak RSS grew more than --max-growth-mib over \
            idle, or (only when given) the round trips' p99 passed --max-p99-ms.
            """)

    @Option(help: "native or json (default: both, a fresh node each).") var wire: PeerWire?
    @Option(help: "persistent or short (default: both, a fresh node each).") var router: PeerRouter?
    @Option(name: .customLong("node-cmd"), help: "The node's command line, with {port}, {wire} and {router} (default: the repository's release pheromones node).")
    var nodeCommand: String?
    @Option(help: "MiB the flooder sends (rounded up to whole requests).") var megabytes: Int = 200
    @Option(help: "Data bytes of each pipelined getreq (persistent router; small, so that the answers weigh about as much as the requests).")
    var payload: Int = 64
    @Option(help: "Connections the short-router flooder opens, one request each.") var connections: Int = 1000
    @Flag(name: .customLong("withhold-last-byte"), help: "Short router: keep back the last byte of each request, so the node holds what it read until its reply timeout.")
    var withholdLastByte = false
    @Option(help: "Seconds without progress after which the flooder stops sending.") var stallSeconds: Double = 3
    @Option(name: .customLong("pingpong-seconds"), help: "Seconds the ping-pong peer starts round trips, from the flooder's connect.")
    var pingPongSeconds: Double = 2
    @Option(help: "Seconds a ping-pong reply may take before it counts as a failure.") var replyTimeout: Double = 2
    @Option(help: "Seconds after which the flood stops even if the node still reads it.") var floodTimeout: Double = 60
    @Option(name: .customLong("max-growth-mib"), help: "The most the node's peak RSS may grow over idle, in MiB.")
    var maxGrowthMiB: Double = 64
    @Option(name: .customLong("max-p99-ms"), help: "Fail when the ping-pong p99 is slower, in ms (default: reported, not judged).")
    var maxP99Milliseconds: Double?
    @Option(help: "Also write the settings and results as JSON to this file.") var json: String?

    static let maximumMegabytes = 64 << 10
    static let maximumSeconds = 3600.0
    /// Connections the short-router flooder may open: within the usual hard limit on descriptors
    /// (the flooder's, and the node's, which holds one per connection it has not closed).
    static let maximumConnections = 10_000

    func validate() throws {
        guard (1...Self.maximumMegabytes).contains(megabytes) else {
            throw ValidationError("--megabytes must be 1...\(Self.maximumMegabytes), not \(megabytes)")
        }
        guard (0...P2PSlowPeerPlan.maximumPayload).contains(payload) else {
            throw ValidationError("--payload must be 0...\(P2PSlowPeerPlan.maximumPayload) bytes (the node's 1 MiB message, base64 included), not \(payload)")
        }
        guard (1...Self.maximumConnections).contains(connections) else {
            throw ValidationError("--connections must be 1...\(Self.maximumConnections), not \(connections)")
        }
        for (name, value) in [("--stall-seconds", stallSeconds), ("--pingpong-seconds", pingPongSeconds),
                              ("--reply-timeout", replyTimeout), ("--flood-timeout", floodTimeout)] {
            guard value.isFinite, value > 0, value <= Self.maximumSeconds else {
                throw ValidationError("\(name) must be in (0, \(Int(Self.maximumSeconds))] seconds, not \(value)")
            }
        }
        guard maxGrowthMiB.isFinite, maxGrowthMiB >= 0 else {
            throw ValidationError("--max-growth-mib must be a finite number of MiB, 0 or more, not \(maxGrowthMiB)")
        }
        if let maxP99Milliseconds, !(maxP99Milliseconds.isFinite && maxP99Milliseconds > 0) {
            throw ValidationError("--max-p99-ms must be a positive number of milliseconds, not \(maxP99Milliseconds)")
        }
        // A command without {wire} or {router} would run every combination on one node setting,
        // and the clients would speak a wire the node does not.
        if let nodeCommand, let missing = PeerNode.placeholders.first(where: { !nodeCommand.contains($0) }) {
            throw ValidationError("--node-cmd must contain \(missing)")
        }
        if let json, json.isEmpty { throw ValidationError("--json needs a path") }
    }

    // No SIGPIPE handling: every send passes MSG_NOSIGNAL, and a node started for the next
    // combination must not inherit an ignored SIGPIPE from here.
    func run() throws {
        let template = try nodeCommand ?? PeerNode.defaultCommand()
        // The short router's flooder holds a descriptor per connection, and the node inherits the limit.
        _ = cepoll_raise_open_files_limit()
        var report = P2PSlowPeerReport(
            machine: .current(), settings: .init(plan(wire: .native, router: .persistent)),
            loadAverageBefore: RunDescription.loadAverage())
        print(report.header())
        fflush(nil)  // all streams: the tables must show as they come when stdout is a pipe
        for wire in wire.map({ [$0] }) ?? PeerWire.allCases {
            for router in router.map({ [$0] }) ?? PeerRouter.allCases {
                let result = try measure(plan(wire: wire, router: router), template: template)
                print(P2PSlowPeerReport.table(result))
                fflush(nil)
                report.results.append(result)
            }
        }
        report.loadAverageAfter = RunDescription.loadAverage()
        if let json { try report.writeJSON(to: json) }
        print("\np2p-slow-peer: \(report.passed ? "PASS" : "FAIL")")
        if !report.passed { throw ExitCode.failure }
    }

    /// One combination on a fresh node, stopped with SIGTERM afterwards; judged once the node's
    /// end is known (a node that exited on its own died during the run).
    private func measure(_ plan: P2PSlowPeerPlan, template: String) throws -> P2PSlowPeerResult {
        let node = try PeerNode.start(template, wire: plan.wire, router: plan.router)
        defer { node.process.stop() }
        var result = try P2PSlowPeerRun(plan: plan, node: node).measure()
        if let exit = node.process.exitDescription {
            result.nodeExit = "exited (\(exit))"
            result.nodeDied = true
        } else {
            node.process.stop()
            result.nodeExit = "stopped with SIGTERM (\(node.process.exitDescription ?? "?"))"
        }
        result.judge()
        return result
    }

    private func plan(wire: PeerWire, router: PeerRouter) -> P2PSlowPeerPlan {
        P2PSlowPeerPlan(
            wire: wire, router: router, megabytes: megabytes, payload: payload, connections: connections,
            withholdLastByte: withholdLastByte, stallSeconds: stallSeconds, pingPongSeconds: pingPongSeconds, replyTimeout: replyTimeout,
            floodTimeout: floodTimeout, maxGrowthMiB: maxGrowthMiB, maxP99Milliseconds: maxP99Milliseconds)
    }
}
