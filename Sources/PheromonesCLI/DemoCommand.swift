import ArgumentParser
import Logging
import Pheromones
import PheromonesP2P

/// `pheromones demo`: three nodes on 127.0.0.1 replay the Go original's example.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start three nodes on 127.0.0.1 and replay the original's example conversations and broadcasts.",
        discussion: """
            In each mode: luda adds yoghurt and runs the conversation connect -> get -> fetch -> notice \
            to completion; yoghurt does the same to luda; yoghurt adds diudiu and broadcasts a hello; \
            yoghurt deletes diudiu and broadcasts again. Exits 0 only if every step completed.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case short, persistent, both

        var connectionTypes: [ConnectionType] {
            switch self {
            case .short: return [.short]
            case .persistent: return [.persistent]
            case .both: return [.short, .persistent]
            }
        }
    }

    @Option(help: "Which router to demonstrate: short, persistent or both.")
    var mode: Mode = .both

    @Option(help: "The wire format: native (length-prefixed binary) or json (byte-compatible with the Go original).")
    var wire: WireFormat = .native

    @Flag(help: "Run the native wire in the clear, as before Noise (the JSON wire always is).")
    var insecure = false

    /// What secures the native wire.
    var security: WireSecurity { insecure ? .insecure : .noise }

    /// How the demo's connections are secured, in words.
    var securityLabel: String { wire == .json ? "plaintext" : (insecure ? "insecure" : "Noise") }

    mutating func run() async throws {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var outcomes: [DemoOutcome] = []
        for connectionType in mode.connectionTypes {
            Console.printLine("== \(connectionType) connections, \(wire) wire, \(securityLabel)")
            outcomes.append(await DemoScenario(connectionType: connectionType, wire: wire, security: security, group: group).run())
            Console.printLine("")
        }
        try await group.shutdownGracefully()

        Console.printLine("== summary")
        for outcome in outcomes { Console.printLine(outcome.summary) }
        let failures = outcomes.flatMap(\.failures)
        guard failures.isEmpty else {
            for failure in failures { Console.printLine("FAILED: \(failure)") }
            throw ExitCode(1)
        }
        Console.printLine("every conversation completed")
    }
}

/// What one mode of the demo achieved.
struct DemoOutcome {
    var connectionType: ConnectionType
    var conversations = 0
    var broadcastReplies = 0
    var messages = 0
    var elapsed = TimeAmount.zero
    var failures: [String] = []

    var summary: String {
        let ms = milliseconds(elapsed)
        return "\(connectionType): \(conversations) conversations completed, \(broadcastReplies) broadcast replies, "
            + "\(messages) messages handled, \(ms) ms\(failures.isEmpty ? "" : ", \(failures.count) failed step(s)")"
    }
}

/// One run of the example in one router mode.
struct DemoScenario {
    let connectionType: ConnectionType
    let wire: WireFormat
    let security: WireSecurity
    let group: MultiThreadedEventLoopGroup

    func run() async -> DemoOutcome {
        let transcript = Transcript(prefix: "  ")
        var outcome = DemoOutcome(connectionType: connectionType)
        var nodes: [Node] = []
        do {
            for name in ["luda", "yoghurt", "diudiu"] { nodes.append(try makeNode(name, transcript: transcript)) }
            try await play(luda: nodes[0], yoghurt: nodes[1], diudiu: nodes[2], transcript: transcript, outcome: &outcome)
        } catch {
            outcome.failures.append("\(connectionType): \(error)")
            transcript.say("error: \(error)")
        }
        for node in nodes { await node.shutdown() }
        outcome.messages = transcript.messagesHandled
        outcome.elapsed = transcript.elapsed
        return outcome
    }

    private func play(luda: Node, yoghurt: Node, diudiu: Node, transcript: Transcript, outcome: inout DemoOutcome) async throws {
        let ludaAddress = try await luda.listen(on: .loopbackV4(port: 0))
        let yoghurtAddress = try await yoghurt.listen(on: .loopbackV4(port: 0))
        let diudiuAddress = try await diudiu.listen(on: .loopbackV4(port: 0))
        transcript.say("luda listens on \(ludaAddress), yoghurt on \(yoghurtAddress), diudiu on \(diudiuAddress)")
        for node in [luda, yoghurt, diudiu] { transcript.say("\(node.name) is peer \(node.peerID)") }

        transcript.say("luda adds yoghurt and says hello")
        try await luda.add(peer: "yoghurt", address: yoghurtAddress)
        try await converse(luda, with: "yoghurt", from: ludaAddress, transcript: transcript, outcome: &outcome)

        transcript.say("yoghurt adds luda and says hello")
        await addIfMissing(yoghurt, peer: "luda", address: ludaAddress, transcript: transcript)
        try await converse(yoghurt, with: "luda", from: yoghurtAddress, transcript: transcript, outcome: &outcome)

        transcript.say("yoghurt adds diudiu and broadcasts a hello")
        await addIfMissing(yoghurt, peer: "diudiu", address: diudiuAddress, transcript: transcript)
        await broadcast(from: yoghurt, at: yoghurtAddress, expecting: ["luda", "diudiu"], transcript: transcript, outcome: &outcome)

        transcript.say("yoghurt deletes diudiu and broadcasts again")
        try await yoghurt.delete(peer: "diudiu")
        await broadcast(from: yoghurt, at: yoghurtAddress, expecting: ["luda"], transcript: transcript, outcome: &outcome)
    }

    private func makeNode(_ name: String, transcript: Transcript) throws -> Node {
        var logger = Logger(label: "pheromones.demo.\(name)")
        logger.logLevel = .warning
        let configuration = Node.Configuration(
            name: name, connectionType: connectionType, wire: wire, security: security,
            dialTimeout: .seconds(2), replyTimeout: .seconds(2), logger: logger, observer: transcript.nodeObserver)
        return try Node(configuration: configuration, protocol: ExampleProtocol(observer: transcript.protocolObserver), group: group)
    }

    /// Runs the example conversation from `node` to `peer` and checks that it completed.
    private func converse(
        _ node: Node, with peer: String, from address: SocketAddress, transcript: Transcript, outcome: inout DemoOutcome
    ) async throws {
        let hello = ExampleProtocol.connectRequest(from: node.name, listeningAddress: address)
        let summary = try await node.converse(with: peer, starting: hello)
        let steps = summary.sent.map(\.operation).joined(separator: ", ")
        transcript.say("\(node.name) -> \(peer): conversation complete (\(steps)) in \(milliseconds(summary.duration)) ms")
        outcome.conversations += 1
    }

    /// Adds a route unless the peer's greeting already did (the original refuses a duplicate too).
    private func addIfMissing(_ node: Node, peer: String, address: SocketAddress, transcript: Transcript) async {
        do {
            try await node.add(peer: peer, address: address)
        } catch P2PError.routeExists {
            transcript.say("\(node.name) already has a route to \(peer) (its hello added it)")
        } catch {
            transcript.say("\(node.name) could not add \(peer): \(error)")
        }
    }

    /// Sends a hello to every peer of `node` and checks that exactly `expected` answered.
    private func broadcast(
        from node: Node, at address: SocketAddress, expecting expected: Set<String>, transcript: Transcript,
        outcome: inout DemoOutcome
    ) async {
        let finishedBefore = transcript.conversationsFinished.count
        let results = await node.dispatchAll(ExampleProtocol.connectRequest(from: node.name, listeningAddress: address))
        var answered: Set<String> = []
        for (peer, result) in results.sorted(by: { $0.key.name < $1.key.name }) {
            switch result {
            case .success(let reply):
                transcript.say("broadcast: \(peer) answered \(reply?.operation.escapedForTerminal ?? "(sent; replies go to the protocol)")")
                answered.insert(peer.name)
            case .failure(let error):
                transcript.say("broadcast: \(peer) failed: \(error)")
            }
        }
        outcome.broadcastReplies += answered.count
        if answered != expected {
            outcome.failures.append("\(connectionType) broadcast reached \(answered.sorted()), expected \(expected.sorted())")
        }
        // On persistent connections the replies go on to the protocol: each hello grows into a
        // whole conversation, which the initiator's protocol reports when it ends.
        if connectionType == .persistent {
            let finished = await transcript.waitForConversations(count: finishedBefore + expected.count, timeout: .seconds(5))
            outcome.conversations += finished - finishedBefore
            if finished < finishedBefore + expected.count {
                outcome.failures.append("\(connectionType) broadcast: only \(finished - finishedBefore) of \(expected.count) conversations finished")
            }
        }
    }
}
