import Pheromones

/// The native wire's dialect: length-prefixed binary envelopes that carry ids, correlation ids
/// and hop limits, and the router's own messages (``ControlMessage``: hello, goaway, "no reply
/// follows", ping and pong).
///
/// Every message awaits exactly one answer, if only the "no reply follows" marker, so both ends
/// always know what they await and what they owe; a persistent connection's ``NativeSession``
/// matches answers by correlation id.
struct NativeDialect: WireDialect {
    func stages(maximumMessageSize: Int) -> (handlers: [any ChannelHandler], framer: any PartialMessageProbe) {
        let framer = NativeWire.framer(maximumFrameLength: maximumMessageSize)
        return ([framer, NativeWire.encoder(maximumFrameLength: maximumMessageSize)], framer)
    }

    /// The keepalive, installed even with its pings switched off: the peer's pings are still answered.
    func persistentLivenessStages(_ configuration: Node.Configuration) -> [any ChannelHandler] {
        [KeepaliveStage(localName: configuration.name, interval: configuration.keepaliveInterval, timeout: configuration.keepaliveTimeout)]
    }

    /// Answers of one read batch go out in one write: frames need no write of their own.
    var flushesEachAnswer: Bool { false }

    func isRouterMessage(_ envelope: Envelope) -> Bool { envelope.isControl }

    /// Nothing: a frame that does not decode leaves the stream where no frame can be trusted.
    func leavesStreamInStep(_ error: WireError) -> Bool { false }

    func shortRequest(_ message: Envelope, nextID: () -> UInt64) -> Envelope {
        var request = message
        if request.messageID == 0 { request.messageID = nextID() }
        return request
    }

    func shortReply(_ received: Envelope) -> Envelope? {
        received.isNoReplyMarker ? nil : received
    }

    /// The server always answers, if only with the marker: an end of stream without one means the
    /// peer went away.
    func shortReplyAtEndOfStream(from peer: SocketAddress) -> Result<Envelope?, P2PError> {
        .failure(.connectionLost(peer))
    }

    func shortAnswer(_ answer: Envelope?, to requestID: UInt64, localName: String, nextID: () -> UInt64) -> Envelope? {
        var reply = answer ?? Envelope.noReplyMarker(from: localName, answering: 0)
        reply.hopLimit = 0
        reply.messageID = answer == nil ? 0 : nextID()
        reply.correlationID = requestID
        return reply
    }

    func makeSession() -> any PersistentSession { NativeSession() }
}
