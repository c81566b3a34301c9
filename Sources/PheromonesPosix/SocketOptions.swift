import Glibc
import PheromonesCore

/// Settings of a TCP connection, chosen when it is created (by a bootstrap).
public struct SocketOptions: Sendable, Hashable {
    /// Disable Nagle's algorithm (`TCP_NODELAY`) so small messages leave at once. Default: on.
    public var tcpNoDelay = true
    /// TCP keep-alive probes (`SO_KEEPALIVE`). Default: off.
    public var keepAlive = false
    /// The kernel receive buffer (`SO_RCVBUF`), or nil for the system default.
    public var receiveBufferSize: Int?
    /// The kernel send buffer (`SO_SNDBUF`), or nil for the system default.
    public var sendBufferSize: Int?
    /// Read whenever data arrives. When off, the channel reads only after `read()`, which is how a
    /// consumer applies backpressure to the socket.
    public var autoRead = true
    /// When the peer closes its output, keep the channel open for writing and fire
    /// `ChannelEvent.inputClosed` instead of closing. Default: off.
    public var allowRemoteHalfClosure = false
    /// The queued-bytes levels at which the channel turns unwritable (above `high`) and writable
    /// again (below `low`).
    public var writeBufferWaterMark = WriteBufferWaterMark(low: 32 * 1024, high: 64 * 1024)
    /// How many `read(2)` calls one readiness event may make before the loop serves other channels.
    public var maxReadsPerWakeup = 4
    /// How long a client connect may take before it fails with `ChannelError.connectTimeout(_:_:)`.
    public var connectTimeout: TimeAmount = .seconds(10)
    /// Further options (``SocketOption``), applied in order after the ones above.
    var additional: [AppliedSocketOption] = []

    /// The defaults.
    public init() {}

    /// Adds `option`, set to `value` on every socket these options apply to.
    public mutating func set<Value>(_ option: SocketOption<Value>, _ value: Value) {
        additional.append(AppliedSocketOption(option, value))
    }
}

/// The levels of queued outbound bytes that drive `Channel.isWritable`.
public struct WriteBufferWaterMark: Sendable, Hashable {
    /// Below this the channel becomes writable again.
    public var low: Int
    /// Above this the channel becomes unwritable.
    public var high: Int

    /// Creates water marks; `low` must not exceed `high`.
    public init(low: Int, high: Int) {
        precondition(low >= 0 && low <= high, "the low water mark must be between 0 and the high one")
        self.low = low
        self.high = high
    }
}

/// Settings of a listening socket.
public struct ServerSocketOptions: Sendable, Hashable {
    /// The `listen(2)` backlog, or nil for the system's `somaxconn` (4096 if unknown).
    public var backlog: Int?
    /// `SO_REUSEADDR`, so a restarted server can bind while old connections linger in TIME_WAIT. Default: on.
    public var reuseAddress = true
    /// `SO_REUSEPORT`, so several listeners (processes or loops) can share the port. Default: off.
    public var reusePort = false
    /// Bind one `SO_REUSEPORT` listener on every loop of the child group, each keeping its
    /// connections on its own loop (the kernel spreads connections over the listeners by hash),
    /// instead of one listener handing connections to the loops round robin. Default: off.
    public var listenerPerLoop = false
    /// How many connections one readiness event may accept before the loop serves other channels.
    public var maxAcceptsPerWakeup = 64
    /// How long to stop accepting when the process runs out of descriptors (`EMFILE`/`ENFILE`).
    public var acceptBackoff: TimeAmount = .milliseconds(100)
    /// Further options (``SocketOption``) of the listening socket, applied before it binds.
    var additional: [AppliedSocketOption] = []

    /// The defaults.
    public init() {}

    /// Adds `option`, set to `value` on the listening socket before it binds.
    public mutating func set<Value>(_ option: SocketOption<Value>, _ value: Value) {
        additional.append(AppliedSocketOption(option, value))
    }
}

/// An option and the bytes of its value, or why the value is not one it can take (reported when
/// the bootstrap binds or connects, before any socket is made).
struct AppliedSocketOption: Sendable, Hashable {
    let level: CInt
    let name: CInt
    let bytes: Result<[UInt8], SocketOptionError>

    init<Value>(_ option: SocketOption<Value>, _ value: Value) {
        level = option.level
        name = option.name
        do throws(SocketOptionError) {
            bytes = .success(try option.bytes(for: value))
        } catch {
            bytes = .failure(error)
        }
    }

    /// Sets the option on `fd`.
    func apply(to fd: CInt, using posix: Posix) throws {
        try posix.setOption(fd, level: level, name: name, bytes: bytes.get())
    }
}

extension [AppliedSocketOption] {
    /// The first value that is not one its option can take.
    var firstInvalid: SocketOptionError? {
        for option in self { if case .failure(let error) = option.bytes { return error } }
        return nil
    }

    func apply(to fd: CInt, using posix: Posix) throws {
        for option in self { try option.apply(to: fd, using: posix) }
    }
}

extension SocketOptions {
    /// Applies the socket-level options to `fd`, through `posix`; the TCP ones only to an internet
    /// socket (`isInternet`), not to a Unix domain one, which has no TCP.
    func apply(to fd: CInt, isInternet: Bool, using posix: Posix) throws {
        if tcpNoDelay, isInternet { try posix.setOption(fd, level: CInt(IPPROTO_TCP), name: TCP_NODELAY, value: 1) }
        if keepAlive, isInternet { try posix.setOption(fd, level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1) }
        if let size = receiveBufferSize { try posix.setOption(fd, level: SOL_SOCKET, name: SO_RCVBUF, value: CInt(clamping: size)) }
        if let size = sendBufferSize { try posix.setOption(fd, level: SOL_SOCKET, name: SO_SNDBUF, value: CInt(clamping: size)) }
        try additional.apply(to: fd, using: posix)
    }
}

/// Socket options shared by all the channels one bootstrap creates, so that each connection holds
/// a reference instead of its own copy (memory per idle connection matters).
final class SharedSocketOptions: Sendable {
    let value: SocketOptions
    init(_ value: SocketOptions) { self.value = value }
}
