import Pheromones

/// A wire's half of a persistent connection: how what this side sends is matched with its answer,
/// and what the wire says besides messages. One type per wire (``NativeSession``,
/// ``JSONSession``), made by the wire's ``WireDialect``; the ``PersistentStage`` it belongs to
/// does the rest (what the protocol owes, validation, draining, flow control).
///
/// Every call names the stage, which owns the session: the session keeps no reference to it.
protocol PersistentSession: AnyObject {
    /// The connection is up: say who this side is, or take the connection as identified.
    func connectionActive(_ stage: PersistentStage, context: ChannelHandlerContext)

    /// Takes `message` if it is the router's own (a hello, "no reply follows", a goaway) and acts
    /// on it; false for a message the protocol is to see.
    func tookRouterMessage(_ message: Envelope, on stage: PersistentStage) -> Bool

    /// The conversation started here that `message` continues (the message is its answer), if any;
    /// nil `message`: one that the wire could not make into an envelope.
    func conversation(continuedBy message: Envelope?, on stage: PersistentStage) -> Conversation?

    /// `message` will not reach the protocol (the validator refused it, or it is a broadcast seen
    /// before): what to answer the peer instead, if anything. With `asAnswer` a message that
    /// answers one sent here counts as an answer of nothing.
    func refused(_ message: Envelope, asAnswer: Bool, on stage: PersistentStage) -> Envelope?

    /// Sends `message` and completes `reply` with its answer, or once it is written on a wire
    /// that cannot tell answers apart.
    func dispatch(_ message: Envelope, reply: Promise<Envelope?>, on stage: PersistentStage, context: ChannelHandlerContext)

    /// The first message of `conversation` as it is to be written.
    func opening(_ conversation: Conversation, with message: Envelope, on stage: PersistentStage) -> Envelope

    /// A broadcast as it is to be written (its id chosen by `allocator`), or nil when it must not
    /// go on this connection.
    func oneWay(_ message: Envelope, idChosenBy allocator: IDAllocator, on stage: PersistentStage) -> Envelope?

    /// The protocol's `answer` to `owed` as it is to be written.
    func answer(_ answer: Envelope, to owed: OwedAnswer, on stage: PersistentStage) -> Envelope

    /// What tells the peer that the protocol answered `owed` with nothing, if the wire says it.
    func noAnswer(to owed: OwedAnswer, localName: String) -> Envelope?

    /// What tells the peer this side starts nothing new on the connection, if the wire says it.
    func goAway(localName: String) -> Envelope?

    /// Whether the peer has said it starts nothing new (a wire that cannot say it never will).
    var peerStartsNothing: Bool { get }

    /// Whether nothing sent on the connection awaits its answer.
    var awaitsNothing: Bool { get }

    /// How many messages sent on the connection await their answer.
    var awaitedAnswerCount: Int { get }

    /// Fails what awaits an answer (nothing more can arrive).
    func failAwaiting(_ error: P2PError)

    /// Fails everything the session holds.
    func failEverything(_ error: P2PError)

    /// Why the connection failed, when `error` came before the peer said who it is.
    func failureBeforeIdentified(_ error: any Error) -> P2PError?
}

/// Who chose the id a message was sent under, which its answer names as its correlation id.
enum IDAllocator: Sendable, Hashable {
    /// This node: its dispatches, the conversations it starts, its replies, its own broadcasts.
    case thisNode
    /// The peer that started a broadcast this node forwards (a broadcast keeps its id across
    /// the mesh, so that repeats can be dropped).
    case broadcaster
}

/// A message received that the protocol has yet to answer.
struct OwedAnswer {
    var messageID: UInt64
    var conversation: Conversation?
}
