import Pheromones

/// What a node's gossip exchanged since it started (all zero under flooding): part of
/// ``NodeStatistics``, and sent to swift-metrics as `pheromones_p2p_gossip_*`.
public struct GossipCounters: Sendable, Hashable, CustomStringConvertible {
    /// IHAVE messages sent.
    public var iHaveSent = 0
    /// The message ids they carried.
    public var iHaveIDsSent = 0
    /// Their bytes on the wire (frames without the sender's name, which gossip leaves empty).
    public var iHaveBytesSent = 0
    /// IWANT messages sent.
    public var iWantSent = 0
    /// The message ids they asked for.
    public var iWantIDsSent = 0
    /// Their bytes on the wire.
    public var iWantBytesSent = 0
    /// IDONTWANT messages sent.
    public var iDontWantSent = 0
    /// The message ids they carried.
    public var iDontWantIDsSent = 0
    /// Their bytes on the wire.
    public var iDontWantBytesSent = 0
    /// Mesh upkeep sent: GRAFT, PRUNE, CHOKE and UNCHOKE messages.
    public var meshControlSent = 0
    /// Their bytes on the wire.
    public var meshControlBytesSent = 0
    /// Gossip control messages received, of any kind.
    public var controlReceived = 0
    /// Full messages sent because a peer asked with IWANT.
    public var iWantServed = 0
    /// Messages announced by IHAVE that no peer delivered when asked.
    public var pullsFailed = 0
    /// CHOKE messages sent: links made lazy (a copy arrived second, a peer was swapped out, or a
    /// new mesh peer started lazy).
    public var chokes = 0
    /// UNCHOKE messages sent: links made eager again.
    public var unchokes = 0
    /// Announced or requested ids past a per-peer budget, ignored.
    public var idsIgnoredOverBudget = 0

    /// Zero everywhere.
    public init() {}

    /// The counters, with their names (for ``subtracting(_:)`` and for metrics).
    static var fields: [(String, WritableKeyPath<GossipCounters, Int>)] {
        [
            ("ihave_sent", \.iHaveSent), ("ihave_ids_sent", \.iHaveIDsSent), ("ihave_bytes_sent", \.iHaveBytesSent),
            ("iwant_sent", \.iWantSent), ("iwant_ids_sent", \.iWantIDsSent), ("iwant_bytes_sent", \.iWantBytesSent),
            ("idontwant_sent", \.iDontWantSent), ("idontwant_ids_sent", \.iDontWantIDsSent), ("idontwant_bytes_sent", \.iDontWantBytesSent),
            ("mesh_control_sent", \.meshControlSent), ("mesh_control_bytes_sent", \.meshControlBytesSent),
            ("control_received", \.controlReceived), ("iwant_served", \.iWantServed), ("pulls_failed", \.pullsFailed),
            ("chokes", \.chokes), ("unchokes", \.unchokes), ("ids_ignored_over_budget", \.idsIgnoredOverBudget),
        ]
    }

    /// What was counted since `earlier`.
    public func subtracting(_ earlier: GossipCounters) -> GossipCounters {
        var difference = self
        // Wrapping, as the router's counters do (they never trap at `Int.max`).
        for (_, field) in Self.fields { difference[keyPath: field] &-= earlier[keyPath: field] }
        return difference
    }

    /// The counters on one line.
    public var description: String {
        """
        IHAVE \(iHaveSent) (\(iHaveIDsSent) ids, \(iHaveBytesSent) B), IWANT \(iWantSent) (\(iWantIDsSent) ids, \(iWantBytesSent) B), \
        IDONTWANT \(iDontWantSent) (\(iDontWantIDsSent) ids, \(iDontWantBytesSent) B), mesh control \(meshControlSent) (\(meshControlBytesSent) B); \
        received \(controlReceived); IWANT served \(iWantServed), pulls failed \(pullsFailed), chokes \(chokes), unchokes \(unchokes), \
        ids over budget \(idsIgnoredOverBudget)
        """
    }
}

extension GossipCounters {
    /// The public counters of what a gossip router counted.
    init(_ statistics: GossipStatistics) {
        let mesh = [statistics.graftSent, statistics.pruneSent, statistics.chokeSent, statistics.unchokeSent]
        let received = [
            statistics.iHaveReceived, statistics.iWantReceived, statistics.iDontWantReceived, statistics.graftReceived,
            statistics.pruneReceived, statistics.chokeReceived, statistics.unchokeReceived,
        ]
        self.init()
        iHaveSent = statistics.iHaveSent.messages
        iHaveIDsSent = statistics.iHaveSent.ids
        iHaveBytesSent = statistics.iHaveSent.bytes
        iWantSent = statistics.iWantSent.messages
        iWantIDsSent = statistics.iWantSent.ids
        iWantBytesSent = statistics.iWantSent.bytes
        iDontWantSent = statistics.iDontWantSent.messages
        iDontWantIDsSent = statistics.iDontWantSent.ids
        iDontWantBytesSent = statistics.iDontWantSent.bytes
        meshControlSent = mesh.reduce(0) { $0 &+ $1.messages }
        meshControlBytesSent = mesh.reduce(0) { $0 &+ $1.bytes }
        controlReceived = received.reduce(0) { $0 &+ $1.messages }
        iWantServed = statistics.iWantServed
        pullsFailed = statistics.pullsFailed
        chokes = statistics.chokeSent.messages
        unchokes = statistics.unchokeSent.messages
        idsIgnoredOverBudget = statistics.iHaveIgnored &+ statistics.iWantIgnored &+ statistics.pullsIgnored
    }
}
