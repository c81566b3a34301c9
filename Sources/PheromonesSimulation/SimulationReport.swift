import Pheromones

/// What a ``BroadcastSimulation`` measured, per broadcast mode: the figures `pheromones simulate`
/// prints, and its one JSON line.
public struct SimulationReport: Sendable, Codable, Hashable {
    /// `flood` or `gossip`.
    public var mode: String
    /// How many nodes ran.
    public var nodes: Int
    /// The nodes' average number of connections when the broadcasts began.
    public var averageDegree: Double
    /// The connections between nodes when the broadcasts began.
    public var links: Int
    /// The fewest connections any node had when the broadcasts began.
    public var fewestConnections: Int
    /// Links failed in the middle of the broadcasts.
    public var droppedLinks: Int
    /// How many broadcasts.
    public var messages: Int
    /// The seed the run was drawn from.
    public var seed: UInt64
    /// The smallest share of the other nodes that delivered a broadcast (1: every broadcast
    /// reached every node).
    public var coverage: Double
    /// Whether every node other than the origin delivered every broadcast exactly once.
    public var exactlyOnce: Bool
    /// Deliveries of a broadcast a node had delivered before (0 when ``exactlyOnce``).
    public var repeatedDeliveries: Int
    /// Everything each node sent on its connections (broadcast copies, their "no reply"
    /// answers, gossip control, keepalives), per broadcast.
    public var wireMessagesPerNode: Double
    /// Full broadcast copies each node received, per broadcast (the first one and the duplicates).
    public var copiesReceivedPerNode: Double
    /// Duplicate copies each node received, per broadcast.
    public var duplicatesPerNode: Double
    /// Duplicates as a share of the copies received.
    public var duplicateShare: Double
    /// The most duplicates one node received per broadcast, over the nodes.
    public var maximumDuplicatesPerNode: Double
    /// Whether every node received at most its degree − 1 duplicates per broadcast (flooding's bound).
    public var duplicatesWithinDegreeBound: Bool
    /// Virtual time from a broadcast's start to its delivery at a node, over all nodes and
    /// broadcasts, in milliseconds: the median.
    public var deliveryP50Milliseconds: Double
    /// The same, the 99th percentile.
    public var deliveryP99Milliseconds: Double
    /// The same, the longest.
    public var deliveryMaximumMilliseconds: Double
    /// Gossip's IHAVE bytes per node per broadcast.
    public var iHaveBytesPerNode: Double
    /// Gossip's IWANT bytes per node per broadcast.
    public var iWantBytesPerNode: Double
    /// Gossip's IDONTWANT bytes per node per broadcast.
    public var iDontWantBytesPerNode: Double
    /// Gossip's mesh upkeep (GRAFT, PRUNE, CHOKE, UNCHOKE) bytes per node per broadcast.
    public var meshControlBytesPerNode: Double
    /// Virtual time the whole run covered, in seconds.
    public var virtualSeconds: Double
    /// Wall time the run took, in seconds (measured by the caller).
    public var wallSeconds: Double

    /// Whether the run met the goals every mode must meet: full coverage and exactly-once delivery.
    public var isComplete: Bool { coverage >= 1 && exactlyOnce }
}
