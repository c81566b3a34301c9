import Glibc
import PheromonesCore

/// Settings of a UDP socket, chosen when a ``DatagramBootstrap`` creates it.
///
/// Memory is bounded by these, never by peers: a channel's receive slab is ``batchSize`` ×
/// ``maximumDatagramSize`` bytes (shared by the loop's datagram channels), its write queue at most
/// ``maximumQueuedBytes``.
public struct DatagramOptions: Sendable, Hashable {
    /// How many datagrams one `recvmmsg` or `sendmmsg` call may carry (1 to 1,024). Default: 32.
    public var batchSize = 32
    /// The largest datagram delivered whole, in bytes (1 to 65,535): each datagram of a batch is
    /// received into a slot of this size. A larger one arrives truncated (`MSG_TRUNC`): it is
    /// dropped and counted (``DatagramChannel/truncatedDatagrams``), never delivered as if whole.
    /// Default: 2,048 (an Ethernet MTU's datagram fits; so does anything on a typical path).
    public var maximumDatagramSize = 2048
    /// How many `recvmmsg` calls one readiness event may make before the loop serves other channels.
    public var maxReadsPerWakeup = 4
    /// Read whenever datagrams arrive. When off, the channel reads only after `read()`.
    public var autoRead = true
    /// The queued-bytes levels at which the channel turns unwritable (above `high`) and writable
    /// again (below `low`).
    public var writeBufferWaterMark = WriteBufferWaterMark(low: 64 * 1024, high: 256 * 1024)
    /// The hard bound of the write queue, in bytes: a write that would pass it fails at once with
    /// ``DatagramError/writeQueueFull(limit:)`` (the datagram is dropped). Default: 4 MiB.
    public var maximumQueuedBytes = 4 << 20
    /// `SO_REUSEADDR`. Default: off.
    public var reuseAddress = false
    /// `SO_REUSEPORT`: several sockets may bind the same port. Default: off.
    public var reusePort = false
    /// The kernel receive buffer (`SO_RCVBUF`), or nil for the system default.
    public var receiveBufferSize: Int?
    /// The kernel send buffer (`SO_SNDBUF`), or nil for the system default.
    public var sendBufferSize: Int?
    /// Generic segmentation offload (`UDP_SEGMENT`): consecutive flushed datagrams to one address,
    /// of one size (the last of a run may be shorter), leave in one `sendmmsg` entry that the
    /// kernel (or the network card) cuts into datagrams: the receiver still sees each datagram as
    /// sent, and the kernel's per-datagram cost is paid once per run. Used only when the kernel has
    /// it (found at run time); a send it refuses is offered again one entry per datagram, and the
    /// channel stops segmenting. Default: on (a server answering bursts from one peer, or echoing,
    /// sends such runs); off, one entry per datagram.
    public var segmentationOffload = true
    /// Generic receive offload (`UDP_GRO`): the kernel may coalesce datagrams of one flow into one
    /// read, which the channel cuts back into the original datagrams before delivering them. Each
    /// receive slot then holds 64 KiB (the slab grows to ``batchSize`` × 64 KiB: lower the batch).
    /// Used only when the kernel has it. Default: off.
    public var receiveOffload = false
    /// Further options (``SocketOption``), applied in order after the ones above, before binding.
    var additional: [AppliedSocketOption] = []

    /// The defaults.
    public init() {}

    /// Adds `option`, set to `value` on the socket before it binds.
    public mutating func set<Value>(_ option: SocketOption<Value>, _ value: Value) {
        additional.append(AppliedSocketOption(option, value))
    }

    /// The batch, clamped to what one call may carry.
    var effectiveBatchSize: Int { min(max(batchSize, 1), 1024) }
    /// The receive slot, clamped to a UDP payload's range.
    var effectiveDatagramSize: Int { min(max(maximumDatagramSize, 1), 65_535) }

    /// Applies the socket-level options to `fd`, through `posix`.
    func apply(to fd: CInt, using posix: Posix) throws {
        if reuseAddress { try posix.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1) }
        if reusePort { try posix.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
        if let size = receiveBufferSize { try posix.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, value: CInt(clamping: size)) }
        if let size = sendBufferSize { try posix.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, value: CInt(clamping: size)) }
        try additional.apply(to: fd, using: posix)
    }
}
