import Pheromones

/// How a node passes broadcasts on: one type per ``BroadcastMode`` (``FloodBroadcast``,
/// ``GossipBroadcast``), which ``NodeCore`` asks wherever the modes differ. Each one keeps its
/// own state (seen ids, mesh, caches) and is called on the node's loop.
protocol BroadcastStrategy: AnyObject {
    /// Starts `message` (its id, hop limit and correlation id set) from this node, towards the
    /// routes `recipients` picks where the mode lets the caller choose; returns how many peers
    /// it was sent to.
    func publish(_ message: Envelope, to recipients: Recipients, in core: NodeCore) -> Int

    /// A broadcast (with an id) arrived on `stage`: records it, passes it on as the mode does,
    /// and returns whether it is new, to be delivered to the protocol (a repeat is not).
    func received(_ message: Envelope, from stage: RouterStage, in core: NodeCore) -> Bool

    /// The persistent connection `stage` now carries its route (gossip may add it to its mesh).
    func peerUp(_ stage: PersistentStage, in core: NodeCore)

    /// The connection `connection` no longer carries its route: closed, or draining.
    func peerDown(_ connection: ConnectionID, in core: NodeCore)

    /// A router control message of the mode's own (gossip's IHAVE, IWANT and so on) arrived on
    /// `stage`; returns false when the envelope is not one (the session then handles it).
    ///
    /// - Throws: ``P2PError/unknownProtocol(_:)`` when it is one, malformed: the connection closes.
    func controlReceived(_ message: Envelope, on stage: PersistentStage, in core: NodeCore) throws(P2PError) -> Bool

    /// Brings the node's metrics up to date with what the mode counted on its own (gossip's
    /// control traffic), which it adds in batches rather than per message.
    func flushCounters(in core: NodeCore)

    /// The node is shutting down: timers stop.
    func shutdown()
}

extension BroadcastMode {
    /// The strategy that carries out this mode for a node configured with `configuration` (the
    /// one place the mode is mapped to a type). Gossip needs kept connections on the native wire;
    /// elsewhere (short mode, the JSON wire) a node floods, and so does a node that forwards
    /// nothing (it takes no part in a mesh).
    func strategy(for configuration: Node.Configuration, seed: UInt64) -> any BroadcastStrategy {
        let memory = max(1, configuration.broadcastMemory)
        switch self {
        case .gossip(let parameters)
        where configuration.connectionType == .persistent && configuration.wire == .native && configuration.forwardsBroadcasts:
            return GossipBroadcast(parameters: parameters, seed: seed, memory: memory)
        case .flood, .gossip:
            return FloodBroadcast(memory: memory)
        }
    }
}
