import Pheromones

/// gossipsub's router as a pure state machine, with IDONTWANT (gossipsub v1.2) and choking (the
/// choke extension proposed for gossipsub): the broadcast logic of `BroadcastMode.gossip`.
///
/// Each node keeps an eager *mesh* of about ``GossipParameters/meshDegree`` of its connected
/// peers and pushes every new message to it; on each heartbeat it repairs the mesh (GRAFT,
/// PRUNE) and announces the ids of its recent messages (IHAVE) to a few peers outside the mesh,
/// which ask for what they miss (IWANT). A mesh peer whose copy of a message arrives as a
/// duplicate is *choked* (while enough mesh peers stay unchoked): it then sends IHAVE at once instead of the message (lazy push), and the node pulls
/// from it after ``GossipParameters/lazyPullDelay`` only if no eager copy came first, unchoking
/// it (its path was the faster one).
///
/// The router does no I/O and reads no clock: its caller passes the time (`now`) and peer events
/// in, and gets actions back, appended to a buffer it owns (`actions`), which it performs in
/// order and empties. Its random choices come from a generator seeded at `init`, and every choice
/// lists the candidates in `Peer`'s order before drawing, so that one seed and one sequence of
/// calls give one sequence of actions. The caller calls ``heartbeat(now:actions:)`` every
/// ``GossipParameters/heartbeatInterval`` and ``expireTimers(now:actions:)`` at
/// ``nextDeadline`` (when it is not nil) or later.
///
/// Everything the router holds is bounded: the ids seen (`seenCapacity`), the message cache
/// (``GossipParameters/maximumCachedBytes`` and ``GossipParameters/historyLength`` heartbeats),
/// the pending pulls (``GossipParameters/maximumIHaveLength``), and per connected peer the ids
/// remembered (``GossipParameters/maximumIDontWantIDs``) and the IWANT answers counted (the cached
/// ids). A peer that disconnects leaves nothing behind, its backoff included.
///
/// A value its node owns and touches on the node's loop only.
struct GossipRouter<Peer: Hashable & Comparable> {
    /// What the router knows about one connected peer.
    private struct PeerState {
        /// Whether the peer is in this node's mesh.
        var inMesh = false
        /// Whether this node choked the peer (told it to send IHAVE instead of messages).
        var chokedByUs = false
        /// Whether the peer choked this node (this node sends it IHAVE instead of messages).
        /// Choking is symmetric (Plumtree's lazy links): a choke either way makes the link lazy
        /// both ways, so both flags are set and cleared together, apart from a moment when a
        /// CHOKE and an UNCHOKE cross.
        var chokedUs = false
        /// About one round trip to the peer, when the node measured it (its eager links go to
        /// the nearest mesh peers first).
        var roundTrip: TimeAmount?
        /// Until when the peer may not be grafted (after a PRUNE either way).
        var backoffUntil: Deadline?
        /// The ids the peer has or does not want.
        var known: RememberedIDs
        /// IHAVE messages and ids taken from the peer in this heartbeat.
        var iHaveMessages = 0
        var iHaveIDs = 0
        /// How many times each cached message was sent to the peer in answer to IWANT.
        var served: [UInt64: Int] = [:]

        init(rememberedIDs: Int) {
            known = RememberedIDs(capacity: rememberedIDs)
        }

        /// Starts a heartbeat: renews the IHAVE budget, forgets the ids remembered before
        /// `oldestRemembered` and the IWANT counts of messages no longer in `cache`.
        mutating func startHeartbeat(oldestRemembered: UInt64, cache: MessageCache) {
            iHaveMessages = 0
            iHaveIDs = 0
            known.expire(before: oldestRemembered)
            if !served.isEmpty { served = served.filter { cache.contains($0.key) } }
        }

        /// Leaves the mesh: choking is a mesh relation, so it ends too.
        mutating func leaveMesh() {
            inMesh = false
            chokedByUs = false
            chokedUs = false
        }
    }

    /// A message announced with IHAVE that this node has not seen yet, and the peers to ask for it.
    private struct Pull {
        /// The peers that announced it, in order; the first is asked (or will be) next.
        var announcers: [Peer]
        /// When to ask the first announcer (not yet asked) or give up on it (asked).
        var deadline: Deadline
        /// Whether the first announcer was sent IWANT.
        var asked: Bool
        /// When the first announcement arrived.
        var announcedAt: Deadline
        /// The token of the pull's current entry in `timers` (its older entries are stale).
        var token: UInt64 = 0
    }

    /// The most peers a pull remembers to ask.
    static var maximumAnnouncers: Int { 3 }
    /// The longest backoff a peer's PRUNE can impose (when this node's own is shorter): a peer
    /// cannot keep itself out of the mesh for days.
    static var maximumPeerBackoff: TimeAmount { .seconds(3600) }

    /// The parameters the router was made with.
    let parameters: GossipParameters
    /// What the router did so far.
    private(set) var statistics = GossipStatistics()
    /// Whether a message went through this router yet (published or received): until then its
    /// eager links are chosen by nearness alone.
    private var hasCarriedMessages = false

    private var random: MessageIDGenerator
    private var seen: RecentIDs
    private var cache: MessageCache
    private var peers: [Peer: PeerState] = [:]
    /// The connected peers in order: every iteration that emits actions goes through it.
    private var orderedPeers: [Peer] = []
    /// The mesh's peers in order (each also marked `inMesh` in its state): what every push
    /// iterates, a handful of peers however many are connected.
    private var meshPeers: [Peer] = []
    private var pulls: [UInt64: Pull] = [:]
    /// The pulls' deadlines, earliest first.
    private var timers = PullTimers()
    /// The next timer token: unique per scheduling, and the order of pulls due together.
    private var nextToken: UInt64 = 0
    /// The heartbeats so far, the clock of the remembered ids.
    private var heartbeats: UInt64 = 0
    /// Scratch storage for random choices and id lists, reused call after call.
    private var candidates: [Peer] = []
    private var idScratch: [UInt64] = []

    /// A router with `parameters`, drawing its random choices from `seed`, that remembers the
    /// last `seenCapacity` message ids (at least 1) to recognise duplicates.
    init(parameters: GossipParameters, seed: UInt64, seenCapacity: Int) {
        let parameters = parameters.clamped
        self.parameters = parameters
        random = MessageIDGenerator(seed: seed)
        seen = RecentIDs(capacity: max(1, seenCapacity))
        cache = MessageCache(
            historyLength: parameters.historyLength, historyGossip: parameters.historyGossip,
            maximumBytes: parameters.maximumCachedBytes)
    }

    // MARK: Queries

    /// The mesh's peers, in order.
    var mesh: [Peer] { meshPeers }

    private var meshCount: Int { meshPeers.count }

    /// The connected peers, in order.
    var connectedPeers: [Peer] { orderedPeers }

    /// Whether `peer` is in the mesh.
    func isInMesh(_ peer: Peer) -> Bool { peers[peer]?.inMesh == true }

    /// Whether this node choked `peer` (asked it for IHAVE instead of full messages).
    func isChokedByUs(_ peer: Peer) -> Bool { peers[peer]?.chokedByUs == true }

    /// Whether `peer` choked this node (gets IHAVE instead of full messages from it).
    func hasChokedUs(_ peer: Peer) -> Bool { peers[peer]?.chokedUs == true }

    /// Whether `peer` may not be grafted at `now` (a PRUNE's backoff runs).
    func isBackingOff(_ peer: Peer, now: Deadline) -> Bool {
        guard let until = peers[peer]?.backoffUntil else { return false }
        return until > now
    }

    /// Whether the message `id` is pending: announced, not received yet.
    func isPulling(_ id: UInt64) -> Bool { pulls[id] != nil }

    /// How many pulls are pending.
    var pendingPullCount: Int { pulls.count }

    /// How many pull deadlines are scheduled, stale ones included (bounded by a constant factor
    /// of ``pendingPullCount``).
    var scheduledTimerCount: Int { timers.count }

    /// Whether the message `id` is in the message cache (IWANT is answered).
    func isCached(_ id: UInt64) -> Bool { cache.contains(id) }

    /// The bytes the message cache holds (see `MessageCache.cost(of:)`).
    var cachedBytes: Int { cache.cachedBytes }

    /// How many ids are remembered as known to `peer`.
    func rememberedIDCount(for peer: Peer) -> Int { peers[peer]?.known.count ?? 0 }

    /// The earliest time ``expireTimers(now:actions:)`` has something to do, or nil when no pull
    /// is pending.
    var nextDeadline: Deadline? { timers.first?.deadline }

    // MARK: Peers

    /// `peer` connected, about `roundTrip` away if the caller measured it: it joins the mesh at
    /// once (with GRAFT) when the mesh has fewer than ``GossipParameters/meshDegree`` peers. A
    /// peer already connected is left as it is.
    mutating func peerConnected(
        _ peer: Peer, roundTrip: TimeAmount? = nil, now: Deadline, actions: inout [GossipAction<Peer>]
    ) {
        guard peers[peer] == nil else { return }
        peers[peer] = PeerState(rememberedIDs: parameters.maximumIDontWantIDs)
        peers[peer]?.roundTrip = roundTrip
        orderedPeers.insert(peer, at: Self.insertionIndex(of: peer, in: orderedPeers))
        if meshCount < parameters.meshDegree {
            graft(peer, actions: &actions)
        }
    }

    /// Adds the connected `peer` to the mesh (with GRAFT) whatever the mesh's size, unless it is
    /// in the mesh already or backing off: for a peer the node wants in its mesh (gossipsub keeps
    /// its outbound peers past ``GossipParameters/meshDegreeHigh``). The next heartbeat prunes a
    /// mesh above ``GossipParameters/meshDegreeHigh`` back to ``GossipParameters/meshDegree``.
    ///
    /// - Returns: whether `peer` joined the mesh.
    @discardableResult
    mutating func graftExplicitly(_ peer: Peer, now: Deadline, actions: inout [GossipAction<Peer>]) -> Bool {
        guard let flags = flags(of: peer), !flags.inMesh, !isBackingOff(peer, now: now) else { return false }
        graft(peer, actions: &actions)
        return true
    }

    /// `peer` disconnected: the router forgets it (mesh, choking, remembered ids, budgets,
    /// backoff), and pulls stop counting on it.
    mutating func peerDisconnected(_ peer: Peer) {
        guard let state = peers.removeValue(forKey: peer) else { return }
        if state.inMesh { Self.remove(peer, from: &meshPeers) }
        Self.remove(peer, from: &orderedPeers)
        // Two passes, so that the dictionary is not copied by mutating it while iterating.
        idScratch.removeAll(keepingCapacity: true)
        for (id, pull) in pulls where pull.announcers.contains(peer) { idScratch.append(id) }
        // In a fixed order: the new timers' tokens break ties between equal deadlines.
        idScratch.sort()
        for id in idScratch {
            guard var pull = pulls.removeValue(forKey: id), let index = pull.announcers.firstIndex(of: peer) else { continue }
            pull.announcers.remove(at: index)
            if pull.announcers.isEmpty {
                statistics.pullsFailed &+= 1
                continue
            }
            // The peer asked is gone: ask the next one at the next expiry. (A pull still waiting
            // for an eager copy keeps waiting, for the next announcer.)
            if index == 0, pull.asked {
                pull.asked = false
                schedule(&pull, for: id, at: .distantPast)
            }
            pulls[id] = pull
        }
        dropStaleTimers()
    }

    // MARK: Messages

    /// Broadcasts `message`, which this node starts (its message id set, not 0): it is marked
    /// seen and cached, and pushed to the mesh, or to up to ``GossipParameters/meshDegree``
    /// random connected peers when the mesh is empty (gossipsub's fanout). A mesh peer that
    /// choked this node gets IHAVE instead. A message without an id, or one already seen, is
    /// not sent.
    mutating func publish(_ message: Envelope, now: Deadline, actions: inout [GossipAction<Peer>]) {
        let id = message.messageID
        guard id != 0, seen.insert(id) else { return }
        hasCarriedMessages = true
        cache.put(message)
        if meshCount > 0 {
            push(message, except: nil, actions: &actions)
            return
        }
        chooseRandomly(parameters.meshDegree) { _, _ in true }
        for index in candidates.indices {
            let peer = candidates[index]
            peers[peer]?.known.insert(id, heartbeat: heartbeats)
            actions.append(.send(message, to: peer))
            statistics.copiesPushed &+= 1
        }
    }

    /// A full message from `peer`.
    ///
    /// - Returns: true when the message is new: the caller delivers it to the application (once:
    ///   any later copy returns false).
    ///
    /// A new message is marked seen and its pull, if any, cancelled; if its data has at least
    /// ``GossipParameters/iDontWantThreshold`` bytes, it is announced with IDONTWANT to the mesh's
    /// other peers not known to have it, before anything else. When its hop limit lets it travel
    /// on (more than 1), it is cached (as forwarded) and forwarded (hop limit − 1, correlation id
    /// 0) to the mesh peers other than `peer` that are not known to have it; those that choked
    /// this node get IHAVE instead.
    ///
    /// A duplicate is counted and, with ``GossipParameters/choking``, chokes `peer` when it is a
    /// mesh peer and this node keeps ``GossipParameters/minimumUnchokedPeers`` other mesh peers
    /// unchoked. A message with id 0 is dropped (counted).
    mutating func received(
        _ message: Envelope, from peer: Peer, now: Deadline, actions: inout [GossipAction<Peer>]
    ) -> Bool {
        let id = message.messageID
        guard id != 0 else {
            statistics.messagesWithoutID &+= 1
            return false
        }
        peers[peer]?.known.insert(id, heartbeat: heartbeats)
        guard seen.insert(id) else {
            statistics.duplicatesReceived &+= 1
            chokeIfRedundant(peer, actions: &actions)
            return false
        }
        statistics.messagesReceived &+= 1
        hasCarriedMessages = true
        if let pull = pulls.removeValue(forKey: id) {
            dropStaleTimers()
            swapIfAnnouncedEarlier(pull, eager: peer, now: now, actions: &actions)
        }
        // Before any copy goes out: the other mesh peers learn first that they need not send it
        // (the lazy ones are about to get IHAVE, which says as much).
        if (message.data?.readableBytes ?? 0) >= parameters.iDontWantThreshold {
            sendToMesh(.iDontWant([id]), except: peer, skippingPeersThatHave: id, actions: &actions)
        }
        guard message.hopLimit > 1 else { return true }
        var copy = message
        copy.hopLimit = message.hopLimit - 1
        copy.correlationID = 0
        cache.put(copy)
        push(copy, except: peer, actions: &actions)
        return true
    }

    /// Pushes `message` to the mesh peers other than `excluded` not known to have it: full to
    /// those that did not choke this node, IHAVE to those that did.
    private mutating func push(_ message: Envelope, except excluded: Peer?, actions: inout [GossipAction<Peer>]) {
        let id = message.messageID
        for peer in meshPeers where peer != excluded {
            guard let state = peers[peer], !state.known.contains(id) else { continue }
            if state.chokedUs {
                emit(.iHave([id]), to: peer, actions: &actions)
            } else {
                actions.append(.send(message, to: peer))
                statistics.copiesPushed &+= 1
            }
        }
    }

    /// Sends `control` to the eager mesh peers other than `excluded` not known to have `id`.
    private mutating func sendToMesh(
        _ control: GossipControl, except excluded: Peer, skippingPeersThatHave id: UInt64,
        actions: inout [GossipAction<Peer>]
    ) {
        for peer in meshPeers where peer != excluded {
            guard let state = peers[peer], !state.chokedUs, !state.known.contains(id) else { continue }
            emit(control, to: peer, actions: &actions)
        }
    }

    /// Chokes `peer`, whose copy was a duplicate, if it is an unchoked mesh peer and enough other
    /// mesh peers stay unchoked.
    private mutating func chokeIfRedundant(_ peer: Peer, actions: inout [GossipAction<Peer>]) {
        guard parameters.choking, let flags = flags(of: peer), flags.inMesh, !flags.chokedByUs else { return }
        // `peer` is eager itself: the others are one fewer.
        guard eagerMeshCount - 1 >= parameters.minimumUnchokedPeers else { return }
        makeLazy(peer, actions: &actions)
    }

    /// Plumtree's optimization: when a lazy mesh peer announced a message (IHAVE) at least
    /// ``GossipParameters/swapThreshold`` before its eager copy arrived from `eager`, the lazy
    /// peer's path is the faster one: it becomes eager, and `eager` lazy in its place.
    private mutating func swapIfAnnouncedEarlier(_ pull: Pull, eager: Peer, now: Deadline, actions: inout [GossipAction<Peer>]) {
        guard parameters.choking, !pull.asked, let announcer = pull.announcers.first, announcer != eager,
              now - pull.announcedAt >= parameters.swapThreshold,
              let lazy = flags(of: announcer), lazy.inMesh, lazy.chokedByUs
        else { return }
        makeEager(announcer, actions: &actions)
        if let flags = flags(of: eager), flags.inMesh, !flags.chokedByUs { makeLazy(eager, actions: &actions) }
    }

    /// Makes the nearest lazy mesh peer (by round trip, then order) eager when no mesh peer is,
    /// leaving out `excluded`: after its last eager peer choked this node or left the mesh, the
    /// node would otherwise hear of every message through IHAVE alone until a lazy pull won.
    ///
    /// One, not ``GossipParameters/minimumUnchokedPeers``, which bounds only the node's own
    /// chokes: holding every node at two eager links whatever its peers choose measured 1.8x
    /// flooding's p99 at about 45 % duplicates on 1,000 nodes, against 2.2x at 16 % (Docs/Broadcast.md).
    private mutating func keepMinimumOfEagerPeers(except excluded: Peer?, actions: inout [GossipAction<Peer>]) {
        guard parameters.choking, parameters.minimumUnchokedPeers > 0, eagerMeshCount == 0 else { return }
        let nearest = meshPeersNearestFirst.first { $0 != excluded && peers[$0]?.chokedByUs == true }
        if let nearest { makeEager(nearest, actions: &actions) }
    }

    /// How many mesh peers are eager (not choked).
    private var eagerMeshCount: Int {
        meshPeers.reduce(0) { count, member in count + (peers[member]?.chokedByUs == false ? 1 : 0) }
    }

    /// The mesh peers, nearest first by round trip (unmeasured ones last), then in order.
    private var meshPeersNearestFirst: [Peer] {
        meshPeers.sorted { a, b in
            let (x, y) = (peers[a]?.roundTrip ?? .seconds(3600), peers[b]?.roundTrip ?? .seconds(3600))
            return x != y ? x < y : a < b
        }
    }

    /// Makes the link to the mesh peer `peer` lazy both ways, and tells it (CHOKE).
    private mutating func makeLazy(_ peer: Peer, actions: inout [GossipAction<Peer>]) {
        peers[peer]?.chokedByUs = true
        peers[peer]?.chokedUs = true
        emit(.choke, to: peer, actions: &actions)
    }

    /// Makes the link to the mesh peer `peer` eager both ways, and tells it (UNCHOKE).
    private mutating func makeEager(_ peer: Peer, actions: inout [GossipAction<Peer>]) {
        peers[peer]?.chokedByUs = false
        peers[peer]?.chokedUs = false
        emit(.unchoke, to: peer, actions: &actions)
    }

    /// `peer` just joined the mesh: with choking, the node's eager links are kept few from the
    /// start, rather than learned from a first broadcast that floods the whole mesh. Before any
    /// message, the ``GossipParameters/initialUnchokedPeers`` nearest mesh peers (by round trip;
    /// unmeasured ones last) are eager and the others lazy; afterwards a newcomer starts lazy
    /// when that many mesh peers are eager already.
    private mutating func settleChoking(ofNewcomer peer: Peer, actions: inout [GossipAction<Peer>]) {
        guard parameters.choking else { return }
        guard hasCarriedMessages else {
            for (rank, member) in meshPeersNearestFirst.enumerated() {
                guard let flags = flags(of: member) else { continue }
                let eager = rank < parameters.initialUnchokedPeers
                if eager, flags.chokedByUs { makeEager(member, actions: &actions) }
                if !eager, !flags.chokedByUs { makeLazy(member, actions: &actions) }
            }
            return
        }
        if eagerMeshCount > parameters.initialUnchokedPeers { makeLazy(peer, actions: &actions) }
    }

    // MARK: Control messages

    /// A control message from `peer`. One from a peer that is not connected is ignored (counted).
    ///
    /// - IHAVE: within the peer's budget for the heartbeat, the ids are remembered as the
    ///   peer's, and those not seen nor pending become pulls: asked at once with one IWANT, or
    ///   after ``GossipParameters/lazyPullDelay`` when the peer is a mesh peer this node choked
    ///   (its IHAVE is a lazy push, and an eager copy is probably on its way).
    /// - IWANT: each id still cached is sent, at most ``GossipParameters/gossipRetransmission``
    ///   times to the peer.
    /// - IDONTWANT: the ids are remembered as the peer's.
    /// - GRAFT: the peer joins the mesh, unless it is backing off or the mesh is full
    ///   (``GossipParameters/meshDegreeHigh``): then it is answered with PRUNE.
    /// - PRUNE: the peer leaves the mesh and backs off for the longer of its backoff and
    ///   ``GossipParameters/pruneBackoff`` (capped at ``maximumPeerBackoff`` unless ours is longer).
    /// - CHOKE and UNCHOKE: from a mesh peer, it gets IHAVE instead of messages, or messages again.
    mutating func receivedControl(
        _ control: GossipControl, from peer: Peer, now: Deadline, actions: inout [GossipAction<Peer>]
    ) {
        guard peers[peer] != nil else {
            statistics.controlsFromUnknownPeers &+= 1
            return
        }
        statistics.countReceived(control)
        switch control {
        case .iHave(let ids): receivedIHave(ids, from: peer, now: now, actions: &actions)
        case .iWant(let ids): receivedIWant(ids, from: peer, actions: &actions)
        case .iDontWant(let ids):
            for id in ids { peers[peer]?.known.insert(id, heartbeat: heartbeats) }
        case .graft: receivedGraft(from: peer, now: now, actions: &actions)
        case .prune(let backoff): receivedPrune(backoff: backoff, from: peer, now: now)
        case .choke:
            // Symmetric: the link is lazy both ways; another mesh peer becomes eager if this
            // one leaves the node with fewer than the minimum.
            if peers[peer]?.inMesh == true {
                peers[peer]?.chokedUs = true
                peers[peer]?.chokedByUs = true
                keepMinimumOfEagerPeers(except: peer, actions: &actions)
            }
        case .unchoke:
            peers[peer]?.chokedUs = false
            peers[peer]?.chokedByUs = false
        }
    }

    private mutating func receivedIHave(
        _ ids: [UInt64], from peer: Peer, now: Deadline, actions: inout [GossipAction<Peer>]
    ) {
        // The peer's state is mutated in place (`peers[peer]?`), never copied out and back,
        // which would copy its remembered ids on every IHAVE.
        guard let budget = peers[peer].map({ (messages: $0.iHaveMessages, ids: $0.iHaveIDs) }),
              let flags = flags(of: peer)
        else { return }
        // A mesh peer on a lazy link announces each message as it gets it (one IHAVE per
        // message), so its announcements are bounded by ids; the message count bounds heartbeat
        // gossip, which comes in a few large IHAVEs.
        guard flags.inMesh || budget.messages < parameters.maximumIHaveMessages else {
            statistics.iHaveIgnored &+= ids.count
            return
        }
        let taken = min(ids.count, max(0, parameters.maximumIHaveLength - budget.ids))
        peers[peer]?.iHaveMessages += 1
        peers[peer]?.iHaveIDs += taken
        statistics.iHaveIgnored &+= ids.count - taken
        let lazy = parameters.choking && flags.inMesh && flags.chokedByUs
        idScratch.removeAll(keepingCapacity: true)
        for id in ids.prefix(taken) where id != 0 {
            peers[peer]?.known.insert(id, heartbeat: heartbeats)
            guard !seen.contains(id) else { continue }
            if var pull = pulls[id] {
                if pull.announcers.count < Self.maximumAnnouncers, !pull.announcers.contains(peer) {
                    pull.announcers.append(peer)
                    pulls[id] = pull
                }
                continue
            }
            // Half the table is kept for mesh peers: one peer outside the mesh cannot fill it
            // with made-up ids and crowd out the mesh's announcements.
            guard pulls.count < (flags.inMesh ? parameters.maximumIHaveLength : parameters.maximumIHaveLength / 2) else {
                statistics.pullsIgnored &+= 1
                continue
            }
            var pull = Pull(announcers: [peer], deadline: now, asked: !lazy, announcedAt: now)
            schedule(&pull, for: id, at: now + (lazy ? parameters.lazyPullDelay : parameters.iWantTimeout))
            pulls[id] = pull
            if !lazy { idScratch.append(id) }
        }
        if !idScratch.isEmpty {
            emit(.iWant(idScratch), to: peer, actions: &actions)
        }
    }

    private mutating func receivedIWant(_ ids: [UInt64], from peer: Peer, actions: inout [GossipAction<Peer>]) {
        guard peers[peer] != nil else { return }
        for id in ids {
            let times = peers[peer]?.served[id] ?? 0
            guard times < parameters.gossipRetransmission, let message = cache.message(for: id) else {
                statistics.iWantIgnored &+= 1
                continue
            }
            peers[peer]?.served[id] = times + 1
            peers[peer]?.known.insert(id, heartbeat: heartbeats)
            actions.append(.send(message, to: peer))
            statistics.iWantServed &+= 1
        }
    }

    private mutating func receivedGraft(from peer: Peer, now: Deadline, actions: inout [GossipAction<Peer>]) {
        guard let flags = flags(of: peer), !flags.inMesh else { return }
        if isBackingOff(peer, now: now) || meshCount >= parameters.meshDegreeHigh {
            prune(peer, now: now, actions: &actions)
            return
        }
        joinMesh(peer)
        settleChoking(ofNewcomer: peer, actions: &actions)
    }

    private mutating func receivedPrune(backoff: TimeAmount, from peer: Peer, now: Deadline) {
        guard let flags = flags(of: peer) else { return }
        if flags.inMesh {
            leaveMesh(peer)
        }
        let ours = parameters.pruneBackoff
        let backoff = min(max(ours, backoff), max(ours, Self.maximumPeerBackoff))
        extendBackoff(of: peer, until: now + backoff)
    }

    // MARK: Heartbeat

    /// gossipsub's heartbeat, every ``GossipParameters/heartbeatInterval``: ends the backoffs
    /// that ran out; grafts random eligible peers (connected, outside the mesh, not backing off)
    /// up to ``GossipParameters/meshDegree`` when the mesh is below
    /// ``GossipParameters/meshDegreeLow``, or prunes random mesh peers down to it when the mesh is
    /// above ``GossipParameters/meshDegreeHigh``; sends IHAVE with the ids of the last
    /// ``GossipParameters/historyGossip`` heartbeats (those not known to the peer) to
    /// ``GossipParameters/gossipDegree`` random peers outside the mesh; then shifts the message
    /// cache, forgets what expired with it, and renews the peers' IHAVE budgets.
    mutating func heartbeat(now: Deadline, actions: inout [GossipAction<Peer>]) {
        endBackoffs(now: now)
        maintainMesh(now: now, actions: &actions)
        keepMinimumOfEagerPeers(except: nil, actions: &actions)
        emitGossip(actions: &actions)
        cache.shift()
        heartbeats &+= 1
        let oldestRemembered = heartbeats >= UInt64(cache.historyLength) ? heartbeats - UInt64(cache.historyLength) + 1 : 0
        let cache = self.cache
        for peer in orderedPeers {
            peers[peer]?.startHeartbeat(oldestRemembered: oldestRemembered, cache: cache)
        }
    }

    private mutating func endBackoffs(now: Deadline) {
        for peer in orderedPeers {
            if let until = peers[peer]?.backoffUntil, until <= now { peers[peer]?.backoffUntil = nil }
        }
    }

    private mutating func maintainMesh(now: Deadline, actions: inout [GossipAction<Peer>]) {
        if meshCount < parameters.meshDegreeLow {
            chooseRandomly(parameters.meshDegree - meshCount) { _, state in
                !state.inMesh && state.backoffUntil == nil
            }
            for index in candidates.indices { graft(candidates[index], actions: &actions) }
        } else if meshCount > parameters.meshDegreeHigh {
            chooseRandomly(meshCount - parameters.meshDegree) { _, state in state.inMesh }
            for index in candidates.indices { prune(candidates[index], now: now, actions: &actions) }
        }
    }

    private mutating func emitGossip(actions: inout [GossipAction<Peer>]) {
        idScratch.removeAll(keepingCapacity: true)
        cache.gossipIDs(limit: parameters.maximumIHaveLength, into: &idScratch)
        guard !idScratch.isEmpty else { return }
        chooseRandomly(parameters.gossipDegree) { _, state in !state.inMesh }
        // The lazy mesh peers too, for what they are not known to have: their link carried an
        // IHAVE that may have been lost with a connection, and with every peer in the mesh (a
        // node of degree D or less) no peer outside it would tell them.
        for peer in meshPeers where peers[peer]?.chokedUs == true { candidates.append(peer) }
        for index in candidates.indices {
            let peer = candidates[index]
            guard let known = peers[peer]?.known else { continue }
            let unknown = idScratch.filter { !known.contains($0) }
            if !unknown.isEmpty { emit(.iHave(unknown), to: peer, actions: &actions) }
        }
    }

    // MARK: Pulls

    /// Handles the pulls due at `now`, in the order they fell due: one not asked yet (its lazy
    /// delay passed) sends IWANT to its first announcer, and UNCHOKE too when that is a mesh
    /// peer this node choked (its IHAVE beat every eager copy); one asked and unanswered asks
    /// the next announcer, or is dropped (counted) when there is none. Either way an asked pull
    /// waits ``GossipParameters/iWantTimeout``.
    mutating func expireTimers(now: Deadline, actions: inout [GossipAction<Peer>]) {
        // Each turn pops an entry; a live pull's new entry loses an announcer or waits longer,
        // so the loop ends even with a timeout of zero.
        while let entry = timers.first, entry.deadline <= now {
            timers.popFirst()
            guard var pull = pulls[entry.id], pull.token == entry.token else { continue }
            if pull.asked, !pull.announcers.isEmpty { pull.announcers.removeFirst() }
            guard let announcer = pull.announcers.first else {
                pulls[entry.id] = nil
                statistics.pullsFailed &+= 1
                continue
            }
            pull.asked = true
            schedule(&pull, for: entry.id, at: now + parameters.iWantTimeout)
            pulls[entry.id] = pull
            if let flags = flags(of: announcer), flags.inMesh, flags.chokedByUs {
                makeEager(announcer, actions: &actions)
            }
            emit(.iWant([entry.id]), to: announcer, actions: &actions)
        }
        dropStaleTimers()
    }

    /// Gives `pull` (for message `id`) the deadline `deadline`, with a new timer entry.
    private mutating func schedule(_ pull: inout Pull, for id: UInt64, at deadline: Deadline) {
        pull.deadline = deadline
        pull.token = nextToken
        nextToken &+= 1
        timers.push(PullTimers.Entry(deadline: deadline, token: pull.token, id: id))
    }

    /// Drops the stale entries at the top of `timers` (so that ``nextDeadline`` is a live
    /// pull's), and rebuilds it when stale entries outnumber the live ones.
    private mutating func dropStaleTimers() {
        while let entry = timers.first, pulls[entry.id]?.token != entry.token {
            timers.popFirst()
        }
        if timers.needsCompaction(liveCount: pulls.count) {
            timers.rebuild(from: pulls.lazy.map { PullTimers.Entry(deadline: $0.value.deadline, token: $0.value.token, id: $0.key) })
        }
    }

    // MARK: Helpers

    /// `peer`'s mesh and choke flags, or nil when it is not connected: read without copying its
    /// state, so that the caller can mutate that state in place afterwards.
    private func flags(of peer: Peer) -> (inMesh: Bool, chokedByUs: Bool)? {
        peers[peer].map { ($0.inMesh, $0.chokedByUs) }
    }

    /// Appends `control` to `peer` and counts it.
    private mutating func emit(_ control: GossipControl, to peer: Peer, actions: inout [GossipAction<Peer>]) {
        statistics.countSent(control)
        actions.append(.control(control, to: peer))
    }

    /// Adds `peer` to the mesh and tells it so.
    private mutating func graft(_ peer: Peer, actions: inout [GossipAction<Peer>]) {
        guard peers[peer]?.inMesh == false else { return }
        joinMesh(peer)
        emit(.graft, to: peer, actions: &actions)
        settleChoking(ofNewcomer: peer, actions: &actions)
    }

    /// Removes `peer` from the mesh (if there), tells it with PRUNE, and backs off from it.
    private mutating func prune(_ peer: Peer, now: Deadline, actions: inout [GossipAction<Peer>]) {
        guard let flags = flags(of: peer) else { return }
        if flags.inMesh {
            leaveMesh(peer)
        }
        extendBackoff(of: peer, until: now + parameters.pruneBackoff)
        emit(.prune(backoff: parameters.pruneBackoff), to: peer, actions: &actions)
    }

    private mutating func extendBackoff(of peer: Peer, until deadline: Deadline) {
        guard let current = peers[peer]?.backoffUntil, current >= deadline else {
            peers[peer]?.backoffUntil = deadline
            return
        }
    }

    /// Fills `candidates` with up to `count` peers drawn at random among the connected peers
    /// that satisfy `isEligible`, listed in order first (so that one seed gives one choice).
    private mutating func chooseRandomly(_ count: Int, where isEligible: (Peer, PeerState) -> Bool) {
        candidates.removeAll(keepingCapacity: true)
        for peer in orderedPeers {
            if let state = peers[peer], isEligible(peer, state) { candidates.append(peer) }
        }
        let chosen = max(0, min(count, candidates.count))
        // A partial Fisher-Yates shuffle: the first `chosen` places get a uniform sample.
        for index in 0..<chosen {
            let other = Int.random(in: index..<candidates.count, using: &random)
            candidates.swapAt(index, other)
        }
        candidates.removeLast(candidates.count - chosen)
    }

    /// Marks `peer` as in the mesh.
    private mutating func joinMesh(_ peer: Peer) {
        peers[peer]?.inMesh = true
        meshPeers.insert(peer, at: Self.insertionIndex(of: peer, in: meshPeers))
    }

    /// Takes `peer` out of the mesh, which ends choking either way.
    private mutating func leaveMesh(_ peer: Peer) {
        peers[peer]?.leaveMesh()
        Self.remove(peer, from: &meshPeers)
    }

    /// Where `peer` goes in the sorted `list` (binary search).
    private static func insertionIndex(of peer: Peer, in list: [Peer]) -> Int {
        var low = 0
        var high = list.count
        while low < high {
            let middle = (low + high) / 2
            if list[middle] < peer { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Removes `peer` from the sorted `list`, if it is there.
    private static func remove(_ peer: Peer, from list: inout [Peer]) {
        let index = insertionIndex(of: peer, in: list)
        if index < list.count, list[index] == peer { list.remove(at: index) }
    }
}
