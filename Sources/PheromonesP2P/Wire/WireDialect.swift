import Pheromones

/// What a connection's wire says besides messages, and how a router works over it: one type per
/// wire (``NativeDialect``, ``JSONDialect``), so that a new wire is one new type.
///
/// The router stages (``ShortDialStage``, ``ShortServerStage``, ``PersistentStage``) ask their
/// dialect wherever the wires differ: the stages that frame the bytes, how a short request and its
/// answer are numbered, what stands for "no reply", and, for a persistent connection, the
/// ``PersistentSession`` that matches answers to what was sent and speaks the router's own
/// messages. A dialect holds no state of its own: what a connection keeps is its session's.
protocol WireDialect: Sendable {
    /// The stages that turn the wire's bytes into ``Envelope``s and back, for messages of at most
    /// `maximumMessageSize` bytes, and the framer among them (for a ``PartialMessageTimer``).
    func stages(maximumMessageSize: Int) -> (handlers: [any ChannelHandler], framer: any PartialMessageProbe)

    /// The liveness stages a persistent connection adds above the wire (the keepalive, on a wire
    /// that can carry pings).
    func persistentLivenessStages(_ configuration: Node.Configuration) -> [any ChannelHandler]

    /// Whether each answer of the protocol is flushed on its own, rather than with the others of
    /// the same read batch.
    var flushesEachAnswer: Bool { get }

    /// Whether `envelope` is one of the router's own messages, which a protocol may not send.
    func isRouterMessage(_ envelope: Envelope) -> Bool

    /// Whether `error` concerns one well-framed message, so that the connection stays open and
    /// the protocol answers it (``PeerProtocol/handleMalformedMessage(_:context:)``).
    func leavesStreamInStep(_ error: WireError) -> Bool

    /// A short dial's request as written, `nextID` numbering it where the wire carries ids.
    func shortRequest(_ message: Envelope, nextID: () -> UInt64) -> Envelope

    /// The reply a short dial takes `received` for (nil: the peer answered nothing).
    func shortReply(_ received: Envelope) -> Envelope?

    /// What a short dial's reply is when the peer ends its stream before sending one.
    func shortReplyAtEndOfStream(from peer: SocketAddress) -> Result<Envelope?, P2PError>

    /// What a short server writes when its protocol answers `request` with `answer` (nil: nothing);
    /// nil when nothing is written and closing the connection says it.
    func shortAnswer(_ answer: Envelope?, to requestID: UInt64, localName: String, nextID: () -> UInt64) -> Envelope?

    /// A new persistent connection's session.
    func makeSession() -> any PersistentSession
}

extension WireFormat {
    /// The wire's dialect: the one place a ``WireFormat`` is mapped to the type that implements it.
    var dialect: any WireDialect {
        switch self {
        case .native: return NativeDialect()
        case .json: return JSONDialect()
        }
    }
}

extension TimeAmount {
    /// The amount as a timeout: nil (no timeout) when it is zero or negative, which is how a
    /// configuration switches a liveness timeout off.
    var asTimeout: TimeAmount? { self > .zero ? self : nil }
}
