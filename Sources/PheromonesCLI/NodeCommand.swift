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
            Commands: send NAME OPERATION [DATA] | broadcast OPERATION [DATA] | peers | stats | \
            add NAME HOST:PORT | delete NAME | quit
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
        let security: WireSecurity = insecure ? .insecure : .noise
        var configuration = Node.Configuration(
            name: name, connectionType: router, wire: wire, security: security, identity: try loadIdentity(),
            logger: logger, observer: transcript.nodeObserver)
        configuration.peerExchange = peerExchange.map { PeerExchange(targetPeerCount: $0) }
        let node = try Node(configuration: configuration, protocol: ExampleProtocol(observer: transcript.protocolObserver))
        let address = try await node.listen(on: SocketAddress.resolve(listen))
        let secured = wire == .json ? "plaintext" : (insecure ? "insecure" : "Noise")
        transcript.say("\(name) listens on \(address) (\(router) router, \(wire) wire, \(secured), peer id \(node.peerID))")

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
        case ("broadcast", 1...2):
            await broadcast(operation: arguments[0], data: arguments.count == 2 ? arguments[1] : nil)
        case ("peers", 0):
            let peers = await node.peers
            transcript.say(peers.isEmpty ? "no peers" : "peers: " + peers.map(\.description).joined(separator: ", "))
        case ("stats", 0):
            let statistics = await node.statistics
            for line in statistics.description.split(separator: "\n") { transcript.say("stats: \(line)") }
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
                + "try send NAME OPERATION [DATA], broadcast OPERATION [DATA], peers, stats, add NAME HOST:PORT, delete NAME, quit")
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
