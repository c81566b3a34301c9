/// What a gossip router did, for the node's metrics: counters that only grow (wrapping, never
/// trapping, at `Int.max`).
struct GossipStatistics: Hashable, Sendable {
    /// A count of one kind of control message: how many, the ids they carried, and their bytes on
    /// the wire (`GossipControl.encodedSize`: without the sender's name).
    struct Tally: Hashable, Sendable {
        /// Messages.
        var messages = 0
        /// Message ids in them (IHAVE, IWANT and IDONTWANT only).
        var ids = 0
        /// Bytes on the wire.
        var bytes = 0

        /// Counts `control`.
        mutating func count(_ control: GossipControl) {
            messages &+= 1
            ids &+= control.ids.count
            bytes &+= control.encodedSize
        }
    }

    /// New messages received (each delivered to the application once).
    var messagesReceived = 0
    /// Full copies received of messages already seen.
    var duplicatesReceived = 0
    /// Messages received without a message id (id 0), dropped.
    var messagesWithoutID = 0
    /// Full copies pushed to peers: published, forwarded, and sent to fanout peers.
    var copiesPushed = 0
    /// Messages sent in answer to IWANT.
    var iWantServed = 0
    /// Ids asked with IWANT that were not answered: not cached, or already sent to that peer
    /// ``GossipParameters/gossipRetransmission`` times.
    var iWantIgnored = 0
    /// Ids announced with IHAVE past a peer's budget for the heartbeat
    /// (``GossipParameters/maximumIHaveMessages``, ``GossipParameters/maximumIHaveLength``).
    var iHaveIgnored = 0
    /// Announced ids not pulled because the router already awaited as many pulls as it holds.
    var pullsIgnored = 0
    /// Pulls dropped after every peer that announced the message failed to send it.
    var pullsFailed = 0
    /// Control messages received from peers the router does not know (not connected), ignored.
    var controlsFromUnknownPeers = 0

    /// IHAVE sent and received.
    var iHaveSent = Tally(), iHaveReceived = Tally()
    /// IWANT sent and received.
    var iWantSent = Tally(), iWantReceived = Tally()
    /// IDONTWANT sent and received.
    var iDontWantSent = Tally(), iDontWantReceived = Tally()
    /// GRAFT sent and received.
    var graftSent = Tally(), graftReceived = Tally()
    /// PRUNE sent and received.
    var pruneSent = Tally(), pruneReceived = Tally()
    /// CHOKE sent and received.
    var chokeSent = Tally(), chokeReceived = Tally()
    /// UNCHOKE sent and received.
    var unchokeSent = Tally(), unchokeReceived = Tally()

    /// Counts `control` as sent.
    mutating func countSent(_ control: GossipControl) {
        switch control {
        case .iHave: iHaveSent.count(control)
        case .iWant: iWantSent.count(control)
        case .iDontWant: iDontWantSent.count(control)
        case .graft: graftSent.count(control)
        case .prune: pruneSent.count(control)
        case .choke: chokeSent.count(control)
        case .unchoke: unchokeSent.count(control)
        }
    }

    /// Counts `control` as received.
    mutating func countReceived(_ control: GossipControl) {
        switch control {
        case .iHave: iHaveReceived.count(control)
        case .iWant: iWantReceived.count(control)
        case .iDontWant: iDontWantReceived.count(control)
        case .graft: graftReceived.count(control)
        case .prune: pruneReceived.count(control)
        case .choke: chokeReceived.count(control)
        case .unchoke: unchokeReceived.count(control)
        }
    }
}
