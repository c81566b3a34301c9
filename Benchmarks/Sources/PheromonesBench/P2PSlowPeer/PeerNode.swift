/// The node a p2p-slow-peer run targets: a `pheromones node` started as a child process on a free
/// loopback port, as chaos starts its server (`ChaosServer`), by default the repository's release
/// binary.
///
/// Its standard input is /dev/null (`ChildProcess`): the node reads commands from it, and at the
/// end of input without a `quit` it keeps serving. Its transcript (a line per message handled)
/// goes to /dev/null too, written all the same: that cost is part of the node measured.
enum PeerNode {
    /// The command's placeholders for the wire and the router (the port's is chaos's `{port}`).
    static let wirePlaceholder = "{wire}"
    static let routerPlaceholder = "{router}"
    static let placeholders = [ChaosServer.portPlaceholder, wirePlaceholder, routerPlaceholder]
    /// The node's name (it answers in its own name; the clients do not check it).
    static let name = "target"

    /// `<repo>/.build/release/pheromones node --name target --listen 127.0.0.1:{port} --router {router} --wire {wire}`.
    static func defaultCommand() throws -> String {
        let binary = try ChaosServer.repositoryBinary(named: "pheromones", option: "--node-cmd")
        return "\(ChaosServer.shellQuoted(binary)) node --name \(name) --listen \(P2PSlowPeerPlan.host):\(ChaosServer.portPlaceholder) "
            + "--router \(routerPlaceholder) --wire \(wirePlaceholder)"
    }

    /// Starts `template` for `wire` and `router` and waits until it accepts a connection.
    static func start(_ template: String, wire: PeerWire, router: PeerRouter) throws -> ChaosServer {
        try ChaosServer.start(template, filling: [wirePlaceholder: wire.rawValue, routerPlaceholder: router.rawValue])
    }
}
