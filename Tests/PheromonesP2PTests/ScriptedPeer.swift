import Pheromones
import PheromonesNoise
import PheromonesP2P
import XCTest

/// A peer whose every frame the test writes by hand: a bare pipeline of a wire's stages and a stage
/// that records what arrives, with no router and no protocol. It can send what no well-behaved
/// node sends (forged ids, operations that look like the router's own messages) and shows exactly
/// what the node under test sent it.
///
/// On the native wire it speaks Noise by default, as a node does, with an identity of its own
/// (`identity`): what it writes by hand is the plaintext inside the session.
final class ScriptedPeer: Sendable {
    let channel: SocketChannel
    /// The identity its Noise handshake proves (on the native wire inside Noise).
    let identity: NodeIdentity
    /// Every envelope the node sent, oldest first.
    let received: Recorder<Envelope>
    /// Records once, when the node closes the connection (or its output).
    let ended: Recorder<Void>

    private init(channel: SocketChannel, identity: NodeIdentity, received: Recorder<Envelope>, ended: Recorder<Void>) {
        self.channel = channel
        self.identity = identity
        self.received = received
        self.ended = ended
    }

    /// Connects to `address` speaking `wire`, inside Noise as `identity` when `wire` is native and
    /// `security` is `.noise`.
    static func connect(
        to address: SocketAddress, wire: WireFormat, security: WireSecurity = .noise, identity: NodeIdentity = NodeIdentity(),
        group: MultiThreadedEventLoopGroup
    ) async throws -> ScriptedPeer {
        let noise = wire == .native && security == .noise ? try NoiseConfiguration(identity: identity) : nil
        let received = Recorder<Envelope>()
        let ended = Recorder<Void>()
        let options = { () -> SocketOptions in
            var options = SocketOptions()
            options.allowRemoteHalfClosure = true
            return options
        }()
        let channel = try await within(10, on: group.next(), "a scripted peer to connect") {
            try await ClientBootstrap(group: group)
                .options(options)
                .channelInitializer { channel in
                    let secure: [any ChannelHandler] = noise.map { [NoiseHandler(initiatorWith: $0)] } ?? []
                    try channel.pipeline.addHandlers(secure + wire.handlers() + [EnvelopeCollector(received: received, ended: ended)])
                }
                .connect(to: address).get()
        }
        return ScriptedPeer(channel: channel, identity: identity, received: received, ended: ended)
    }

    /// Connects on the native wire and says hello as `name`, listening (it claims) at
    /// `listeningAddress`; inside Noise the hello names `claimedPeer` (by default its own id).
    static func nativeNode(
        _ name: String, listeningAt listeningAddress: SocketAddress, connectingTo address: SocketAddress,
        security: WireSecurity = .noise, identity: NodeIdentity = NodeIdentity(), claimedPeer: PeerID? = nil,
        generation: UInt64 = 1, group: MultiThreadedEventLoopGroup
    ) async throws -> ScriptedPeer {
        let peer = try await connect(to: address, wire: .native, security: security, identity: identity, group: group)
        let peerID = security == .noise ? (claimedPeer ?? identity.peerID) : nil
        try await peer.send(ControlMessage.hello(.init(name: name, generation: generation, listeningAddress: listeningAddress, peerID: peerID)))
        return peer
    }

    /// Writes `envelope` and waits until it is written.
    func send(_ envelope: Envelope) async throws {
        let channel = channel
        try await within(10, on: channel.eventLoop, "a scripted write") { try await channel.writeAndFlush(envelope).get() }
    }

    /// Waits until what arrived satisfies `condition`.
    func wait(_ what: String, until condition: @escaping @Sendable ([Envelope]) -> Bool) async throws {
        try await received.wait(what, within: 10, on: channel.eventLoop, until: condition)
    }

    /// Waits for the first envelope that `matches`, and returns it.
    func first(_ what: String, where matches: @escaping @Sendable (Envelope) -> Bool) async throws -> Envelope {
        try await wait(what) { $0.contains(where: matches) }
        guard let envelope = received.all.first(where: matches) else { throw TestTimedOut(what: what) }
        return envelope
    }

    /// Native wire: sends a message (id `messageID`) the node's protocol answers with nothing, and
    /// waits for the router's "no reply follows" marker for it. The node handles a connection's
    /// messages in order, so everything this peer sent before has been handled, and everything the
    /// node sent this peer before the marker has arrived.
    func sync(_ messageID: UInt64) async throws {
        try await send(Envelope(name: "scripted", operation: "sync", messageID: messageID))
        _ = try await first("the marker answering sync \(messageID)") {
            $0.operation == "\u{0}noreply" && $0.correlationID == messageID
        }
    }

    func close() async {
        try? await channel.close().get()
    }
}

/// Records what a ``ScriptedPeer`` receives.
private final class EnvelopeCollector: ChannelInboundHandler {
    typealias InboundIn = Envelope

    private let received: Recorder<Envelope>
    private let ended: Recorder<Void>
    private var hasEnded = false

    init(received: Recorder<Envelope>, ended: Recorder<Void>) {
        self.received = received
        self.ended = ended
    }

    func channelRead(context: ChannelHandlerContext, data: Envelope) {
        received.append(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed { end() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        end()
        context.fireChannelInactive()
    }

    private func end() {
        guard !hasEnded else { return }
        hasEnded = true
        ended.append(())
    }
}

/// A protocol that answers each operation from a table (nothing for the operations it does not
/// list) and records every operation it handles, in order.
final class AnswerTable: PeerProtocol {
    let answers: [String: String]
    let seen: Recorder<String>

    init(_ answers: [String: String] = [:], seen: Recorder<String> = Recorder()) {
        self.answers = answers
        self.seen = seen
    }

    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        seen.append(message.operation)
        return answers[message.operation].map { Envelope(name: context.localName, operation: $0) }
    }
}

/// A node running an ``AnswerTable``, listening on 127.0.0.1.
func startAnswerTableNode(
    _ name: String, _ connectionType: ConnectionType, _ wire: WireFormat, answers: [String: String] = [:],
    group: MultiThreadedEventLoopGroup, configure: (inout Node.Configuration) -> Void = { _ in }
) async throws -> (node: Node, address: SocketAddress, seen: Recorder<String>) {
    var configuration = Node.Configuration(name: name, connectionType: connectionType, wire: wire, logger: testLogger("p2p.\(name)"))
    configure(&configuration)
    let seen = Recorder<String>()
    let node = try Node(configuration: configuration, protocol: AnswerTable(answers, seen: seen), group: group)
    let address = try await node.listen(on: .loopbackV4(port: 0))
    return (node, address, seen)
}
