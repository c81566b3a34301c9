import Logging
import Pheromones
import PheromonesNoise

/// Where a connection that proved `peer` belongs among the routes (``NodeCore/securedRoute(for:peer:at:)``).
enum SecuredRouteDecision {
    /// The route at this address (the peer's own, whatever address it claims).
    case route(SocketAddress)
    /// Refuse the connection with this error; no route changes.
    case refuse(P2PError)
    /// The peer claims the address of a route bound to no peer id: this node's own dial of that
    /// address decides (see ``NodeCore/awaitVerification(of:peer:at:name:)``).
    case verify
}

/// The checks that bind routes to proven peer ids inside Noise: the policy and the pinned id right
/// after the handshake, and at identification which route (if any) a proven peer may carry.
extension NodeCore {
    /// The connection `stage` has completed its Noise handshake: `peer` is proven. Refuses it,
    /// before any route is planted, when the policy refuses the peer or when the route dialed is
    /// firmly bound to another peer id (pinned, or proven by a dial of ours). A binding that rests
    /// only on an inbound connection's claim does not stop our dial: what our dial proves wins.
    func peerAuthenticated(_ stage: RouterStage, peer: PeerID) {
        loop.assertInEventLoop()
        guard !isShutDown else { return }
        stage.facts.remotePeerID = peer
        if let reason = configuration.peerPolicy.refusal(of: peer, at: stage.dialedAddress ?? stage.context?.channel.remoteAddress) {
            return refuse(stage, .peerRefused(peer, reason))
        }
        if let dialed = stage.dialedAddress, let route = table.routes[dialed], let expected = route.peerID, expected != peer,
            !route.bindingRestsOnClaim
        {
            return refuse(stage, .unexpectedPeer(expected: expected, actual: peer))
        }
    }

    /// Which route a connection that proved `peer` and names `address` (the address dialed, or the
    /// listening address its hello claims) may carry.
    ///
    /// - The peer's own route, if it has one: a peer id names one route, whatever address a
    ///   connection claims (a dial of another address that reaches it is refused).
    /// - A route firmly bound to another peer id (pinned, or proven by our dial) is never given to
    ///   it: ``P2PError/unexpectedPeer(expected:actual:)``.
    /// - A route bound to no one, or bound to another id only on that peer's claim, is this node's
    ///   own dial's to decide: our dial of the address takes it (the claimant's connections are then
    ///   refused, ``RouteTable/identified(_:address:name:facts:)``); an inbound connection claiming
    ///   it waits for that dial (a claim is not proof, and two claims are not either).
    /// - An inbound connection claiming an unknown address gets a route of its own, learned, bound
    ///   to its id on its claim, and gone with its connection.
    func securedRoute(for stage: RouterStage, peer: PeerID, at address: SocketAddress) -> SecuredRouteDecision {
        let own = table.route(ofPeer: peer)
        if let own, own == address || stage.facts.direction == .inbound { return .route(own) }
        if let own { return .refuse(.peerRoutedElsewhere(peer, address: own)) }
        guard let route = table.routes[address] else { return .route(address) }
        if let bound = route.peerID, !route.bindingRestsOnClaim { return .refuse(.unexpectedPeer(expected: bound, actual: peer)) }
        return stage.facts.direction == .outbound ? .route(address) : .verify
    }

    /// Parks `stage` until this node's own dial of `address` shows who is there (dialing it now,
    /// or joining the dial under way): then it is identified if that is `peer`, and refused
    /// otherwise. The park lasts at most the dial's own deadlines (connect, handshake).
    func awaitVerification(of stage: RouterStage, peer: PeerID, at address: SocketAddress, name: String) {
        guard let route = table.routes[address] else { return refuse(stage, .unverifiedAddress(peer, address: address)) }
        do {
            _ = try dial(name: route.name, address: address, pinning: false)
        } catch {
            return refuse(stage, .unverifiedAddress(peer, address: address))
        }
        logger.debug("a peer claims the address of a route not bound to it; dialing the address to verify",
                     metadata: ["peer": "\(peer.description.escapedForTerminal)", "address": "\(address)"])
        awaitingVerification[address, default: []].append((stage.id, name))
    }

    /// This node's dial of `address` has identified its route (`verified`) or failed: the
    /// connections waiting for it are identified again (which routes or refuses them), or refused.
    func settleVerifications(at address: SocketAddress, verified: Bool) {
        guard let waiting = awaitingVerification.removeValue(forKey: address) else { return }
        for (id, name) in waiting {
            guard let stage = connections[id], !stage.isClosed, let peer = stage.facts.remotePeerID else { continue }
            if verified {
                identify(stage, address: address, name: name)
            } else {
                refuse(stage, .unverifiedAddress(peer, address: address))
            }
        }
    }

    /// Closes `stage` for a reason about who its peer is, counting and logging it (ids escaped:
    /// they are printable by construction, but the log shows nothing a peer shaped unescaped).
    func refuse(_ stage: RouterStage, _ error: P2PError) {
        metrics.refusedPeer()
        logger.notice("refused a peer", metadata: [
            "peer": "\(stage.facts.remotePeerID?.description.escapedForTerminal ?? "?")",
            "remote": "\(stage.context?.channel.remoteAddress.map { "\($0)" } ?? "?")",
            "reason": "\(error.description)",
        ])
        stage.closeNow(error)
    }
}
