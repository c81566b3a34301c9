import Pheromones
import PheromonesNoise

/// Which proven peers a node talks to (``Node/Configuration/peerPolicy``), decided right after
/// the Noise handshake, on connections this node dials and accepts alike, before any route is
/// planted. A refused peer's connection is closed with ``P2PError/peerRefused(_:_:)``, counted
/// (``NodeStatistics/peersRefused``) and logged.
///
/// The order: the denylist refuses; then the allowlist admits; then a closed node refuses; then
/// the callback, if any, decides; then an open node admits.
///
/// Only the native wire inside Noise proves peer ids: on plaintext connections there is nothing
/// to decide on, and the policy does not apply.
public struct PeerPolicy: Sendable {
    /// Whether a peer on no list may connect.
    public enum Mode: String, Sendable, Hashable {
        /// Any peer that proves its identity, unless denylisted or the callback refuses it.
        case open
        /// Only allowlisted peers.
        case closed
    }

    /// Open or closed.
    public var mode: Mode
    /// Peers always admitted (unless also denylisted).
    public var allowlist: Set<PeerID>
    /// Peers always refused.
    public var denylist: Set<PeerID>
    /// Decides on a peer on neither list, in an open node (true: admit), with the address it
    /// connected from or was dialed at. Runs on the node's loop: keep it quick.
    public var decide: (@Sendable (PeerID, SocketAddress?) -> Bool)?

    /// A policy; by default open to every peer.
    public init(
        mode: Mode = .open, allowlist: Set<PeerID> = [], denylist: Set<PeerID> = [],
        decide: (@Sendable (PeerID, SocketAddress?) -> Bool)? = nil
    ) {
        self.mode = mode
        self.allowlist = allowlist
        self.denylist = denylist
        self.decide = decide
    }

    /// Admits every peer that proves its identity.
    public static let open = PeerPolicy()

    /// Why `peer` (at `address`) is refused, or nil when it is admitted.
    func refusal(of peer: PeerID, at address: SocketAddress?) -> PeerRefusal? {
        if denylist.contains(peer) { return .denylisted }
        if allowlist.contains(peer) { return nil }
        if mode == .closed { return .notAllowlisted }
        if let decide, !decide(peer, address) { return .refusedByCallback }
        return nil
    }
}

/// Why a node's ``PeerPolicy`` refused a peer.
public enum PeerRefusal: String, Sendable, Hashable, CustomStringConvertible {
    /// The peer is on the denylist.
    case denylisted
    /// The node is closed and the peer is not on the allowlist.
    case notAllowlisted
    /// The policy's callback refused it.
    case refusedByCallback

    /// A few words for logs and errors.
    public var description: String {
        switch self {
        case .denylisted: return "it is denylisted"
        case .notAllowlisted: return "the node is closed and it is not allowlisted"
        case .refusedByCallback: return "the policy's callback refused it"
        }
    }
}
