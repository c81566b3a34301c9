import Pheromones

/// Peer exchange: a node asks its peers for their peers and dials them, up to a target count, so
/// that a network can be bootstrapped from one seed node (``Node/Configuration/peerExchange``).
///
/// A node below ``targetPeerCount`` (its connected routes plus the dials it has under way) asks up
/// to ``requestFanout`` of its connected peers every ``interval``, and at once when its first peer
/// connects. Each asked peer answers with the addresses of its own connected routes (inside Noise,
/// with their proven peer ids). The node keeps what it learns in a bounded set and dials those
/// addresses while it is below the target, at most ``maximumDialsPerSecond`` per second. A dial to
/// an address announced with a peer id must prove that id. Routes dialled this way are not pinned:
/// one that drops is not dialled again, and one whose dial fails is forgotten.
///
/// It works in persistent mode on the native wire only (its requests and answers are router
/// control messages, which the JSON wire does not have); a node in short mode or on the JSON wire
/// ignores the setting. See `Docs/P2P.md`, "Peer exchange".
public struct PeerExchange: Sendable, Hashable {
    /// How many connected peers (connected routes plus dials under way) the node aims for: below
    /// it the node asks for peers and dials what it learns; at or above it, it does neither.
    public var targetPeerCount: Int = 8
    /// How often a node below the target asks its peers for theirs. A node answers each
    /// connection's request at most once per half of its own interval.
    public var interval: TimeAmount = .seconds(5)
    /// How many connected peers a node asks in each round.
    public var requestFanout: Int = 3
    /// How many learned addresses a node dials per second at most: a token bucket that holds
    /// this many tokens (the burst) and refills at this rate.
    public var maximumDialsPerSecond: Int = 2
    /// The most entries one answer carries. An answer with more is a protocol violation and
    /// closes its connection, so every node of a network should use the same value (the default).
    public var maximumAddressesPerAnswer: Int = 32
    /// The most learned addresses a node keeps waiting to be dialled; past it the oldest is
    /// forgotten.
    public var maximumLearnedAddresses: Int = 256

    /// The defaults: aim for 8 peers, ask 3 of them every 5 s, dial at most 2 per second, at most
    /// 32 addresses per answer and 256 kept.
    public init() {}

    /// Sets the most common knobs, keeping the defaults of the others.
    public init(targetPeerCount: Int, interval: TimeAmount = .seconds(5)) {
        self.targetPeerCount = targetPeerCount
        self.interval = interval
    }
}
