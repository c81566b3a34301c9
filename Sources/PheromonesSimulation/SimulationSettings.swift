import Pheromones
import PheromonesP2P

/// What a ``BroadcastSimulation`` runs: the network, the broadcast mode and the broadcasts.
public struct SimulationSettings: Sendable {
    /// How many nodes.
    public var nodes: Int
    /// About how many neighbours each node has (see ``RandomGraph``).
    public var degree: Int
    /// How broadcasts travel.
    public var mode: BroadcastMode
    /// How many broadcasts, each from a random node.
    public var messages: Int
    /// Seeds the graph, the latencies, the origins and every node's own randomness.
    public var seed: UInt64
    /// The share of links (0 ..< 1) that fail in the middle of the broadcasts (while the middle
    /// broadcast is on its way); the graph stays connected.
    public var dropLinks: Double
    /// The range one-way link latencies are drawn from.
    public var latency: ClosedRange<TimeAmount>
    /// Bytes of data in each broadcast.
    public var messageSize: Int
    /// The time between two broadcasts.
    public var interval: TimeAmount
    /// The hop limit broadcasts start with (high enough for any path in the graph).
    public var hopLimit: UInt8
    /// Whether the nodes run their native wire inside Noise (slower to set up: a handshake per
    /// link) rather than in the clear.
    public var noise: Bool
    /// With a value, the network is not a drawn graph: every node is given node 0 (the seed)
    /// only, and finds the others by peer exchange, up to this many peers each (``degree`` and
    /// ``dropLinks`` do not apply).
    public var peerExchangeTarget: Int?

    /// Settings with the defaults of `pheromones simulate`.
    public init(
        nodes: Int = 1000, degree: Int = 8, mode: BroadcastMode = .flood, messages: Int = 10, seed: UInt64 = 1, dropLinks: Double = 0,
        latency: ClosedRange<TimeAmount> = .milliseconds(5) ... .milliseconds(50), messageSize: Int = 256,
        interval: TimeAmount = .seconds(1), hopLimit: UInt8 = 255, noise: Bool = false, peerExchangeTarget: Int? = nil
    ) {
        self.nodes = nodes
        self.degree = degree
        self.mode = mode
        self.messages = messages
        self.seed = seed
        self.dropLinks = dropLinks
        self.latency = latency
        self.messageSize = messageSize
        self.interval = interval
        self.hopLimit = hopLimit
        self.noise = noise
        self.peerExchangeTarget = peerExchangeTarget
    }

    /// The mode's name, as `pheromones simulate` spells it.
    public var modeName: String {
        switch mode {
        case .flood: return "flood"
        case .gossip: return "gossip"
        }
    }
}
