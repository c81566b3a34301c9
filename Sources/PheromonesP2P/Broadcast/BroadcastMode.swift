import Pheromones

/// How a node passes a broadcast on to its peers: one option next to the others in
/// ``Node/Configuration``, and one type per mode inside the node.
///
/// - ``flood``: every node forwards a broadcast it has not seen to all its other peers. Simple,
///   fastest to full coverage, and each node receives one copy per link: up to degree − 1
///   duplicates per node per message. The default, and the right choice for small networks.
/// - ``gossip(_:)``: gossipsub's design. Each node pushes full messages to an eager mesh of about
///   ``GossipParameters/meshDegree`` peers, tells the others only the ids of what it has (IHAVE) on
///   a heartbeat, and sends a missing message when asked (IWANT). Duplicates are cut further by
///   IDONTWANT and by choking mesh peers whose copies keep arriving second. See `Docs/Broadcast.md`.
public enum BroadcastMode: Sendable, Hashable {
    /// Forward every new broadcast to every other peer.
    case flood
    /// An eager mesh with lazy gossip, tuned by `parameters`.
    case gossip(GossipParameters)

    /// Gossip with gossipsub's defaults.
    public static var gossip: BroadcastMode { .gossip(GossipParameters()) }
}

/// The knobs of ``BroadcastMode/gossip(_:)``. The defaults are gossipsub's (v1.1/v1.2, as
/// go-libp2p-pubsub ships them) where gossipsub has the knob.
public struct GossipParameters: Sendable, Hashable {
    /// D: the mesh size each node aims for on every heartbeat.
    public var meshDegree: Int = 6
    /// D_lo: below this many mesh peers, the heartbeat grafts up to ``meshDegree``.
    public var meshDegreeLow: Int = 4
    /// D_hi: above this many mesh peers, the heartbeat prunes down to ``meshDegree``.
    public var meshDegreeHigh: Int = 12
    /// D_lazy: how many peers outside the mesh receive IHAVE on each heartbeat.
    public var gossipDegree: Int = 6
    /// How often the mesh is repaired and IHAVE gossip is sent.
    public var heartbeatInterval: TimeAmount = .seconds(1)
    /// How many heartbeats a message stays in the message cache, from which IWANT is served.
    public var historyLength: Int = 5
    /// How many of the latest heartbeats' message ids an IHAVE announces.
    public var historyGossip: Int = 3
    /// How long a pruned peer may not be grafted again (either way).
    public var pruneBackoff: TimeAmount = .seconds(60)
    /// Messages with at least this many bytes of data are announced with IDONTWANT to the other
    /// mesh peers before they are forwarded (gossipsub v1.2; go-libp2p's threshold).
    public var iDontWantThreshold: Int = 1024
    /// Whether mesh links can be lazy (the choke extension proposed for gossipsub, after
    /// Plumtree's eager and lazy links). A node chokes a mesh peer whose full copy arrives as a
    /// duplicate; the link is then lazy both ways: each side sends the other IHAVE at once
    /// instead of the message, and pulls it (IWANT) only if no eager copy came within
    /// ``lazyPullDelay``. Such a pull, or an IHAVE that beats the eager copy by
    /// ``swapThreshold``, makes the link eager again. Off, gossip is gossipsub v1.2's: every
    /// mesh link eager.
    public var choking: Bool = true
    /// The fewest mesh peers a node keeps unchoked (sending it full messages).
    public var minimumUnchokedPeers: Int = 2
    /// How many mesh peers a node keeps eager (unchoked) from the start: before its first
    /// message, its nearest ones by round trip (Episub's proximity awareness); afterwards, a
    /// new mesh peer starts choked when this many are eager. The rest of the mesh is lazy
    /// (IHAVE at once) until a pull shows one of them faster.
    public var initialUnchokedPeers: Int = 3
    /// How much earlier a choked mesh peer's IHAVE must arrive than the eager copy for the two
    /// to trade places (Plumtree's optimization: the faster path becomes the eager one).
    public var swapThreshold: TimeAmount = .milliseconds(10)
    /// How long a node waits after an IHAVE from a choked mesh peer before it asks for the
    /// message with IWANT (an eager copy is usually on its way).
    public var lazyPullDelay: TimeAmount = .milliseconds(100)
    /// How long a node waits for an IWANT to be answered before asking the next peer that
    /// announced the message.
    public var iWantTimeout: TimeAmount = .milliseconds(500)
    /// The most message ids one IHAVE carries, and the most a node takes from one peer per
    /// heartbeat.
    public var maximumIHaveLength: Int = 5000
    /// The most IHAVE messages a node takes from one peer per heartbeat.
    public var maximumIHaveMessages: Int = 10
    /// The most ids a node remembers per peer as "the peer has it / does not want it".
    public var maximumIDontWantIDs: Int = 1000
    /// How many times a node sends one cached message to one peer asking with IWANT.
    public var gossipRetransmission: Int = 3
    /// The most bytes of message data the message cache holds (the oldest go first).
    public var maximumCachedBytes: Int = 16 << 20

    /// gossipsub's defaults.
    public init() {}
}

extension GossipParameters {
    /// These parameters with every value brought into its range, so that no setting can stall a
    /// loop (a heartbeat of zero reschedules itself at once) or turn every control message into
    /// an error (a bound below 1): what the router and the node use.
    var clamped: GossipParameters {
        var parameters = self
        parameters.meshDegree = max(1, meshDegree)
        parameters.meshDegreeLow = min(max(0, meshDegreeLow), parameters.meshDegree)
        parameters.meshDegreeHigh = max(meshDegreeHigh, parameters.meshDegree)
        parameters.gossipDegree = max(0, gossipDegree)
        parameters.heartbeatInterval = max(.milliseconds(1), heartbeatInterval)
        parameters.historyLength = max(1, historyLength)
        parameters.historyGossip = min(max(0, historyGossip), parameters.historyLength)
        parameters.pruneBackoff = max(.zero, pruneBackoff)
        parameters.iDontWantThreshold = max(0, iDontWantThreshold)
        parameters.minimumUnchokedPeers = max(0, minimumUnchokedPeers)
        parameters.initialUnchokedPeers = max(parameters.minimumUnchokedPeers, initialUnchokedPeers)
        parameters.swapThreshold = max(.zero, swapThreshold)
        parameters.lazyPullDelay = max(.zero, lazyPullDelay)
        parameters.iWantTimeout = max(.milliseconds(1), iWantTimeout)
        parameters.maximumIHaveLength = max(1, maximumIHaveLength)
        parameters.maximumIHaveMessages = max(1, maximumIHaveMessages)
        parameters.maximumIDontWantIDs = max(0, maximumIDontWantIDs)
        parameters.gossipRetransmission = max(0, gossipRetransmission)
        parameters.maximumCachedBytes = max(0, maximumCachedBytes)
        return parameters
    }
}
