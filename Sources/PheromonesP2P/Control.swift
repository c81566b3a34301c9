import Pheromones
import PheromonesNoise

/// The router's own messages on the native wire, which the ``ProtocolStage`` never sees and cannot
/// send (the router replaces such an answer with "no reply").
///
/// They exist on the native wire only: the JSON wire, the Go original's, has no router messages,
/// so there an operation that starts with U+0000 is the protocol's, like any other.
///
/// They are envelopes whose operation starts with U+0000, a prefix no protocol operation uses:
/// - `hello` (the first frame each side sends on a persistent connection): the sender's name in
///   `name`, and in `data` its dial generation (8 bytes, big-endian; 0 from the accepting side)
///   followed, inside Noise only, by its 32-byte peer id (which must be the one its handshake
///   proved), then its listening address as `ip:port` UTF-8 (empty when it does not listen);
/// - `goaway`: "I will start nothing new on this connection" (the start of draining);
/// - `noreply` with the answered message's id as correlation id: the protocol answered that
///   message with nothing, so a dispatch waiting for it completes with nil at once;
/// - `ping` (keepalive, sent on a persistent connection after a silence from the peer) and `pong`,
///   its answer: neither carries anything, and both are handled by the ``KeepaliveStage`` below
///   the router, so they are neither work awaited nor work owed (a draining connection does not
///   wait for them). A node that predates them logs them as unknown control messages and ignores
///   them, so it never answers a ping: see ``Node/Configuration/keepaliveTimeout``.
///
/// The hello's parts are `package` so that the hello fuzz target (Tests/Fuzz) can reach its parser.
package enum ControlMessage {
    static let prefix: Character = "\u{0}"
    package static let helloOperation = "\u{0}hello"
    static let goAwayOperation = "\u{0}goaway"
    static let noReplyOperation = "\u{0}noreply"
    static let pingOperation = "\u{0}ping"
    static let pongOperation = "\u{0}pong"

    /// What a hello says.
    package struct Hello: Sendable, Hashable {
        package var name: String
        package var generation: UInt64
        /// Where the sender listens, or nil when it does not.
        package var listeningAddress: SocketAddress?
        /// The peer id the sender claims (inside Noise only; checked against the one its
        /// handshake proved).
        package var peerID: PeerID?

        package init(name: String, generation: UInt64, listeningAddress: SocketAddress?, peerID: PeerID? = nil) {
            self.name = name
            self.generation = generation
            self.listeningAddress = listeningAddress
            self.peerID = peerID
        }
    }

    package static func hello(_ hello: Hello) -> Envelope {
        var data = ByteBuffer()
        data.writeInteger(hello.generation)
        if let peerID = hello.peerID { data.writeBytes(peerID.bytes) }
        if let address = hello.listeningAddress { data.writeString(address.description) }
        return Envelope(name: hello.name, operation: helloOperation, data: data)
    }

    /// Reads a hello's fields; `carriesPeerID` for a hello sent inside Noise.
    ///
    /// - Throws: ``P2PError/unknownProtocol(_:)`` when the payload is not a hello's.
    package static func parseHello(_ envelope: Envelope, carriesPeerID: Bool = false) throws(P2PError) -> Hello {
        guard var data = envelope.data, let generation = data.readInteger(as: UInt64.self) else {
            throw .unknownProtocol("the hello carries no dial generation")
        }
        var peerID: PeerID?
        if carriesPeerID {
            guard let bytes = data.readBytes(length: PeerID.byteCount) else {
                throw .unknownProtocol("the hello carries no peer id")
            }
            peerID = PeerID(digest: bytes)  // exactly `byteCount` bytes were read: never nil
        }
        guard data.readableBytes > 0 else {
            return Hello(name: envelope.name, generation: generation, listeningAddress: nil, peerID: peerID)
        }
        guard let text = data.readString(length: data.readableBytes), let address = try? SocketAddress(parsing: text) else {
            throw .unknownProtocol("the hello's listening address is not a numeric ip:port")
        }
        return Hello(name: envelope.name, generation: generation, listeningAddress: address, peerID: peerID)
    }

    static func goAway(from name: String) -> Envelope {
        Envelope(name: name, operation: goAwayOperation)
    }

    static func ping(from name: String) -> Envelope {
        Envelope(name: name, operation: pingOperation)
    }

    static func pong(from name: String) -> Envelope {
        Envelope(name: name, operation: pongOperation)
    }
}

extension Envelope {
    /// Whether the router handles this envelope itself (a ``ControlMessage``), on the native wire.
    var isControl: Bool { operation.first == ControlMessage.prefix }

    /// Whether this is the "no reply follows" answer to the message `correlationID` names (on the
    /// native wire; on the JSON wire it is an ordinary operation).
    var isNoReplyMarker: Bool { operation == ControlMessage.noReplyOperation }

    /// The answer that says "the protocol answered message `correlationID` with nothing".
    static func noReplyMarker(from name: String, answering correlationID: UInt64) -> Envelope {
        Envelope(name: name, operation: ControlMessage.noReplyOperation, correlationID: correlationID)
    }
}
