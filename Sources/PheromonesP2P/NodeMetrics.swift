import CoreMetrics
import Pheromones

/// What a node has counted since it started: a snapshot (``Node/statistics``).
///
/// The same figures go to swift-metrics, labelled `pheromones_p2p_*` with the dimension
/// `node=<name>`, so that a Prometheus or OpenTelemetry backend bootstrapped by the application
/// sees them (see ``Node/Configuration/metricsFactory``).
public struct NodeStatistics: Sendable, Hashable, CustomStringConvertible {
    /// Messages that arrived from peers (router control messages included).
    public var messagesIn = 0
    /// Their payload bytes (`data`; names and operations are not counted).
    public var bytesIn = 0
    /// Messages sent to peers (router control messages included).
    public var messagesOut = 0
    /// Their payload bytes.
    public var bytesOut = 0
    /// Messages handed to the protocol.
    public var delivered = 0
    /// Broadcasts dropped because the node had seen them already.
    public var duplicatesDropped = 0
    /// Copies of peers' broadcasts passed on to other peers.
    public var forwarded = 0
    /// Messages the validator rejected.
    public var rejected = 0
    /// Messages the node started that a peer's full queue refused (``P2PError/peerTooSlow(_:)``).
    public var slowPeerDrops = 0
    /// Connections and routes refused by a limit (``AdmissionLimit``).
    public var refused = 0
    /// Connections closed because the peer's proven identity was refused: by the
    /// ``PeerPolicy``, a pinned or bound peer id it did not match, or a forged hello.
    public var peersRefused = 0
    /// Connections identified (a peer came up).
    public var peersUp = 0
    /// Identified connections that closed (a peer went down).
    public var peersDown = 0
    /// Redials of pinned peers scheduled (``NodeEvent/reconnectScheduled(_:after:)``).
    public var reconnects = 0
    /// Connections closed because the peer did not complete its handshake in time
    /// (``ConnectionTimeout/handshake``).
    public var handshakeTimeouts = 0
    /// Connections closed because a message did not finish arriving in time
    /// (``ConnectionTimeout/partialMessage``).
    public var partialMessageTimeouts = 0
    /// Connections closed because the peer was silent past the keepalive timeout
    /// (``ConnectionTimeout/keepalive``).
    public var keepaliveTimeouts = 0
    /// Bytes queued for peers right now, over every connection.
    public var queuedBytes = 0
    /// Peer-exchange requests this node sent (``Node/Configuration/peerExchange``).
    public var peerExchangeRequestsSent = 0
    /// Peer-exchange answers this node sent.
    public var peerExchangeAnswersSent = 0
    /// New addresses this node learned from peer-exchange answers.
    public var peerExchangeAddressesLearned = 0
    /// Dials of learned addresses this node started.
    public var peerExchangeDialsStarted = 0
    /// Peer-exchange messages this node ignored: requests within half an interval of the last one
    /// answered, answers it did not ask for, messages on connections that carry no route.
    public var peerExchangeIgnored = 0

    /// Copies of broadcasts that arrived from peers: the first of each and its duplicates.
    public var broadcastCopiesReceived = 0
    /// Copies of broadcasts this node wrote to peers on persistent connections: its own, those
    /// it passed on, and (gossip) those it sent when asked.
    public var broadcastCopiesSent = 0
    /// What gossip exchanged (all zero under flooding).
    public var gossip = GossipCounters()

    /// Zero everywhere.
    public init() {}

    private static var fields: [WritableKeyPath<NodeStatistics, Int>] {
        [
            \.messagesIn, \.bytesIn, \.messagesOut, \.bytesOut, \.delivered, \.duplicatesDropped, \.forwarded, \.rejected,
            \.slowPeerDrops, \.refused, \.peersRefused, \.peersUp, \.peersDown, \.reconnects, \.handshakeTimeouts,
            \.partialMessageTimeouts, \.keepaliveTimeouts, \.broadcastCopiesReceived, \.broadcastCopiesSent,
            \.peerExchangeRequestsSent, \.peerExchangeAnswersSent, \.peerExchangeAddressesLearned, \.peerExchangeDialsStarted,
            \.peerExchangeIgnored,
        ]
    }

    /// What was counted since `earlier` (a snapshot of the same node); ``queuedBytes`` is this
    /// snapshot's, a level rather than a count.
    public func subtracting(_ earlier: NodeStatistics) -> NodeStatistics {
        var difference = self
        for field in Self.fields { difference[keyPath: field] -= earlier[keyPath: field] }
        difference.gossip = gossip.subtracting(earlier.gossip)
        return difference
    }

    /// One line per figure, for `pheromones node`'s `stats` command.
    public var description: String {
        """
        messages in \(messagesIn) (\(bytesIn) payload bytes), out \(messagesOut) (\(bytesOut) payload bytes)
        delivered \(delivered), duplicates dropped \(duplicatesDropped), forwarded \(forwarded), rejected \(rejected)
        slow-peer drops \(slowPeerDrops), refused by limits \(refused), peers refused \(peersRefused)
        peers up \(peersUp), down \(peersDown), reconnects scheduled \(reconnects)
        timed out: handshake \(handshakeTimeouts), partial message \(partialMessageTimeouts), keepalive \(keepaliveTimeouts)
        queued for peers \(queuedBytes) bytes
        broadcast copies received \(broadcastCopiesReceived), sent \(broadcastCopiesSent)
        peer exchange: requests sent \(peerExchangeRequestsSent), answers sent \(peerExchangeAnswersSent), \
        addresses learned \(peerExchangeAddressesLearned), dials started \(peerExchangeDialsStarted), ignored \(peerExchangeIgnored)
        """ + (gossip == GossipCounters() ? "" : "\ngossip: \(gossip)")
    }
}

/// A node's counters: a loop-confined ``NodeStatistics`` and the swift-metrics instruments fed
/// alongside it. Counting costs an increment and a call to the metrics handler; nothing allocates.
final class NodeMetrics {
    private(set) var totals = NodeStatistics()
    private let messagesIn: Counter
    private let bytesIn: Counter
    private let messagesOut: Counter
    private let bytesOut: Counter
    private let delivered: Counter
    private let duplicatesDropped: Counter
    private let broadcastCopies: Counter
    private let broadcastCopiesOut: Counter
    /// One per ``GossipCounters`` field, in ``GossipCounters/fields`` order.
    private let gossipCounters: [Counter]
    private let forwarded: Counter
    private let slowPeerDrops: Counter
    private let rejected: Counter
    private let refused: Counter
    private let peersRefused: Counter
    private let peersUp: Counter
    private let peersDown: Counter
    private let reconnects: Counter
    private let handshakeTimeouts: Counter
    private let partialMessageTimeouts: Counter
    private let keepaliveTimeouts: Counter
    private let queuedBytes: Gauge
    private let peerExchangeRequestsSent: Counter
    private let peerExchangeAnswersSent: Counter
    private let peerExchangeAddressesLearned: Counter
    private let peerExchangeDialsStarted: Counter
    private let peerExchangeIgnored: Counter

    init(nodeName: String, factory: any MetricsFactory) {
        let dimensions = [("node", nodeName)]
        func counter(_ name: String) -> Counter {
            Counter(label: "pheromones_p2p_\(name)", dimensions: dimensions, factory: factory)
        }
        messagesIn = counter("messages_in_total")
        bytesIn = counter("payload_bytes_in_total")
        messagesOut = counter("messages_out_total")
        bytesOut = counter("payload_bytes_out_total")
        delivered = counter("delivered_total")
        duplicatesDropped = counter("duplicates_dropped_total")
        broadcastCopies = counter("broadcast_copies_received_total")
        broadcastCopiesOut = counter("broadcast_copies_sent_total")
        gossipCounters = GossipCounters.fields.map { name, _ in counter("gossip_\(name)_total") }
        forwarded = counter("forwarded_total")
        slowPeerDrops = counter("slow_peer_drops_total")
        rejected = counter("rejected_total")
        refused = counter("refused_total")
        peersRefused = counter("peers_refused_total")
        peersUp = counter("peers_up_total")
        peersDown = counter("peers_down_total")
        reconnects = counter("reconnects_total")
        // One counter, its reason a dimension: a backend sums them or tells them apart.
        func timeouts(_ reason: String) -> Counter {
            Counter(label: "pheromones_p2p_timeouts_total", dimensions: dimensions + [("reason", reason)], factory: factory)
        }
        handshakeTimeouts = timeouts("handshake")
        partialMessageTimeouts = timeouts("partial_message")
        keepaliveTimeouts = timeouts("keepalive")
        queuedBytes = Gauge(label: "pheromones_p2p_queued_bytes", dimensions: dimensions, factory: factory)
        peerExchangeRequestsSent = counter("peer_exchange_requests_sent_total")
        peerExchangeAnswersSent = counter("peer_exchange_answers_sent_total")
        peerExchangeAddressesLearned = counter("peer_exchange_addresses_learned_total")
        peerExchangeDialsStarted = counter("peer_exchange_dials_started_total")
        peerExchangeIgnored = counter("peer_exchange_ignored_total")
    }

    func received(_ message: Envelope) {
        let bytes = message.data?.readableBytes ?? 0
        totals.messagesIn += 1
        totals.bytesIn += bytes
        messagesIn.increment()
        bytesIn.increment(by: Int64(bytes))
    }

    func sent(_ message: Envelope) {
        let bytes = message.data?.readableBytes ?? 0
        totals.messagesOut += 1
        totals.bytesOut += bytes
        messagesOut.increment()
        bytesOut.increment(by: Int64(bytes))
    }

    func deliveredToProtocol() { totals.delivered += 1; delivered.increment() }
    func droppedDuplicate() { totals.duplicatesDropped += 1; duplicatesDropped.increment() }
    func broadcastCopyReceived() { totals.broadcastCopiesReceived += 1; broadcastCopies.increment() }
    /// Adds what gossip counted since the last call.
    func gossip(_ delta: GossipCounters) {
        for (index, (_, field)) in GossipCounters.fields.enumerated() where delta[keyPath: field] != 0 {
            totals.gossip[keyPath: field] &+= delta[keyPath: field]
            gossipCounters[index].increment(by: Int64(delta[keyPath: field]))
        }
    }

    func broadcastCopySent() { totals.broadcastCopiesSent += 1; broadcastCopiesOut.increment() }
    func forwardedCopies(_ count: Int) { totals.forwarded += count; forwarded.increment(by: Int64(count)) }
    func rejectedMessage() { totals.rejected += 1; rejected.increment() }
    func droppedForSlowPeer() { totals.slowPeerDrops += 1; slowPeerDrops.increment() }
    func refusedByLimit() { totals.refused += 1; refused.increment() }
    func refusedPeer() { totals.peersRefused += 1; peersRefused.increment() }
    func peerUp() { totals.peersUp += 1; peersUp.increment() }
    func peerDown() { totals.peersDown += 1; peersDown.increment() }
    func reconnectScheduled() { totals.reconnects += 1; reconnects.increment() }

    func peerExchangeRequestSent() { totals.peerExchangeRequestsSent += 1; peerExchangeRequestsSent.increment() }
    func peerExchangeAnswerSent() { totals.peerExchangeAnswersSent += 1; peerExchangeAnswersSent.increment() }
    func peerExchangeLearned(_ count: Int) { totals.peerExchangeAddressesLearned += count; peerExchangeAddressesLearned.increment(by: Int64(count)) }
    func peerExchangeDialStarted() { totals.peerExchangeDialsStarted += 1; peerExchangeDialsStarted.increment() }
    func peerExchangeIgnoredMessage() { totals.peerExchangeIgnored += 1; peerExchangeIgnored.increment() }

    func timedOut(_ reason: ConnectionTimeout) {
        switch reason {
        case .handshake: totals.handshakeTimeouts += 1; handshakeTimeouts.increment()
        case .partialMessage: totals.partialMessageTimeouts += 1; partialMessageTimeouts.increment()
        case .keepalive: totals.keepaliveTimeouts += 1; keepaliveTimeouts.increment()
        }
    }

    /// The totals, with the bytes queued for peers now (also recorded in the gauge).
    func snapshot(queuedBytes bytes: Int) -> NodeStatistics {
        queuedBytes.record(bytes)
        var snapshot = totals
        snapshot.queuedBytes = bytes
        return snapshot
    }
}
