import ArgumentParser
import Glibc
import Logging
import Pheromones
import PheromonesNoise
import PheromonesP2P

/// `pheromones node`: one node, driven from standard input, until SIGINT or SIGTERM.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run one node until SIGINT or SIGTERM, greeting its --peer nodes and reading commands from standard input.",
        discussion: """
            Commands: send NAME OPERATION [DATA] | broadcast [--hop-limit N] OPERATION [DATA] | peers | stats | \
            add NAME HOST:PORT | delete NAME | quit. `broadcast` without --hop-limit sends to every connected \
            peer and prints the answers; with it, the message travels through the mesh (--broadcast's mode), \
            and each node it reaches prints a `delivered broadcast id=... from=... hop-limit=... op=... data=...` line. \
            `stats` ends with one `stats: counters key=value ...` line and `peers` with `peers: connected N of M`, \
            for scripts (Tests/MultiHost/run.sh).
            """)

    @Option(help: "The node's name.")
    var name: String

    @Option(help: "Where the node listens, as HOST:PORT (port 0: any free port).")
    var listen: String

    @Option(help: "The router: short (a connection per message) or persistent (kept connections).")
    var router: ConnectionType = .persistent

    @Option(help: "The wire format: native or json (byte-compatible with the Go original).")
    var wire: WireFormat = .native

    @Option(name: .customLong("peer"), help: "A peer to greet at start, as NAME=HOST:PORT (repeatable).")
    var peers: [String] = []

    @Option(help: "The node's identity key file (see `pheromones id`); default: a new identity for this run only.")
    var identity: String?

    @Flag(help: "Run the native wire in the clear, as before Noise (the JSON wire always is).")
    var insecure = false

    @Option(help: "How broadcasts travel through the mesh: flood or gossip (native wire only).")
    var broadcast: BroadcastChoice = .flood

    @Option(help: "Seconds before a pinned peer (added with --peer or add) is dialled again after its connection drops (default 1); doubles with each failure.")
    var reconnectDelay: Double?

    @Option(help: "The longest delay, in seconds, between two dials of a pinned peer (default 60).")
    var maximumReconnectDelay: Double?

    @Option(help: "Seconds of silence from a peer after which the node pings it (default 15; 0: no pings).")
    var keepaliveInterval: Double?

    @Option(help: "Seconds of silence from a peer after which its connection is closed (default 45; 0: never).")
    var keepaliveTimeout: Double?

    @Option(help: "Seeds what the node draws at random (message ids, reconnect jitter, gossip's peers), for a reproducible run.")
    var seed: UInt64?

    @Option(help: "Peer exchange: ask peers for their peers and connect to up to this many (persistent router, native wire); default: off.")
    var peerExchange: Int?

    /// The identity the node proves: the key file's, or a new one for this run.
    func loadIdentity() throws -> NodeIdentity {
        guard let identity else { return NodeIdentity() }
        guard access(identity, F_OK) == 0 else {
            throw ValidationError("there is no identity file at \(identity.escapedForTerminal); `pheromones id --identity FILE --create` makes one.")
        }
        return try IdentityFile.load(from: identity)
    }

    /// Rejects a malformed address or an out-of-range port as a usage error (exit status 64)
    /// before anything starts. Host names are only resolved later, when the node starts.
    func validate() throws {
        if let peerExchange, !(1...1024).contains(peerExchange) {
            throw ValidationError("--peer-exchange wants a peer count in 1...1024, not \(peerExchange).")
        }
        do {
            _ = try SocketAddress.splitHostPort(listen)
        } catch {
            throw ValidationError("--listen: \(error)")
        }
        for peer in peers {
            guard let (_, hostPort) = NodeSession.split(peer, on: "=") else {
                throw ValidationError("--peer wants NAME=HOST:PORT, not '\(peer)'.")
            }
            do {
                _ = try SocketAddress.splitHostPort(hostPort)
            } catch {
                throw ValidationError("--peer \(peer): \(error)")
            }
        }
        for (option, seconds) in durationOptions {
            guard let seconds else { continue }
            guard Self.timeAmount(seconds: seconds) != nil else {
                throw ValidationError("\(option) wants a number of seconds from 0 to \(Int(Self.longestDuration)), not \(seconds).")
            }
        }
    }

    /// The options that are a number of seconds, by name, for validation.
    private var durationOptions: [(String, Double?)] {
        [("--reconnect-delay", reconnectDelay), ("--maximum-reconnect-delay", maximumReconnectDelay),
         ("--keepalive-interval", keepaliveInterval), ("--keepalive-timeout", keepaliveTimeout)]
    }

    /// The longest duration an option takes, in seconds (a day: longer is a typo, and the
    /// conversion to nanoseconds cannot overflow).
    static let longestDuration = 86_400.0

    /// `seconds` as a `TimeAmount`, or nil when it is negative, not a number or longer than
    /// ``longestDuration``.
    static func timeAmount(seconds: Double) -> TimeAmount? {
        guard seconds.isFinite, seconds >= 0, seconds <= longestDuration else { return nil }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// The node's configuration: the defaults, with what the options set.
    func makeConfiguration(logger: Logger, observer: @escaping @Sendable (NodeEvent) -> Void) throws -> Node.Configuration {
        var configuration = Node.Configuration(
            name: name, connectionType: router, wire: wire, security: insecure ? .insecure : .noise, identity: try loadIdentity(),
            logger: logger, observer: observer)
        configuration.broadcast = broadcast.mode
        configuration.randomSeed = seed
        // Validated in `validate()`; an invalid value cannot reach here, and would keep the default.
        if let delay = reconnectDelay.flatMap(Self.timeAmount) { configuration.reconnectDelay = delay }
        if let delay = maximumReconnectDelay.flatMap(Self.timeAmount) { configuration.maximumReconnectDelay = delay }
        if let interval = keepaliveInterval.flatMap(Self.timeAmount) { configuration.keepaliveInterval = interval }
        if let timeout = keepaliveTimeout.flatMap(Self.timeAmount) { configuration.keepaliveTimeout = timeout }
        configuration.peerExchange = peerExchange.map { PeerExchange(targetPeerCount: $0) }
        return configuration
    }

    mutating func run() async throws {
        // Wait for signals first, so that SIGINT and SIGTERM are caught (and the node shut down
        // properly) as early as possible. `ended` yields when either ends the node.
        TerminationSignal.install()
        let (ended, end) = AsyncStream.makeStream(of: Void.self)
        Task { await TerminationSignal.wait(); end.yield() }

        let transcript = Transcript()
        var logger = Logger(label: "pheromones.node.\(name)")
        logger.logLevel = .notice
        let configuration = try makeConfiguration(logger: logger, observer: transcript.nodeObserver)
        let node = try Node(configuration: configuration, protocol: ExampleProtocol(observer: Self.reportingBroadcasts(to: transcript)))
        let address = try await node.listen(on: SocketAddress.resolve(listen))
        let secured = wire == .json ? "plaintext" : (insecure ? "insecure" : "Noise")
        transcript.say("\(name) listens on \(address) (\(router) router, \(wire) wire, \(secured), peer id \(node.peerID), \(broadcast) broadcasts)")

        // Whichever comes first ends the node: a signal, or `quit` on standard input (read once
        // the greetings are done, which may take a dial timeout or two: a signal does not wait
        // for them). Neither waiter can be cancelled, so they race through a stream instead of a
        // task group. The two do not depend on each other: the signal waiter has a thread of its
        // own, and the stdin reader takes no lock that printing needs (see `Console`).
        let session = NodeSession(node: node, address: address, transcript: transcript)
        let peers = peers
        Task {
            for peer in peers { await session.greet(peerSpecification: peer) }
            await session.readCommands()
            end.yield()
        }
        for await _ in ended { break }
        transcript.say("\(name) shutting down")
        await node.shutdown()
        // The stdin reader may still be blocked in read(2); nothing is left to wait for.
        Glibc.exit(0)
    }

    /// The transcript's protocol observer, which also prints a `delivered broadcast` line for each
    /// broadcast the protocol receives (a message with a hop limit), for scripts to count.
    static func reportingBroadcasts(to transcript: Transcript) -> @Sendable (ExampleProtocol.Event) -> Void {
        let observer = transcript.protocolObserver
        return { event in
            observer(event)
            if case .handled(_, let message, _) = event, message.hopLimit > 0 {
                transcript.say(deliveredLine(message))
            }
        }
    }

    /// `delivered broadcast id=HEX from=NAME hop-limit=N op=OPERATION data=DATA`: one line, the
    /// data last (it may contain spaces). The name, operation and data come from a peer, so they
    /// are escaped for the terminal.
    static func deliveredLine(_ message: Envelope) -> String {
        let hex = String(message.messageID, radix: 16)
        let data = message.data.map { String(decoding: $0.readableBytesView, as: UTF8.self).escapedForTerminal } ?? ""
        return "delivered broadcast id=\(String(repeating: "0", count: max(0, 16 - hex.count)))\(hex) "
            + "from=\(message.name.escapedForTerminal) hop-limit=\(message.hopLimit) "
            + "op=\(message.operation.escapedForTerminal) data=\(data)"
    }
}

/// The broadcast modes `--broadcast` names; gossip takes gossipsub's defaults.
enum BroadcastChoice: String, ExpressibleByArgument, CaseIterable, CustomStringConvertible {
    /// Every node forwards a new broadcast to all its other peers.
    case flood
    /// An eager mesh with lazy IHAVE/IWANT gossip.
    case gossip

    /// The node's setting.
    var mode: BroadcastMode {
        switch self {
        case .flood: .flood
        case .gossip: .gossip
        }
    }

    /// The name, as typed.
    var description: String { rawValue }
}

/// A running node and the commands typed at it.
struct NodeSession: Sendable {
    let node: Node
    let address: SocketAddress
    let transcript: Transcript

    /// Adds `NAME=HOST:PORT` and runs the example conversation with it.
    func greet(peerSpecification: String) async {
        guard let (name, hostPort) = Self.split(peerSpecification, on: "=") else {
            transcript.say("error: --peer wants NAME=HOST:PORT, not '\(peerSpecification)'")
            return
        }
        await add(name: name, hostPort: hostPort)
        do {
            let summary = try await node.converse(with: name, starting: ExampleProtocol.connectRequest(from: node.name, listeningAddress: address))
            transcript.say("conversation with \(summary.peer) complete in \(milliseconds(summary.duration)) ms")
        } catch {
            transcript.say("error: greeting \(name) failed: \(error)")
        }
    }

    /// Reads and runs commands until `quit`. At the end of input it returns only if `quit` came;
    /// otherwise the node keeps serving (until a signal).
    func readCommands() async {
        for await line in StandardInputLines() {
            let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard let command = words.first else { continue }
            if command == "quit" { return }
            await run(command, arguments: Array(words.dropFirst()))
        }
        await withUnsafeContinuation { (_: UnsafeContinuation<Void, Never>) in }
    }

    private func run(_ command: String, arguments: [String]) async {
        switch (command, arguments.count) {
        case ("send", 2...3):
            await send(to: arguments[0], operation: arguments[1], data: arguments.count == 3 ? arguments[2] : nil)
        case ("broadcast", _) where arguments.first?.hasPrefix("--hop-limit") == true:
            await broadcastThroughMesh(arguments)
        case ("broadcast", 1...2):
            await broadcast(operation: arguments[0], data: arguments.count == 2 ? arguments[1] : nil)
        case ("peers", 0):
            let peers = await node.peers
            transcript.say(peers.isEmpty ? "no peers" : "peers: " + peers.map(\.description).joined(separator: ", "))
            transcript.say("peers: connected \(peers.filter(\.isConnected).count) of \(peers.count)")
        case ("stats", 0):
            let statistics = await node.statistics
            for line in statistics.description.split(separator: "\n") { transcript.say("stats: \(line)") }
            transcript.say("stats: \(Self.counters(statistics))")
        case ("add", 2):
            await add(name: arguments[0], hostPort: arguments[1])
        case ("delete", 1):
            do {
                try await node.delete(peer: arguments[0])
                transcript.say("deleted \(arguments[0])")
            } catch {
                transcript.say("error: \(error)")
            }
        default:
            transcript.say("error: unknown command '\(([command] + arguments).joined(separator: " "))'; "
                + "try send NAME OPERATION [DATA], broadcast [--hop-limit N] OPERATION [DATA], peers, stats, add NAME HOST:PORT, "
                + "delete NAME, quit")
        }
    }

    private func add(name: String, hostPort: String) async {
        do {
            let peerAddress = try SocketAddress.resolve(hostPort)
            try await node.add(peer: name, address: peerAddress)
            transcript.say("added \(name) at \(peerAddress)")
        } catch {
            transcript.say("error: cannot add \(name): \(error)")
        }
    }

    private func send(to peer: String, operation: String, data: String?) async {
        let message = Envelope(name: node.name, operation: operation, data: data.map { ByteBuffer(string: $0) })
        do {
            let reply = try await node.dispatch(to: peer, message)
            transcript.say("\(peer) answered \(reply.map(Self.describe) ?? "nothing")")
        } catch {
            transcript.say("error: send to \(peer) failed: \(error)")
        }
    }

    private func broadcast(operation: String, data: String?) async {
        let message = Envelope(name: node.name, operation: operation, data: data.map { ByteBuffer(string: $0) })
        let results = await node.dispatchAll(message)
        if results.isEmpty { transcript.say("no peers to broadcast to") }
        for (peer, result) in results.sorted(by: { $0.key.description < $1.key.description }) {
            switch result {
            case .success(let reply): transcript.say("\(peer) answered \(reply.map(Self.describe) ?? "nothing")")
            case .failure(let error): transcript.say("error: \(peer) failed: \(error)")
            }
        }
    }

    /// `broadcast --hop-limit N OPERATION [DATA]` (or `--hop-limit=N`): sends the message through
    /// the mesh in the node's broadcast mode, and says to how many peers it went first.
    private func broadcastThroughMesh(_ arguments: [String]) async {
        guard let (hopLimit, rest) = Self.parseHopLimit(arguments), (1...2).contains(rest.count) else {
            transcript.say("error: broadcast --hop-limit N OPERATION [DATA] wants a hop limit from 1 to 255, an operation and at most one word of data")
            return
        }
        let message = Envelope(name: node.name, operation: rest[0], data: rest.count == 2 ? ByteBuffer(string: rest[1]) : nil)
        do {
            let count = try await node.broadcast(message, hopLimit: hopLimit)
            transcript.say("broadcast \(rest.joined(separator: " ")) sent to \(count) peers (hop limit \(hopLimit))")
        } catch {
            transcript.say("error: broadcast failed: \(error)")
        }
    }

    /// Splits `--hop-limit N REST...` or `--hop-limit=N REST...` into the limit (1 to 255) and the
    /// rest; nil when the limit is missing or out of range.
    static func parseHopLimit(_ arguments: [String]) -> (UInt8, [String])? {
        guard let first = arguments.first else { return nil }
        let value: String, rest: ArraySlice<String>
        if first == "--hop-limit" {
            guard arguments.count >= 2 else { return nil }
            value = arguments[1]
            rest = arguments.dropFirst(2)
        } else if first.hasPrefix("--hop-limit=") {
            value = String(first.dropFirst("--hop-limit=".count))
            rest = arguments.dropFirst()
        } else {
            return nil
        }
        guard let hopLimit = UInt8(value), hopLimit >= 1 else { return nil }
        return (hopLimit, Array(rest))
    }

    /// The counters on one line, `counters key=value ...`, for scripts to parse.
    static func counters(_ statistics: NodeStatistics) -> String {
        let figures: [(String, Int)] = [
            ("messages-in", statistics.messagesIn), ("messages-out", statistics.messagesOut),
            ("delivered", statistics.delivered), ("duplicates-dropped", statistics.duplicatesDropped),
            ("forwarded", statistics.forwarded), ("rejected", statistics.rejected), ("slow-peer-drops", statistics.slowPeerDrops),
            ("refused", statistics.refused), ("peers-refused", statistics.peersRefused), ("peers-up", statistics.peersUp),
            ("peers-down", statistics.peersDown), ("reconnects", statistics.reconnects),
            ("handshake-timeouts", statistics.handshakeTimeouts), ("partial-message-timeouts", statistics.partialMessageTimeouts),
            ("keepalive-timeouts", statistics.keepaliveTimeouts), ("queued-bytes", statistics.queuedBytes),
            ("broadcast-copies-received", statistics.broadcastCopiesReceived), ("broadcast-copies-sent", statistics.broadcastCopiesSent),
        ]
        return "counters " + (figures + gossipFigures(statistics.gossip)).map { "\($0.0)=\($0.1)" }.joined(separator: " ")
    }

    /// Gossip's counters (all zero under flooding), named for the `counters` line.
    private static func gossipFigures(_ gossip: GossipCounters) -> [(String, Int)] {
        [
            ("gossip-ihave-sent", gossip.iHaveSent), ("gossip-ihave-ids-sent", gossip.iHaveIDsSent),
            ("gossip-ihave-bytes-sent", gossip.iHaveBytesSent), ("gossip-iwant-sent", gossip.iWantSent),
            ("gossip-iwant-ids-sent", gossip.iWantIDsSent), ("gossip-iwant-bytes-sent", gossip.iWantBytesSent),
            ("gossip-idontwant-sent", gossip.iDontWantSent), ("gossip-idontwant-ids-sent", gossip.iDontWantIDsSent),
            ("gossip-idontwant-bytes-sent", gossip.iDontWantBytesSent), ("gossip-mesh-control-sent", gossip.meshControlSent),
            ("gossip-mesh-control-bytes-sent", gossip.meshControlBytesSent), ("gossip-control-received", gossip.controlReceived),
            ("gossip-iwant-served", gossip.iWantServed), ("gossip-pulls-failed", gossip.pullsFailed),
            ("gossip-chokes", gossip.chokes), ("gossip-unchokes", gossip.unchokes),
            ("gossip-ids-ignored-over-budget", gossip.idsIgnoredOverBudget),
        ]
    }

    /// The operation and the data as text (bytes that are not UTF-8 become U+FFFD), escaped for
    /// the terminal: the peer chose them (see ``Console``).
    private static func describe(_ envelope: Envelope) -> String {
        let data = envelope.data.map { " \(String(decoding: $0.readableBytesView, as: UTF8.self).escapedForTerminal)" } ?? ""
        return "\(envelope.operation.escapedForTerminal)\(data)"
    }

    /// Splits `text` at the first `separator`; nil unless both sides are non-empty.
    static func split(_ text: String, on separator: Character) -> (String, String)? {
        guard let index = text.firstIndex(of: separator) else { return nil }
        let head = String(text[..<index]), tail = String(text[text.index(after: index)...])
        return head.isEmpty || tail.isEmpty ? nil : (head, tail)
    }
}
