import Pheromones

/// The JSON wire's dialect, the Go original's: concatenated objects carrying a name, an operation
/// and data, nothing else.
///
/// No ids, so answers cannot be told apart (a persistent connection's ``JSONSession`` takes them
/// in order), and no router messages: an operation that starts with U+0000 is the protocol's like
/// any other, there is no hello (a connection is identified by the address dialed, or by the
/// protocol's `addRoute`), no "no reply follows" (a short server that answers nothing closes), and
/// no keepalive.
struct JSONDialect: WireDialect {
    func stages(maximumMessageSize: Int) -> (handlers: [any ChannelHandler], framer: any PartialMessageProbe) {
        let framer = JSONWire.framer(maximumObjectSize: maximumMessageSize)
        return ([framer, JSONEnvelopeCodec(maximumObjectSize: maximumMessageSize)], framer)
    }

    /// None: the wire cannot carry a ping.
    func persistentLivenessStages(_ configuration: Node.Configuration) -> [any ChannelHandler] { [] }

    /// The Go original reads one message per `Read`, so two answers must never share a write.
    var flushesEachAnswer: Bool { true }

    func isRouterMessage(_ envelope: Envelope) -> Bool { false }

    /// An object with wrong fields is one message gone wrong; the next object starts clean.
    func leavesStreamInStep(_ error: WireError) -> Bool { error.leavesStreamInStep }

    func shortRequest(_ message: Envelope, nextID: () -> UInt64) -> Envelope { message }

    /// An answer named like the native marker is an answer like any other here.
    func shortReply(_ received: Envelope) -> Envelope? { received }

    /// A server whose protocol answers nothing closes without a reply: that is how it says so.
    func shortReplyAtEndOfStream(from peer: SocketAddress) -> Result<Envelope?, P2PError> {
        .success(nil)
    }

    func shortAnswer(_ answer: Envelope?, to requestID: UInt64, localName: String, nextID: () -> UInt64) -> Envelope? {
        answer
    }

    func makeSession() -> any PersistentSession { JSONSession() }
}
