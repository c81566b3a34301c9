/// Errors that channels report through futures and `errorCaught`.
public enum ChannelError: Error, Sendable, Hashable, CustomStringConvertible {
    /// An operation was attempted on a channel that has closed.
    case ioOnClosedChannel
    /// The channel closed before a queued write was sent; the write was dropped.
    case closedBeforeWriteCompleted
    /// The channel is already closed, or closing.
    case alreadyClosed
    /// The output side was shut down, so nothing more can be written.
    case outputClosed
    /// Connecting to `address` was refused (nothing listens there).
    case connectionRefused(SocketAddress)
    /// The network or host at `address` is unreachable.
    case unreachable(SocketAddress)
    /// Connecting to `address` did not complete within `timeout`.
    case connectTimeout(SocketAddress, TimeAmount)
    /// Connecting to `address` failed for another reason (`errno` as reported by the kernel).
    case connectFailed(SocketAddress, IOError)
    /// The peer reset the connection.
    case connectionReset
    /// The operation is not supported by this kind of channel (say, connect on a listener).
    case operationUnsupported
    /// The channel is already bound or connected.
    case alreadyConnected

    public var description: String {
        switch self {
        case .ioOnClosedChannel: return "I/O on a closed channel"
        case .closedBeforeWriteCompleted: return "the channel closed before the write was sent"
        case .alreadyClosed: return "the channel is already closed"
        case .outputClosed: return "the channel's output is shut down"
        case .connectionRefused(let address): return "connection to \(address) refused"
        case .unreachable(let address): return "\(address) is unreachable"
        case .connectTimeout(let address, let timeout): return "connecting to \(address) timed out after \(timeout)"
        case .connectFailed(let address, let error): return "connecting to \(address) failed: \(error)"
        case .connectionReset: return "connection reset by peer"
        case .operationUnsupported: return "operation not supported by this channel"
        case .alreadyConnected: return "the channel is already connected"
        }
    }
}

/// Events a channel fires to its handlers' `userInboundEventTriggered`.
public enum ChannelEvent: Sendable, Hashable {
    /// The peer closed its output (end of stream) and the channel allows half-closure, so it stays open for writing.
    case inputClosed
    /// This side's output was shut down (after `close(mode: .output)`).
    case outputClosed
}
