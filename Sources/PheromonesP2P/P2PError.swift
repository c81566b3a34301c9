import Pheromones
import PheromonesNoise

/// The errors of the peer-to-peer layer, each with a sentence that says what happened.
///
/// The Go original's errors (`error.go`) map onto these: `ErrLocalSocketTimeout` is
/// ``readTimeout(peer:)``, `ErrRemoteSocketEmpty` ``emptyAddress``, `ErrRemoteSocketExist`
/// ``routeExists(name:address:)``, `ErrRemoteSocketMisType` ``wrongAddressKind(_:)``,
/// `ErrRemoteSocketConnect` ``connectFailed(address:reason:)``, `ErrUnKnownProtocal`
/// ``unknownProtocol(_:)``, `ErrMismatchProtocalReq` ``mismatchedRequest(_:)``,
/// `ErrMismatchProtocalResp` ``mismatchedResponse(_:)`` and `ErrUnknuowPeer` ``unknownPeer(_:)``.
/// The rest are new: they name what the original left undefined (two peers of one name, a
/// connection that dies or is replaced while a dispatch waits, a node that shuts down).
///
/// The associated texts are kept as they came, peers' names and operations included; the
/// ``description`` escapes them (``Swift/String/escapedForTerminal``), so that the sentence can be
/// logged or printed as it is: nothing a peer chose acts on a terminal or breaks the line.
public enum P2PError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No reply (or no request, on a server connection) arrived in time from `peer`.
    case readTimeout(peer: String)
    /// A route was given an empty address.
    case emptyAddress
    /// A route to `address` under `name` is already there (persistent mode: this very connection
    /// is already that route's).
    case routeExists(name: String, address: SocketAddress)
    /// The address does not suit the route: not a numeric `ip:port`, or (persistent mode) there
    /// is no connection to bind to it. The text says which.
    case wrongAddressKind(String)
    /// Dialing `address` failed; `reason` says why (refused, timed out, unreachable, ...).
    case connectFailed(address: SocketAddress, reason: String)
    /// The peer does not speak this node's protocol (its first bytes are not our wire, or it sent
    /// a control message we do not know). The text says what was seen.
    case unknownProtocol(String)
    /// A request is not a valid message of the protocol. The text says why.
    case mismatchedRequest(String)
    /// A reply (or a request's payload the protocol needed, such as the connect greeting) is not
    /// what the protocol expects. The text says why.
    case mismatchedResponse(String)
    /// No route matches the name or address.
    case unknownPeer(String)
    /// Several routes carry `name`; dispatch to one of `addresses` instead.
    case ambiguousPeer(name: String, addresses: [SocketAddress])
    /// The connection to the peer at `address` dropped while something waited on it.
    case connectionLost(SocketAddress)
    /// The connection to the peer at `address` was replaced by a newer one, and what waited on the
    /// old one did not finish within the hand-over timeout.
    case connectionReplaced(SocketAddress)
    /// The node has shut down.
    case nodeShutDown
    /// The peer at the address does not read fast enough: its connection already holds
    /// ``Node/Configuration/maximumQueuedBytesPerPeer`` bytes, so the message was not sent.
    case peerTooSlow(SocketAddress)
    /// A configured limit (``AdmissionLimit``) is reached.
    case limitReached(AdmissionLimit)
    /// A message to the peer at the address was not taken by the network within the reply
    /// timeout: the peer does not read (the JSON wire's persistent dispatch, which completes once
    /// its message is written). The message stays queued and may still go out.
    case writeTimeout(SocketAddress)
    /// The peer proved the identity `actual` where `expected` was required: the peer id pinned
    /// with ``Node/add(peer:address:expecting:)``, or the id already bound to the route (a
    /// connection from another key never replaces a route's connection).
    case unexpectedPeer(expected: PeerID, actual: PeerID)
    /// A hello that does not match its session: it names another peer id than the one the Noise
    /// handshake proved (`claimed` nil: it names none), or it came before any handshake (`proven`
    /// nil). The connection is closed.
    case forgedHello(claimed: PeerID?, proven: PeerID?)
    /// The node's ``PeerPolicy`` refused the peer; the connection is closed.
    case peerRefused(PeerID, PeerRefusal)
    /// The peer is already the route at `address` (a peer id names one route at most): a dial
    /// of another address that reaches it is refused.
    case peerRoutedElsewhere(PeerID, address: SocketAddress)
    /// A peer claims the listening address of a route whose peer this node has not proven, and
    /// this node's own dial of that address did not prove it is there.
    case unverifiedAddress(PeerID, address: SocketAddress)

    /// A sentence saying what went wrong, for logs and messages, with the texts it quotes escaped
    /// for the terminal.
    public var description: String {
        switch self {
        case .readTimeout(let peer):
            return "no message arrived from \(peer.escapedForTerminal) in time"
        case .emptyAddress:
            return "the peer's address is empty"
        case .routeExists(let name, let address):
            return "a route to '\(name.escapedForTerminal)' at \(address) already exists"
        case .wrongAddressKind(let detail):
            return "the address does not suit this route: \(detail.escapedForTerminal)"
        case .connectFailed(let address, let reason):
            return "could not connect to \(address): \(reason.escapedForTerminal)"
        case .unknownProtocol(let detail):
            return "the peer does not speak this protocol: \(detail.escapedForTerminal)"
        case .mismatchedRequest(let detail):
            return "the request does not match the protocol: \(detail.escapedForTerminal)"
        case .mismatchedResponse(let detail):
            return "the reply does not match the protocol: \(detail.escapedForTerminal)"
        case .unknownPeer(let peer):
            return "no route to '\(peer.escapedForTerminal)'"
        case .ambiguousPeer(let name, let addresses):
            let list = addresses.map { "\($0)" }.joined(separator: ", ")
            return "\(addresses.count) routes are named '\(name.escapedForTerminal)' (\(list)); dispatch to an address instead"
        case .connectionLost(let address):
            return "the connection to \(address) was lost"
        case .connectionReplaced(let address):
            return "the connection to \(address) was replaced by a newer one before it finished"
        case .nodeShutDown:
            return "the node has shut down"
        case .limitReached(let limit):
            return "the node's limit of \(limit) is reached"
        case .peerTooSlow(let address):
            return "the peer at \(address) reads too slowly: its queue is full, and the message was not sent"
        case .writeTimeout(let address):
            return "the message to \(address) was not written in time: the peer does not read"
        case .unexpectedPeer(let expected, let actual):
            return "expected peer \(expected.description.escapedForTerminal), but the remote peer proved \(actual.description.escapedForTerminal)"
        case .forgedHello(let claimed, let proven):
            let claim = claimed.map { $0.description.escapedForTerminal } ?? "no peer id"
            let proof = proven.map { "the session proved \($0.description.escapedForTerminal)" } ?? "no handshake proved any"
            return "refused a hello naming \(claim): \(proof)"
        case .peerRefused(let peer, let reason):
            return "peer \(peer.description.escapedForTerminal) refused: \(reason)"
        case .peerRoutedElsewhere(let peer, let address):
            return "peer \(peer.description.escapedForTerminal) is already the route at \(address)"
        case .unverifiedAddress(let peer, let address):
            return "peer \(peer.description.escapedForTerminal) claims \(address), which this node could not verify by dialing it"
        }
    }
}

/// The description of `error`, safe to log or print: a ``P2PError`` escapes the texts it quotes
/// itself, anything else (a wire error, an I/O error, a protocol's own error) is escaped here; so
/// that text from a peer is escaped once, not twice.
func escapedDescription(of error: any Error) -> String {
    if let error = error as? P2PError { return error.description }
    return "\(error)".escapedForTerminal
}
