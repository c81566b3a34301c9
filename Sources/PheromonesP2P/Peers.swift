import Pheromones
import PheromonesNoise

/// A route's identity: the peer's name and the address its server listens on.
///
/// Names may repeat (TODO 1); the listening address does not, so it is what routes are keyed by.
public struct PeerKey: Sendable, Hashable, CustomStringConvertible {
    /// The peer's name.
    public var name: String
    /// The address the peer's server listens on.
    public var address: SocketAddress

    /// Creates a key.
    public init(name: String, address: SocketAddress) {
        self.name = name
        self.address = address
    }

    /// `name@ip:port`, the name escaped for the terminal (peers choose their names).
    public var description: String { "\(name.escapedForTerminal)@\(address)" }

    /// `name@ip:port` with the name as it is, for texts that escape what they quote themselves
    /// (a ``P2PError``'s).
    var unescapedDescription: String { "\(name)@\(address)" }
}

/// A route as ``Node/peers`` reports it.
public struct PeerInfo: Sendable, Hashable, CustomStringConvertible {
    /// The peer's name.
    public var name: String
    /// The address the peer's server listens on (the route's key).
    public var address: SocketAddress
    /// Whether a persistent connection carries the route now (always false in short mode, which
    /// dials per message).
    public var isConnected: Bool
    /// The peer id the route is bound to (native wire inside Noise): pinned by the application,
    /// or proven by the connection that carries the route. Nil on plaintext wires, and while no
    /// connection has proven one.
    public var peerID: PeerID? = nil

    /// The name and address as a ``PeerKey``.
    public var key: PeerKey { PeerKey(name: name, address: address) }

    /// `name@ip:port (connected)`, the name escaped for the terminal.
    public var description: String { "\(key)\(isConnected ? " (connected)" : "")" }
}

/// Which side opened a connection.
public enum ConnectionDirection: String, Sendable, Hashable {
    /// This node dialed it.
    case outbound
    /// The peer dialed it and this node accepted it.
    case inbound
}

/// What happened to a node's persistent connections, for an observer
/// (``Node/Configuration/observer``): a transcript of the route table's decisions, and of the
/// connections closed on a liveness timeout (short-mode ones included).
public enum NodeEvent: Sendable, CustomStringConvertible {
    /// A connection told who is at its other end and now belongs to the peer's route.
    case connectionIdentified(PeerKey, ConnectionDirection)
    /// A connection lost to another one to the same peer (or the peer asked): it sends nothing
    /// new and closes once both ends are done.
    case connectionDraining(PeerKey?, ConnectionDirection)
    /// A connection closed.
    case connectionClosed(PeerKey?, ConnectionDirection)
    /// A message the node started was not sent to a peer whose queue was full
    /// (``Node/Configuration/maximumQueuedBytesPerPeer``); with ``SlowPeerPolicy/disconnect`` the
    /// connection is closed too.
    case slowPeerDropped(PeerKey?, SlowPeerPolicy)
    /// A connection or a route was refused: the limit is reached.
    case limitReached(AdmissionLimit)
    /// The validator rejected a message from a peer; `count` is that connection's rejects so far
    /// (the connection is closed at ``Node/Configuration/maximumRejectsPerPeer``).
    case messageRejected(PeerKey?, count: Int)
    /// The node will dial a pinned peer whose connection dropped (or whose dial failed) again
    /// after the delay (``Node/Configuration/reconnectDelay``).
    case reconnectScheduled(PeerKey, after: TimeAmount)
    /// A connection was closed because the peer did not keep up with a liveness timeout (see
    /// ``ConnectionTimeout``; the peer is nil while it has not identified itself, as in a short-mode
    /// server connection or before a hello). A ``connectionClosed(_:_:)`` follows for persistent
    /// connections.
    case connectionTimedOut(PeerKey?, ConnectionTimeout)

    /// One line, for a transcript; the peer's name is escaped for the terminal (see ``PeerKey/description``).
    public var description: String {
        switch self {
        case .connectionIdentified(let peer, let direction): return "\(direction) connection to \(peer) identified"
        case .connectionDraining(let peer, let direction): return "\(direction) connection to \(peer.map { "\($0)" } ?? "?") draining"
        case .connectionClosed(let peer, let direction): return "\(direction) connection to \(peer.map { "\($0)" } ?? "?") closed"
        case .limitReached(let limit): return "refused: the limit of \(limit) is reached"
        case .reconnectScheduled(let peer, let delay): return "reconnecting to \(peer) in \(delay.nanoseconds / 1_000_000) ms"
        case .messageRejected(let peer, let count): return "a message from \(peer.map { "\($0)" } ?? "?") rejected (\(count) on its connection)"
        case .slowPeerDropped(let peer, let policy):
            return "a message to \(peer.map { "\($0)" } ?? "?") dropped: its queue is full\(policy == .disconnect ? "; disconnecting" : "")"
        case .connectionTimedOut(let peer, let reason):
            return "connection to \(peer.map { "\($0)" } ?? "?") closed: \(reason)"
        }
    }
}

/// What a node does with a peer whose queue is full (``Node/Configuration/maximumQueuedBytesPerPeer``),
/// besides refusing the message with ``P2PError/peerTooSlow(_:)``.
public enum SlowPeerPolicy: Sendable, Hashable {
    /// Keep the connection: the peer may catch up, and only what did not fit is lost.
    case dropMessage
    /// Close the connection: a peer that cannot keep up is cut off (what waits on the connection
    /// fails with ``P2PError/peerTooSlow(_:)``).
    case disconnect
}

/// What a node's validator (``Node/Configuration/validator``) says about a message from a peer.
public enum MessageVerdict: Sendable, Hashable {
    /// Deliver it to the protocol, and forward it if it is a broadcast.
    case accept
    /// Drop it: neither delivered nor forwarded (on the native wire the peer is told that no
    /// reply follows, and a reply it was is taken as none).
    case ignore
    /// Drop it as ``ignore`` does, and count it against the peer: after
    /// ``Node/Configuration/maximumRejectsPerPeer`` on one connection, the connection is closed.
    case reject
}

/// Where a message being validated came from.
public struct MessageOrigin: Sendable, Hashable {
    /// The route the connection carries, once the peer is identified.
    public let peer: PeerKey?
    /// The connection's remote address.
    public let remoteAddress: SocketAddress?
}

/// A limit a node enforces on what peers may open or plant (``Node/Configuration``).
public enum AdmissionLimit: Sendable, Hashable, CustomStringConvertible {
    /// ``Node/Configuration/maximumInboundConnections``.
    case inboundConnections
    /// ``Node/Configuration/maximumOutboundConnections``.
    case outboundConnections
    /// ``Node/Configuration/maximumRoutes``.
    case routes
    /// ``Node/Configuration/maximumPartialMessageBytes``.
    case partialMessageBytes

    /// The limit's name, for messages.
    public var description: String {
        switch self {
        case .inboundConnections: "inbound connections"
        case .outboundConnections: "outbound connections"
        case .routes: "routes"
        case .partialMessageBytes: "bytes of incomplete messages"
        }
    }
}

/// Which routes a fan-out (``Node/broadcast(_:hopLimit:to:)``, ``Node/dispatchAll(_:to:)``) reaches.
///
/// By default only the peers the node can reach without dialling on a peer's say-so: a route
/// learned from a peer (its hello, or a greeting) could have been planted, and a node that dialled
/// every route on a broadcast would dial whatever a hostile peer planted.
public enum Recipients: Sendable, Hashable {
    /// Persistent mode: the routes with a connection. Short mode (which keeps no connection): the
    /// routes the application added.
    case connected
    /// Every route in the table (in persistent mode, routes that are down are dialled).
    case allRoutes
}

/// Who a message is for: a route's name (which must be unique) or its listening address.
public enum PeerSelector: Sendable, Hashable, CustomStringConvertible {
    /// The route with this name; several routes of the name make it ambiguous.
    case name(String)
    /// The route at this listening address.
    case address(SocketAddress)
    /// The route bound to this peer id (native wire inside Noise).
    case peer(PeerID)

    /// The name (escaped for the terminal), or the address as `ip:port`.
    public var description: String { unescapedDescription.escapedForTerminal }

    /// The name as it is, or the address as `ip:port`, for texts that escape what they quote
    /// themselves (a ``P2PError``'s).
    var unescapedDescription: String {
        switch self {
        case .name(let name): return name
        case .address(let address): return "\(address)"
        case .peer(let peerID): return peerID.description
        }
    }
}

/// How a whole conversation went (``Node/converse(with:starting:)-(String,_)``).
public struct ConversationSummary: Sendable {
    /// How the conversation ended.
    public enum Ending: Sendable, Hashable {
        /// This node's protocol answered the peer's last message with nothing.
        case completedHere
        /// The peer answered this node's last message with nothing.
        case completedByPeer
    }

    /// Who the conversation was with.
    public var peer: PeerKey
    /// What this node sent, in order (the first message, then its protocol's answers).
    public var sent: [Envelope]
    /// What the peer sent, in order.
    public var received: [Envelope]
    /// How it ended.
    public var ending: Ending
    /// From the first message to the end.
    public var duration: TimeAmount
}

/// A conversation under way: the messages so far, the promise its caller awaits, and the deadline
/// of the answer it waits for. Loop-confined.
///
/// The deadline is not a timer of its own: the node's ``ConversationDeadlines`` checks the
/// deadlines of all its conversations with one timer, so a step costs no timer (a conversation's
/// steps usually take microseconds, the timeout seconds).
final class Conversation {
    let peer: PeerKey
    private let promise: Promise<ConversationSummary>
    private let started: Deadline
    private let deadlines: ConversationDeadlines
    private var sent: [Envelope] = []
    private var received: [Envelope] = []
    /// When the answer awaited is due; nil when none is awaited.
    private(set) var answerDue: Deadline?
    /// Where the conversation is in its ``ConversationDeadlines``' list; nil when not in it.
    fileprivate var watchIndex: Int?
    private(set) var isFinished = false

    /// What a conversation usually holds of each side's messages (the Go original's example: four).
    private static let expectedMessages = 4

    init(peer: PeerKey, promise: Promise<ConversationSummary>, deadlines: ConversationDeadlines) {
        self.peer = peer
        self.promise = promise
        self.deadlines = deadlines
        self.started = deadlines.loop.now
    }

    /// Records a message this node sent in the conversation and waits (at most `timeout`) for its answer.
    func sent(_ envelope: Envelope, awaitingAnswerWithin timeout: TimeAmount) {
        guard !isFinished else { return }
        if sent.isEmpty { sent.reserveCapacity(Self.expectedMessages) }
        sent.append(envelope)
        let due = deadlines.loop.now + timeout
        answerDue = due
        deadlines.watch(self, due: due)
    }

    /// Ends the conversation because the answer it waits for did not come in time.
    func timeOut() {
        fail(P2PError.readTimeout(peer: peer.unescapedDescription))
    }

    /// Records the peer's answer.
    func received(_ envelope: Envelope) {
        guard !isFinished else { return }
        if received.isEmpty { received.reserveCapacity(Self.expectedMessages) }
        received.append(envelope)
        answerDue = nil
    }

    /// Ends the conversation successfully.
    func complete(_ ending: ConversationSummary.Ending) {
        guard !isFinished else { return }
        finish()
        promise.succeed(ConversationSummary(peer: peer, sent: sent, received: received, ending: ending, duration: deadlines.loop.now - started))
    }

    /// Ends the conversation with `error` (does nothing if it already ended).
    func fail(_ error: any Error) {
        guard !isFinished else { return }
        finish()
        promise.fail(error)
    }

    private func finish() {
        isFinished = true
        answerDue = nil
        deadlines.unwatch(self)
    }
}

/// The answer deadlines of a node's conversations, checked by one timer. Loop-confined.
///
/// The timer is armed for the earliest deadline it knows of; when it fires it fails the
/// conversations whose answer is late and re-arms for the earliest deadline left. A step moves
/// its conversation's deadline later, which costs nothing: as every step of a node waits the same
/// reply timeout, the timer fires about once per timeout while conversations go on, whatever their
/// number. Only a deadline earlier than the armed one (a shorter timeout) re-arms it at once. Once
/// nothing is awaited, the timer fires once more and stays disarmed.
final class ConversationDeadlines {
    let loop: any EventLoop
    /// The conversations under way that have awaited an answer (each knows its index here).
    private var watched: [Conversation] = []
    /// The timer, and when it fires; nil when none is armed.
    private var timer: (handle: Scheduled<Void>, firesAt: Deadline)?

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// The number of conversations watched (for tests).
    var watchedCount: Int { watched.count }

    /// `conversation` awaits an answer due at `due`.
    fileprivate func watch(_ conversation: Conversation, due: Deadline) {
        if conversation.watchIndex == nil {
            conversation.watchIndex = watched.count
            watched.append(conversation)
        }
        if let timer, timer.firesAt <= due { return }
        arm(at: due)
    }

    /// `conversation` has ended.
    fileprivate func unwatch(_ conversation: Conversation) {
        guard let index = conversation.watchIndex else { return }
        conversation.watchIndex = nil
        let last = watched.removeLast()
        if index < watched.count {
            watched[index] = last
            last.watchIndex = index
        }
    }

    private func arm(at deadline: Deadline) {
        timer?.handle.cancel()
        let bound = LoopBound(self, eventLoop: loop)
        timer = (loop.scheduleTask(deadline: deadline) { bound.value.fired(armedFor: deadline) }, deadline)
    }

    /// The timer armed for `deadline` fired: fails the late conversations and re-arms for the
    /// earliest deadline left. A timer replaced by then is ignored.
    private func fired(armedFor deadline: Deadline) {
        guard timer?.firesAt == deadline else { return }
        timer = nil
        let now = loop.now
        var late: [Conversation] = []
        var earliest: Deadline?
        for conversation in watched {
            guard let due = conversation.answerDue else { continue }
            if due <= now {
                late.append(conversation)
            } else if earliest.map({ due < $0 }) ?? true {
                earliest = due
            }
        }
        // Failing a conversation unwatches it, which reorders `watched`: not while walking it.
        for conversation in late { conversation.timeOut() }
        if let earliest, timer == nil { arm(at: earliest) }
    }
}
