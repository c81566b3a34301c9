import Pheromones
import PheromonesNoise

/// A connection's number within its node.
typealias ConnectionID = Int


/// What the route table needs to know about a connection to pick one of two for the same peer.
struct ConnectionFacts: Sendable, Hashable {
    var direction: ConnectionDirection
    /// The dialer's count of its dials when it made this one: the newer of two connections dialed
    /// by the same side has the larger generation, as seen from both ends (the dialer tells the
    /// acceptor in its hello).
    var generation: UInt64
    /// The listening address this node advertised on the connection.
    var localAddress: SocketAddress?
    /// The listening address the peer advertised (or, without a hello, the address dialed).
    var peerAddress: SocketAddress?
    /// This node's peer id, when the connection proves it (inside Noise).
    var localPeerID: PeerID?
    /// The peer id the connection's handshake proved.
    var remotePeerID: PeerID?
}

/// The route table: the routes, and for persistent mode which connection carries each route.
///
/// A route is found by the peer's listening address (the handle it is dialed by) and, inside
/// Noise, by the peer id it is bound to: a peer id names one route at most (``route(ofPeer:)``),
/// and the node lets only a connection that proves a route's peer id carry it (``Route/peerID``).
///
/// A pure state machine. It is touched only on the node's loop (TODO 2: no locks, so no lock
/// ordering to get wrong), and every change returns the ``Action``s the node must carry out, so
/// nothing calls out while the table is half-updated.
///
/// ### Picking one connection of two (TODO 3 and TODO 4)
/// When a second connection to the same peer becomes known, both ends apply the same rule:
/// - dialed by different sides (simultaneous dial): keep the one dialed by the peer with the
///   smaller peer id (inside Noise, where both are proven), or else the smaller listening address;
/// - dialed by the same side (a reconnect): keep the newer one (larger generation).
///
/// The loser is drained (nothing new is sent on it; it closes once both ends have nothing left to
/// say). If the loser is the route's current connection, the winner waits for it to close (the
/// route is handing over): what is under way on the old connection finishes there, and new sends
/// park until the old one is gone. A draining connection that has not closed within the hand-over
/// timeout is closed by its stage, failing what still waits on it with
/// ``P2PError/connectionReplaced(_:)``; the route then hands over.
struct RouteTable {
    /// What a route's traffic goes over (persistent mode; short-mode routes stay ``down``).
    enum State: Sendable, Hashable {
        /// No connection.
        case down
        /// Dialing; sends park until the connection is identified.
        case dialing(ConnectionID)
        /// Sends go over this connection.
        case connected(ConnectionID)
        /// The only connection is draining (the peer asked); sends park until it is gone or a new
        /// one arrives.
        case retiring(ConnectionID)
        /// `from` is draining, `to` takes over once it has closed; sends park meanwhile.
        case handingOver(from: ConnectionID, to: ConnectionID)
    }

    /// One peer.
    struct Route: Sendable, Hashable {
        var name: String
        let address: SocketAddress
        var state: State = .down
        /// Whether a connection ever carried the route (a first dial that fails removes it).
        var hasConnected = false
        /// A dial that will replace the current connection once identified (persistent `add`).
        var replacementDial: ConnectionID?
        /// Whether the application added the route (``Node/add(peer:address:)-(String,SocketAddress)``).
        /// Only such a route is ever dialled by the node, kept while down, and reached by a fan-out
        /// in short mode; a route learned from a peer (its hello, or a greeting the protocol
        /// accepted) lives as long as its connection.
        var isPinned = false
        /// The peer id the application requires at this address (``Node/add(peer:address:expecting:)``).
        var pin: PeerID?
        /// The peer id the route is bound to: its `pin`, or the one proven by the first connection
        /// identified for it (released when the route goes down, so that a peer restarted with a
        /// new key can be dialed again). Only a connection that proves it may carry the route.
        var peerID: PeerID?
        /// Whether ``peerID`` rests only on an inbound connection's claim that its peer listens at
        /// the address (the hello of a peer that connected first): a claim is not proof, so this
        /// node's own dial of the address, proving another id, takes the route over and the
        /// claimant's connections are refused (``identified(_:address:name:facts:)``). A pin or a
        /// dial of ours that proves the same id makes the binding firm.
        var bindingRestsOnClaim = false
    }

    /// What the node must do after a change, in order.
    enum Action: Sendable, Hashable {
        /// Drain the connection: send nothing new, close once both ends are done.
        case drain(ConnectionID)
        /// Fail what waits on the connection with `error` and close it now.
        case close(ConnectionID, P2PError)
        /// The route at the address is usable over the connection: send what parked.
        case routeUp(SocketAddress, ConnectionID)
        /// The route lost its last connection.
        case routeDown(SocketAddress)
        /// The route's dial failed: fail what parked on it with the dial's error (a route that never
        /// had a connection is gone too).
        case dialFailed(SocketAddress)
        /// The route was deleted: fail what parked on it.
        case routeRemoved(SocketAddress)
        /// Refuse the connection (count it, log it, close it with the error): it proved another id
        /// than the route it carried is now bound to.
        case refuse(ConnectionID, P2PError)
        /// A draining connection that waited for its successor may finish now.
        case resumeDrain(ConnectionID)
    }

    /// What to do with a message for a route.
    enum SendTarget: Sendable, Hashable {
        /// Write it on this connection.
        case connection(ConnectionID)
        /// Keep it until the route is usable.
        case park
        /// The route is down: dial it, and keep the message meanwhile.
        case dial
    }

    /// What `beginDial` decided.
    enum DialDecision: Sendable, Hashable {
        /// Dial; the connection will be `connection`.
        case dial
        /// A dial for the route is already under way: wait for that one.
        case join(ConnectionID)
    }

    private(set) var routes: [SocketAddress: Route] = [:]
    private var facts: [ConnectionID: ConnectionFacts] = [:]
    /// Which route each known connection belongs to.
    private var routeOfConnection: [ConnectionID: SocketAddress] = [:]
    /// Which route each bound peer id is (the routes' ``Route/peerID``s, inverted).
    private var routeOfPeerID: [PeerID: SocketAddress] = [:]

    // MARK: Reading

    /// The routes whose name is `name`, in address order.
    func routes(named name: String) -> [Route] {
        routes.values.filter { $0.name == name }.sorted { $0.address.precedes($1.address) }
    }

    /// The address of the only route named `name`; nil when there is none or more than one
    /// (``routes(named:)`` tells them apart). Builds no array: it runs for every message sent by name.
    func onlyRoute(named name: String) -> SocketAddress? {
        var found: SocketAddress?
        for route in routes.values where route.name == name {
            guard found == nil else { return nil }
            found = route.address
        }
        return found
    }

    /// The address of the route bound to `peer`, if any.
    func route(ofPeer peer: PeerID) -> SocketAddress? { routeOfPeerID[peer] }

    /// The route a connection belongs to, if it is identified.
    func route(of connection: ConnectionID) -> SocketAddress? { routeOfConnection[connection] }

    /// Where a message for the route at `address` goes (nil: no such route).
    func sendTarget(for address: SocketAddress) -> SendTarget? {
        guard let route = routes[address] else { return nil }
        switch route.state {
        case .down: return .dial
        case .connected(let connection): return .connection(connection)
        case .dialing, .retiring, .handingOver: return .park
        }
    }

    /// Whether `connection` is draining as its route's only connection: it then stays open until
    /// a successor is known, so that the route never goes down in the middle of a simultaneous dial
    /// (the peer may ask us to drain before our end has seen the connection that replaces it).
    func awaitsSuccessor(_ connection: ConnectionID) -> Bool {
        guard let address = routeOfConnection[connection], let route = routes[address] else { return false }
        return route.state == .retiring(connection)
    }

    /// Whether the route has a connection that carries (or will carry) its traffic.
    func isConnected(_ address: SocketAddress) -> Bool {
        switch routes[address]?.state {
        case .connected, .retiring, .handingOver: return true
        case .down, .dialing, nil: return false
        }
    }

    // MARK: Short-mode routes

    /// Adds a route by address (short mode; the original's `SRouter.AddRoute`): the same name at
    /// the same address is an error, another name renames the route.
    /// `pinned` when the application adds it (a route once pinned stays pinned).
    /// `pin` (an application's route only) is the peer id every dial must find there.
    mutating func addAddress(name: String, address: SocketAddress, pinned: Bool, pin: PeerID? = nil) throws(P2PError) {
        if let existing = routes[address], existing.name == name, !(pinned && !existing.isPinned), pin == nil || existing.pin == pin {
            throw .routeExists(name: name, address: address)
        }
        var route = routes[address] ?? Route(name: name, address: address)
        route.name = name
        route.isPinned = route.isPinned || pinned
        routes[address] = route
        if let pin { self.pin(address, to: pin) }
    }

    /// Requires `peer` at the route at `address` from now on (the route's binding follows).
    private mutating func pin(_ address: SocketAddress, to peer: PeerID) {
        routes[address]?.pin = peer
        bind(address, to: peer)
    }

    /// Binds the route at `address` to `peer` (nil: unbinds it), keeping the index in step;
    /// `claimed` when the binding rests only on an inbound connection's claim.
    private mutating func bind(_ address: SocketAddress, to peer: PeerID?, claimed: Bool = false) {
        guard var route = routes[address] else { return }
        if let old = route.peerID, routeOfPeerID[old] == address { routeOfPeerID[old] = nil }
        route.peerID = peer
        route.bindingRestsOnClaim = peer != nil && claimed
        routes[address] = route
        if let peer { routeOfPeerID[peer] = address }
    }

    /// Forgets the route at `address` and its binding.
    private mutating func dropRoute(_ address: SocketAddress) {
        bind(address, to: nil)
        routes[address] = nil
    }

    /// Gives the route at `address` another name (the peer renamed itself).
    mutating func rename(_ address: SocketAddress, to name: String) {
        routes[address]?.name = name
    }

    // MARK: Persistent-mode connections

    /// Records a dial of `connection` for the route at `address` (creating the route, pinned when
    /// the application asked for it), unless one is already under way.
    /// `pin`: the peer id the application requires there.
    mutating func beginDial(
        name: String, address: SocketAddress, connection: ConnectionID, facts connectionFacts: ConnectionFacts, pinned: Bool,
        pin: PeerID? = nil
    ) -> DialDecision {
        defer { if let pin { self.pin(address, to: pin) } }
        var route = routes[address] ?? Route(name: name, address: address)
        route.name = name
        route.isPinned = route.isPinned || pinned
        switch route.state {
        case .dialing(let pending):
            routes[address] = route
            return .join(pending)
        case .down:
            route.state = .dialing(connection)
        case .connected, .retiring, .handingOver:
            if let pending = route.replacementDial {
                routes[address] = route
                return .join(pending)
            }
            route.replacementDial = connection
        }
        routes[address] = route
        facts[connection] = connectionFacts
        routeOfConnection[connection] = address
        return .dial
    }

    /// A connection has told who is at its other end: the peer listening at `address`, named `name`
    /// (and inside Noise, the peer id in `facts`, which the node has checked against the route's:
    /// the route is bound to it, or the binding rests on a claim and this is our own dial).
    ///
    /// A route's connections all prove one id: those of the route that prove another (the
    /// connections of a peer that only claimed the address, or of an id the application has since
    /// pinned another in place of) are refused, and the route is this connection's.
    mutating func identified(_ connection: ConnectionID, address: SocketAddress, name: String, facts connectionFacts: ConnectionFacts) -> [Action] {
        var actions: [Action] = []
        if let peer = connectionFacts.remotePeerID {
            actions = refuseConnections(at: address, provingOtherThan: peer, except: connection)
            if routes[address]?.peerID == nil {
                if routes[address] == nil { routes[address] = Route(name: name, address: address) }
                bind(address, to: peer, claimed: connectionFacts.direction == .inbound)
            } else if routes[address]?.peerID == peer, connectionFacts.direction == .outbound {
                // Our own dial found the peer there: its claim is proven.
                routes[address]?.bindingRestsOnClaim = false
            }
        }
        facts[connection] = connectionFacts
        routeOfConnection[connection] = address
        var route = routes[address] ?? Route(name: name, address: address)
        if route.replacementDial == connection { route.replacementDial = nil }
        switch route.state {
        case .down:
            route.state = .connected(connection)
            actions.append(.routeUp(address, connection))
        case .dialing(let pending) where pending == connection:
            route.state = .connected(connection)
            actions.append(.routeUp(address, connection))
        case .dialing(let pending):
            // Our own dial is still connecting: pick now, so the loser never carries anything.
            if preferred(connection, over: pending) == connection {
                route.state = .connected(connection)
                actions.append(.routeUp(address, connection))
            } else {
                actions.append(.drain(connection))
            }
        case .connected(let current) where current == connection:
            break
        case .connected(let current):
            if preferred(connection, over: current) == connection {
                route.state = .handingOver(from: current, to: connection)
                actions.append(.drain(current))
            } else {
                actions.append(.drain(connection))
            }
        case .retiring(let current):
            route.state = .handingOver(from: current, to: connection)
            actions.append(.resumeDrain(current))
        case .handingOver(let old, let incoming):
            if incoming == connection || old == connection { break }
            if preferred(connection, over: incoming) == connection {
                route.state = .handingOver(from: old, to: connection)
                actions.append(.drain(incoming))
            } else {
                actions.append(.drain(connection))
            }
        }
        route.hasConnected = route.hasConnected || isCarrier(connection, of: route.state)
        routes[address] = route
        return actions
    }

    /// Refuses the connections of the route at `address` (all but `kept`) that prove another id
    /// than `peer`, forgetting them (their closing changes nothing more), and unbinds the route if
    /// it was bound to one of theirs. If one of them carried the route, the route is down, or
    /// dialing if a dial to replace them is under way (sends park for it rather than dial again).
    /// Used when our dial proves `peer` there, and when the application pins `peer` there.
    mutating func refuseConnections(at address: SocketAddress, provingOtherThan peer: PeerID, except kept: ConnectionID? = nil) -> [Action] {
        guard var route = routes[address] else { return [] }
        let others = routeOfConnection
            .filter { $0.value == address && $0.key != kept }
            .compactMap { connection, _ in facts[connection].flatMap { facts in facts.remotePeerID.map { (connection, facts, $0) } } }
            .filter { $0.2 != peer }
            .sorted { $0.0 < $1.0 }
        guard !others.isEmpty else { return [] }
        let refused = Set(others.map(\.0))
        for connection in refused {
            routeOfConnection[connection] = nil
            facts[connection] = nil
        }
        switch route.state {
        case .connected(let c), .retiring(let c):
            if refused.contains(c) { route.state = .down }
        case .handingOver(let old, let incoming):
            if refused.contains(old) || refused.contains(incoming) { route.state = .down }
        case .dialing(let c):
            if refused.contains(c) { route.state = .down }
        case .down:
            break
        }
        if route.state == .down, let replacement = route.replacementDial {
            route.state = .dialing(replacement)
            route.replacementDial = nil
        }
        let wasBoundToThem = route.peerID.map { bound in others.contains { $0.2 == bound } } ?? false
        routes[address] = route
        if wasBoundToThem { bind(address, to: route.pin) }
        return others.map { connection, connectionFacts, proven in
            // An inbound connection only claimed the address; one of ours proved an id the application no longer wants there.
            connectionFacts.direction == .inbound
                ? .refuse(connection, .unverifiedAddress(proven, address: address))
                : .refuse(connection, .unexpectedPeer(expected: peer, actual: proven))
        }
    }

    /// The peer asked to drain `connection` (it found a better one, or is going away).
    mutating func drainRequested(_ connection: ConnectionID) -> [Action] {
        guard let address = routeOfConnection[connection], var route = routes[address] else { return [] }
        let actions: [Action] = [.drain(connection)]
        switch route.state {
        case .connected(let current) where current == connection:
            route.state = .retiring(connection)
        case .handingOver(let old, let incoming) where incoming == connection:
            // The two ends disagree about the newcomer (possible only without hellos): keep the old one draining.
            route.state = .retiring(old)
        default:
            break
        }
        routes[address] = route
        return actions
    }

    /// `connection` closed, or its dial failed.
    mutating func closed(_ connection: ConnectionID) -> [Action] {
        facts[connection] = nil
        guard let address = routeOfConnection.removeValue(forKey: connection), var route = routes[address] else { return [] }
        if route.replacementDial == connection { route.replacementDial = nil }
        var actions: [Action] = []
        switch route.state {
        case .dialing(let pending) where pending == connection:
            guard route.hasConnected else {
                dropRoute(address)
                return [.dialFailed(address)]
            }
            route.state = .down
            actions.append(.dialFailed(address))
        case .connected(let current) where current == connection, .retiring(let current) where current == connection:
            guard route.isPinned else {
                // Learned from the peer: nothing to dial it by, and a hostile peer could plant any
                // number of them. It goes with its connection.
                dropRoute(address)
                return [.routeRemoved(address)]
            }
            route.state = .down
            actions.append(.routeDown(address))
        case .handingOver(let old, let incoming) where old == connection:
            route.state = .connected(incoming)
            actions.append(.routeUp(address, incoming))
        case .handingOver(let old, let incoming) where incoming == connection:
            route.state = .retiring(old)
        default:
            break
        }
        routes[address] = route
        // Down, the route is an address again: whoever proves the pinned id there (or any id, if
        // none is pinned) may carry it next, so a peer restarted with a new key can come back.
        if route.state == .down { bind(address, to: route.pin) }
        return actions
    }

    /// Removes the route at `address`; its connections are closed.
    mutating func remove(_ address: SocketAddress) -> [Action] {
        guard let route = routes[address] else { return [] }
        dropRoute(address)
        var connections: [ConnectionID] = []
        switch route.state {
        case .down: break
        case .dialing(let c), .connected(let c), .retiring(let c): connections = [c]
        case .handingOver(let old, let incoming): connections = [old, incoming]
        }
        if let replacement = route.replacementDial { connections.append(replacement) }
        for connection in connections {
            routeOfConnection[connection] = nil
            facts[connection] = nil
        }
        return connections.map { .close($0, .connectionLost(address)) } + [.routeRemoved(address)]
    }

    // MARK: The rule

    /// Of two connections to the same peer, the one both ends keep.
    private func preferred(_ candidate: ConnectionID, over current: ConnectionID) -> ConnectionID {
        guard let new = facts[candidate], let old = facts[current] else { return current }
        if new.direction == old.direction {
            return new.generation > old.generation ? candidate : current
        }
        // Simultaneous dial inside Noise: keep the connection dialed by the side with the smaller
        // peer id, which both ends have proven to each other.
        if let local = new.localPeerID ?? old.localPeerID, let peer = new.remotePeerID ?? old.remotePeerID, local != peer {
            let keep: ConnectionDirection = local.bytes.lexicographicallyPrecedes(peer.bytes) ? .outbound : .inbound
            return new.direction == keep ? candidate : current
        }
        // Simultaneous dial: keep the connection dialed by the side with the smaller listening address.
        guard let local = new.localAddress ?? old.localAddress, let peer = new.peerAddress ?? old.peerAddress else {
            return current
        }
        let keep: ConnectionDirection = local.precedes(peer) ? .outbound : .inbound
        return new.direction == keep ? candidate : current
    }

    private func isCarrier(_ connection: ConnectionID, of state: State) -> Bool {
        switch state {
        case .connected(let c), .retiring(let c): return c == connection
        case .handingOver(let old, let incoming): return old == connection || incoming == connection
        case .down, .dialing: return false
        }
    }
}
