import Pheromones

/// What the gossip router asks its node to do: send a full message or a control message to a
/// peer. The router appends actions to a buffer its caller owns and empties (see `GossipRouter`).
enum GossipAction<Peer> {
    /// Send the message `envelope` (a broadcast, with its message id and hop limit) to `peer`.
    case send(Envelope, to: Peer)
    /// Send `control` (as `control.envelope(from:)` with the node's name) to `peer`.
    case control(GossipControl, to: Peer)
}

extension GossipAction: Equatable where Peer: Equatable {}
extension GossipAction: Hashable where Peer: Hashable {}
