import PheromonesCore

/// What goes wrong with one datagram, or with the traffic of a datagram socket, without closing
/// its ``DatagramChannel``: a datagram socket does not die of one bad datagram.
public enum DatagramError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kernel refused to send the datagram to `target` (nil: the connected peer): too large
    /// (`EMSGSIZE`), refused by a connected peer's host (`ECONNREFUSED`, reported for an earlier
    /// datagram), unreachable, of the wrong address family. The write's promise fails with it.
    case sendFailed(IOError, target: SocketAddress?)
    /// The channel's write queue already holds its bound (``DatagramOptions/maximumQueuedBytes``):
    /// the datagram was dropped, as a full socket buffer drops one.
    case writeQueueFull(limit: Int)
    /// A plain `ByteBuffer` was written to a channel that is not connected: it has nowhere to go.
    case notConnected
    /// The socket reported an error for earlier traffic while receiving (an ICMP port unreachable
    /// makes a connected socket's next receive say `ECONNREFUSED`). Fired through `errorCaught`;
    /// the channel goes on.
    case receiveFailed(IOError)

    public var description: String {
        switch self {
        case .sendFailed(let error, let target):
            return "sending a datagram\(target.map { " to \($0)" } ?? "") failed: \(error)"
        case .writeQueueFull(let limit): return "the datagram write queue is full (\(limit) bytes): the datagram was dropped"
        case .notConnected: return "a plain ByteBuffer was written to a datagram channel that is not connected"
        case .receiveFailed(let error): return "the datagram socket reported an error: \(error)"
        }
    }
}
