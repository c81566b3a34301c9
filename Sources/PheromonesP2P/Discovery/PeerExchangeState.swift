import Pheromones
import PheromonesNoise

/// Peer exchange as a pure state machine: what the node asks, answers and dials, decided from the
/// events the driver (``PeerExchangeDriver``) feeds it. It reads no clock (every input carries the
/// loop's `now`), sends nothing and dials nothing: each input returns the ``Action``s to carry out.
///
/// It keeps its own view of the node's connected routes (the identified connections it was told
/// about), the dials it started that are under way, the addresses it learned and has not dialled
/// (``LearnedAddresses``, bounded), and the dial token bucket (``DialRateLimiter``). Everything it
/// holds is bounded: one entry per identified connection, at most ``PeerExchange/targetPeerCount``
/// dials under way, at most ``PeerExchange/maximumLearnedAddresses`` learned addresses.
///
/// Rules (see ``PeerExchange``):
/// - below the target (connected routes plus dials under way), each round (``nextDeadline(now:)``)
///   asks up to the fanout of peers with no request outstanding, those asked least recently
///   first, unless the addresses it already learned could make up the shortfall; and it asks at
///   once when the first peer connects;
/// - an answer counts only on a connection asked within the last interval, and only once;
/// - a connection's request is answered at most once per half interval;
/// - learned addresses exclude this node's own, its connected routes (by address and by peer id)
///   and its dials under way, and are dialled while below the target and within the token bucket.
struct PeerExchangeState {
    /// What the node must do, in order.
    enum Action: Sendable, Hashable {
        /// Send a request on the connection.
        case request(ConnectionID)
        /// Answer the connection's request with these entries.
        case answer(ConnectionID, [PeerExchangeEntry])
        /// Dial the entry's address, not pinned; the connection must prove the entry's peer id if
        /// it has one. The driver reports how it ends: ``PeerExchangeState/dialFailed(_:)`` or
        /// ``PeerExchangeState/connectionClosed(_:dialedAddress:now:)``, or an identification.
        case dial(PeerExchangeEntry)
        /// An answer brought this many new addresses.
        case learned(Int)
        /// A message from the connection was ignored, for this reason (counted).
        case ignored(ConnectionID, IgnoredReason)
    }

    /// Why a peer-exchange message was ignored.
    enum IgnoredReason: Sendable, Hashable {
        /// A request within half an interval of the last one answered on the connection.
        case requestTooSoon
        /// An answer on a connection this node has not asked (or whose request expired, or that
        /// answered already).
        case unsolicitedAnswer
        /// A message on a connection that carries no route (not identified yet, or anonymous).
        case unidentifiedConnection
    }

    /// What the state knows of one identified connection.
    private struct Peer {
        var address: SocketAddress
        var peerID: PeerID?
        /// The address this node advertised on the connection: one of its own.
        var localAddress: SocketAddress?
        /// When this node asked the connection for its peers, if the answer is still awaited.
        var askedAt: Deadline?
        /// When this node last asked the connection (answered or not): rounds ask the peers
        /// asked least recently first, so that answers come from as many peers as possible.
        var lastAskedAt: Deadline?
        /// When this node last answered the connection's request.
        var answeredAt: Deadline?
    }

    /// The settings, clamped to workable values.
    let settings: PeerExchange
    /// The least time between two answers to one connection: half the interval.
    private let answerSpacing: TimeAmount
    /// This node's peer id (inside Noise), which no dial of a learned address may lead back to.
    var ownPeerID: PeerID?
    /// This node's listening and advertised addresses (the driver keeps them current).
    var ownAddresses: Set<SocketAddress> = []

    private var peers: [ConnectionID: Peer] = [:]
    /// How many identified connections each connected route has (a route may briefly have two).
    private var connectionsPerAddress: [SocketAddress: Int] = [:]
    /// The dials this feature started and that are under way, with the peer id each must prove.
    private var dialing: [SocketAddress: PeerID?] = [:]
    private var learned: LearnedAddresses
    private var bucket: DialRateLimiter
    /// When the next round of asking is due; nil while the node has no peer to ask.
    private var nextRound: Deadline?
    private var random: SeededGenerator

    /// A state with nothing known yet; `seed` makes its random choices reproducible.
    init(settings: PeerExchange, seed: UInt64) {
        var clamped = settings
        clamped.targetPeerCount = max(0, settings.targetPeerCount)
        clamped.interval = max(.milliseconds(1), settings.interval)
        clamped.requestFanout = max(0, settings.requestFanout)
        clamped.maximumDialsPerSecond = min(max(0, settings.maximumDialsPerSecond), 1_000_000)
        clamped.maximumAddressesPerAnswer = min(max(0, settings.maximumAddressesPerAnswer), 4096)
        clamped.maximumLearnedAddresses = min(max(0, settings.maximumLearnedAddresses), 1 << 16)
        self.settings = clamped
        self.answerSpacing = .nanoseconds(clamped.interval.nanoseconds / 2)
        self.learned = LearnedAddresses(capacity: clamped.maximumLearnedAddresses)
        self.bucket = DialRateLimiter(perSecond: clamped.maximumDialsPerSecond)
        self.random = SeededGenerator(seed: seed)
    }

    // MARK: Reading

    /// How many routes have an identified connection.
    var connectedCount: Int { connectionsPerAddress.count }
    /// How many dials of learned addresses are under way.
    var dialCount: Int { dialing.count }
    /// How many learned addresses wait to be dialled.
    var learnedCount: Int { learned.count }
    /// The learned addresses waiting to be dialled, oldest first (for tests and diagnostics).
    var learnedEntries: [PeerExchangeEntry] { learned.all }

    /// Whether the node has fewer connected routes and dials under way than it aims for.
    var isBelowTarget: Bool { connectedCount + dialCount < settings.targetPeerCount }

    /// Whether this node awaits an answer on `connection`.
    func awaitsAnswer(on connection: ConnectionID) -> Bool { peers[connection]?.askedAt != nil }

    /// When the driver must call ``tick(now:)`` next: the next round, or the next dial token when
    /// learned addresses wait for one; nil when nothing is due (no peers, nothing to dial).
    mutating func nextDeadline(now: Deadline) -> Deadline? {
        var next = nextRound
        if isBelowTarget, !learned.isEmpty, let token = bucket.nextToken(now: now) {
            next = min(next ?? token, token)
        }
        return next
    }

    // MARK: Connections

    /// A connection was identified: it carries the route at `address`, whose peer proved `peerID`
    /// (inside Noise), and this node advertised `localAddress` on it. The first peer is asked at
    /// once when the node is below the target.
    mutating func connectionIdentified(
        _ connection: ConnectionID, address: SocketAddress, peerID: PeerID?, localAddress: SocketAddress?, now: Deadline
    ) -> [Action] {
        let wasAlone = peers.isEmpty
        if let old = peers[connection] { forgetConnection(connection, at: old.address) }
        peers[connection] = Peer(address: address, peerID: peerID, localAddress: localAddress)
        connectionsPerAddress[address, default: 0] += 1
        dialing[address] = nil
        learned.remove(address)
        if let peerID { learned.removeAll { $0.peerID == peerID } }
        if nextRound == nil { nextRound = now + settings.interval }
        guard wasAlone, isBelowTarget, settings.requestFanout > 0 else { return [] }
        // Bootstrapping should not wait a whole interval for the first answer.
        markAsked(connection, now: now)
        return [.request(connection)]
    }

    /// A connection closed (or its dial failed), dialled to `dialedAddress` if this node dialled
    /// it. A dial of this feature that ended before its route was connected is forgotten, and
    /// learned addresses may be dialled in its place.
    mutating func connectionClosed(_ connection: ConnectionID, dialedAddress: SocketAddress?, now: Deadline) -> [Action] {
        if let peer = peers.removeValue(forKey: connection) { forgetConnection(connection, at: peer.address) }
        if let dialedAddress, connectionsPerAddress[dialedAddress] == nil { dialing[dialedAddress] = nil }
        if peers.isEmpty { nextRound = nil }
        return dialWhileBelowTarget(now: now)
    }

    private mutating func forgetConnection(_ connection: ConnectionID, at address: SocketAddress) {
        let remaining = (connectionsPerAddress[address] ?? 1) - 1
        connectionsPerAddress[address] = remaining > 0 ? remaining : nil
    }

    /// A dial this state asked for could not start, or was refused before it connected: it is
    /// forgotten.
    mutating func dialFailed(_ address: SocketAddress) {
        dialing[address] = nil
    }

    // MARK: Time

    /// Runs what is due at `now`: a round of asking, and the dials the token bucket allows.
    mutating func tick(now: Deadline) -> [Action] {
        var actions: [Action] = []
        if let due = nextRound, now >= due {
            nextRound = now + settings.interval
            actions += askRound(now: now)
        }
        return actions + dialWhileBelowTarget(now: now)
    }

    /// Asks up to the fanout of peers (one connection per route, none with a request outstanding,
    /// those asked least recently first, ties broken at random), when below the target and the
    /// learned addresses cannot make up the shortfall.
    private mutating func askRound(now: Deadline) -> [Action] {
        // A request unanswered for a whole interval is given up: its answer no longer counts.
        for (connection, peer) in peers {
            if let asked = peer.askedAt, asked + settings.interval <= now { peers[connection]?.askedAt = nil }
        }
        let shortfall = settings.targetPeerCount - connectedCount - dialCount
        guard shortfall > 0, learned.count < shortfall else { return [] }
        var askedRoutes = Set(peers.values.filter { $0.askedAt != nil }.map(\.address))
        var candidates: [(connection: ConnectionID, lastAsked: Deadline, tieBreak: UInt64)] = []
        for connection in peers.keys.sorted() {
            guard let peer = peers[connection], !askedRoutes.contains(peer.address) else { continue }
            askedRoutes.insert(peer.address)
            candidates.append((connection, peer.lastAskedAt ?? .distantPast, random.next()))
        }
        candidates.sort { ($0.lastAsked, $0.tieBreak) < ($1.lastAsked, $1.tieBreak) }
        let asked = candidates.prefix(settings.requestFanout).map(\.connection)
        for connection in asked { markAsked(connection, now: now) }
        return asked.map { .request($0) }
    }

    private mutating func markAsked(_ connection: ConnectionID, now: Deadline) {
        peers[connection]?.askedAt = now
        peers[connection]?.lastAskedAt = now
    }

    // MARK: Messages

    /// `connection` asks for this node's peers: answered with the connected routes (one entry per
    /// route, in random order, at most the per-answer maximum) other than the asker's own, unless
    /// it was answered less than half an interval ago.
    mutating func requestReceived(on connection: ConnectionID, now: Deadline) -> [Action] {
        guard let asker = peers[connection] else { return [.ignored(connection, .unidentifiedConnection)] }
        if let last = asker.answeredAt, now < last + answerSpacing { return [.ignored(connection, .requestTooSoon)] }
        peers[connection]?.answeredAt = now
        var seen: Set<SocketAddress> = [asker.address]
        var entries: [PeerExchangeEntry] = []
        for other in peers.keys.sorted() {
            guard let peer = peers[other], !seen.contains(peer.address) else { continue }
            seen.insert(peer.address)
            if let id = peer.peerID, id == asker.peerID || id == ownPeerID { continue }
            entries.append(PeerExchangeEntry(address: peer.address, peerID: peer.peerID))
        }
        entries.shuffle(using: &random)
        return [.answer(connection, Array(entries.prefix(settings.maximumAddressesPerAnswer)))]
    }

    /// `connection` answered. Only an answer to an outstanding request counts (and only one per
    /// request); only then is it parsed, by `parse`, whose error (a malformed answer) is thrown for
    /// the driver to close the connection. New addresses are learned and dialled as allowed.
    mutating func answerReceived(
        on connection: ConnectionID, now: Deadline, parse: () throws(P2PError) -> [PeerExchangeEntry]
    ) throws(P2PError) -> [Action] {
        guard let peer = peers[connection] else { return [.ignored(connection, .unidentifiedConnection)] }
        guard let asked = peer.askedAt, now < asked + settings.interval else { return [.ignored(connection, .unsolicitedAnswer)] }
        peers[connection]?.askedAt = nil
        let entries = try parse()
        var count = 0
        for entry in entries where isWorthDialling(entry) {
            if learned.insert(entry) { count += 1 }
        }
        let learnedActions: [Action] = count > 0 ? [.learned(count)] : []
        return learnedActions + dialWhileBelowTarget(now: now)
    }

    // MARK: Dialling

    /// Whether `entry` names a peer this node might dial: not itself, not a route it has, not a
    /// dial under way, and an address one can dial (an IP address with a port, not a wildcard).
    private func isWorthDialling(_ entry: PeerExchangeEntry) -> Bool {
        let address = entry.address
        guard address.port != 0, !address.isUnspecified else { return false }
        if case .unix = address { return false }
        if ownAddresses.contains(address) || connectionsPerAddress[address] != nil || dialing[address] != nil { return false }
        if let id = entry.peerID {
            if id == ownPeerID || dialing.values.contains(id) { return false }
            if peers.values.contains(where: { $0.peerID == id }) { return false }
        }
        return !peers.values.contains { $0.localAddress == address }
    }

    /// Takes learned addresses to dial, oldest first, while the node is below the target and the
    /// token bucket allows; addresses no longer worth dialling are dropped on the way.
    private mutating func dialWhileBelowTarget(now: Deadline) -> [Action] {
        var actions: [Action] = []
        while isBelowTarget, !learned.isEmpty, bucket.nextToken(now: now) == now {
            guard let entry = learned.popOldest() else { break }
            guard isWorthDialling(entry), bucket.take(now: now) else { continue }
            dialing[entry.address] = entry.peerID
            actions.append(.dial(entry))
        }
        return actions
    }
}

/// A `RandomNumberGenerator` over the node's seeded SplitMix64 (``MessageIDGenerator``), so that
/// peer exchange's random choices repeat with ``Node/Configuration/randomSeed``.
struct SeededGenerator: RandomNumberGenerator {
    private var generator: MessageIDGenerator

    init(seed: UInt64) {
        generator = MessageIDGenerator(seed: seed)
    }

    mutating func next() -> UInt64 { generator.next() }
}
