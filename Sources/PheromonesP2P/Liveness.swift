import Pheromones

/// Why a node closed a connection on a liveness timeout (``NodeEvent/connectionTimedOut(_:_:)``).
///
/// The stages that watch a connection's liveness (``PartialMessageTimer``, ``KeepaliveStage``)
/// also fire the reason through the pipeline as a user inbound event before they close the
/// connection, so that the router can fail what waits on it with the right error and tell the
/// observer.
public enum ConnectionTimeout: Sendable, Hashable, CustomStringConvertible {
    /// The connection did not complete its handshake in time
    /// (``Node/Configuration/handshakeTimeout``): on the native wire's persistent connections the
    /// peer's hello, on a short-mode server connection the one request.
    case handshake
    /// A message started arriving and was not complete in time
    /// (``Node/Configuration/partialMessageTimeout``): a frame half-sent, an object trickling in.
    case partialMessage
    /// Nothing at all arrived from the peer for ``Node/Configuration/keepaliveTimeout``, pings
    /// included (native wire, persistent connections).
    case keepalive

    /// What timed out, in a few words.
    public var description: String {
        switch self {
        case .handshake: return "no handshake in time"
        case .partialMessage: return "a message started arriving and was not complete in time"
        case .keepalive: return "the peer was silent for the keepalive timeout"
        }
    }
}

/// The framer stage a ``PartialMessageTimer`` watches: it says whether it holds part of a message.
protocol PartialMessageProbe: AnyObject {
    /// How many bytes the framer holds that it has not made into messages yet.
    var bufferedByteCount: Int { get }
    /// Whether those bytes begin a message (rather than being nothing, or only what may come
    /// between messages).
    var holdsPartialMessage: Bool { get }
}

/// A decoder that can tell whether bytes it has been shown and left unconsumed begin a message.
protocol MessageBoundaryAware: ByteToMessageDecoder {
    /// Whether the `bufferedBytes` bytes the decoder has seen and not consumed begin a message.
    func isInsideMessage(bufferedBytes: Int) -> Bool
}

extension NativeEnvelopeFrameDecoder: MessageBoundaryAware {
    /// Any byte of a frame (its length prefix included) begins one: nothing comes between frames.
    func isInsideMessage(bufferedBytes: Int) -> Bool { bufferedBytes > 0 }
}

extension JSONObjectFramer: MessageBoundaryAware {
    /// An object has begun once its `{` has arrived; whitespace between objects (Go's
    /// `json.Encoder` ends each with a newline) begins nothing, and may stay buffered while the
    /// connection is idle.
    func isInsideMessage(bufferedBytes: Int) -> Bool { isInsideObject }
}

extension ByteToMessageHandler: PartialMessageProbe where Decoder: MessageBoundaryAware {
    var holdsPartialMessage: Bool { decoderSnapshot.isInsideMessage(bufferedBytes: bufferedByteCount) }
}
