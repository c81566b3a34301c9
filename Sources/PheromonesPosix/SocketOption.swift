import Glibc
import PheromonesCore

/// A socket option with a typed value: set when a bootstrap creates a socket
/// (``ServerBootstrap/childSocketOption(_:_:)``, ``ClientBootstrap/socketOption(_:_:)``), or on a
/// live channel (``SocketOptionProvider/setSocketOption(_:to:)``), and read back
/// (``SocketOptionProvider/socketOption(_:)``).
///
/// ```swift
/// ServerBootstrap(group: group)
///     .childSocketOption(.keepAlive, true)
///     .childSocketOption(.keepAliveIdle, .seconds(30))
///     .childSocketOption(.tcpUserTimeout, .seconds(20))
/// try await channel.setSocketOption(.linger, to: Linger(timeout: .zero)).get()   // reset on close
/// ```
///
/// Anything else the kernel offers goes through ``raw(level:name:)``, as bytes laid out as the
/// option's C type.
public struct SocketOption<Value: Sendable>: Sendable, CustomStringConvertible {
    /// The `setsockopt(2)` level (`SOL_SOCKET`, `IPPROTO_TCP`, ...).
    public let level: CInt
    /// The option's name at that level (`SO_KEEPALIVE`, `TCP_NODELAY`, ...).
    public let name: CInt
    /// What the option is called, for errors and logs.
    public let description: String
    /// The bytes `setsockopt` takes for a value, or nil for a value the option cannot take.
    let encode: @Sendable (Value) -> [UInt8]?
    /// The value of the bytes `getsockopt` returned, or nil if they are not one.
    let decode: @Sendable ([UInt8]) -> Value?
    /// How many bytes `getsockopt` may return.
    let size: Int

    init(level: CInt, name: CInt, description: String, size: Int,
         encode: @escaping @Sendable (Value) -> [UInt8]?, decode: @escaping @Sendable ([UInt8]) -> Value?) {
        self.level = level
        self.name = name
        self.description = description
        self.size = size
        self.encode = encode
        self.decode = decode
    }

    /// The option's bytes for `value`.
    ///
    /// - Throws: ``SocketOptionError/invalidValue(option:value:)`` for a value it cannot take.
    func bytes(for value: Value) throws(SocketOptionError) -> [UInt8] {
        guard let bytes = encode(value) else { throw .invalidValue(option: description, value: "\(value)") }
        return bytes
    }
}

/// Why a socket option could not be set or read.
public enum SocketOptionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The option cannot take this value (out of its range).
    case invalidValue(option: String, value: String)
    /// The kernel returned bytes that are not a value of the option's type.
    case unreadableValue(option: String)

    public var description: String {
        switch self {
        case .invalidValue(let option, let value): return "\(option) cannot be set to \(value)"
        case .unreadableValue(let option): return "\(option): the kernel's value is not of the option's type"
        }
    }
}

/// `SO_LINGER`: how long `close` waits for unsent data. A timeout of zero makes a close send a reset.
public struct Linger: Sendable, Hashable {
    /// Whole seconds (what the kernel keeps).
    public var timeout: TimeAmount

    /// Lingering for `timeout`, rounded down to whole seconds.
    public init(timeout: TimeAmount) { self.timeout = timeout }
}

// MARK: - The options

extension SocketOption where Value == Bool {
    /// `TCP_NODELAY`: small writes leave at once instead of waiting to be coalesced (Nagle).
    public static var tcpNoDelay: SocketOption<Bool> { .flag(CInt(IPPROTO_TCP), TCP_NODELAY, "TCP_NODELAY") }
    /// `SO_KEEPALIVE`: probe an idle connection, and fail it when the peer has gone.
    public static var keepAlive: SocketOption<Bool> { .flag(SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE") }
    /// `SO_REUSEADDR`: a listener may bind while old connections linger in TIME_WAIT.
    public static var reuseAddress: SocketOption<Bool> { .flag(SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR") }
    /// `SO_REUSEPORT`: several sockets may bind the same port (set before binding).
    public static var reusePort: SocketOption<Bool> { .flag(SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT") }

    private static func flag(_ level: CInt, _ name: CInt, _ description: String) -> SocketOption<Bool> {
        SocketOption(level: level, name: name, description: description, size: MemoryLayout<CInt>.size,
                     encode: { integerBytes($0 ? 1 : 0) }, decode: { optionInteger(in: $0).map { $0 != 0 } })
    }
}

extension SocketOption where Value == TimeAmount {
    /// `TCP_KEEPIDLE`: how long a connection is idle before the first keep-alive probe (whole
    /// seconds, at least one).
    public static var keepAliveIdle: SocketOption<TimeAmount> { .seconds(CInt(IPPROTO_TCP), TCP_KEEPIDLE, "TCP_KEEPIDLE") }
    /// `TCP_KEEPINTVL`: the time between keep-alive probes (whole seconds, at least one).
    public static var keepAliveInterval: SocketOption<TimeAmount> { .seconds(CInt(IPPROTO_TCP), TCP_KEEPINTVL, "TCP_KEEPINTVL") }
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the kernel fails the
    /// connection (milliseconds; zero for the system's default).
    public static var tcpUserTimeout: SocketOption<TimeAmount> {
        SocketOption(level: CInt(IPPROTO_TCP), name: TCP_USER_TIMEOUT, description: "TCP_USER_TIMEOUT", size: MemoryLayout<CInt>.size,
                     encode: { amount in
                         let milliseconds = amount.nanoseconds / 1_000_000
                         return (0...Int64(CInt.max)).contains(milliseconds) ? integerBytes(CInt(milliseconds)) : nil
                     },
                     decode: { optionInteger(in: $0).map { .milliseconds(Int64($0)) } })
    }

    private static func seconds(_ level: CInt, _ name: CInt, _ description: String) -> SocketOption<TimeAmount> {
        SocketOption(level: level, name: name, description: description, size: MemoryLayout<CInt>.size,
                     encode: { amount in
                         let seconds = amount.nanoseconds / 1_000_000_000
                         return (1...Int64(Int16.max)).contains(seconds) ? integerBytes(CInt(seconds)) : nil
                     },
                     decode: { optionInteger(in: $0).map { .seconds(Int64($0)) } })
    }
}

extension SocketOption where Value == Int {
    /// `TCP_KEEPCNT`: how many unanswered keep-alive probes fail the connection (1 to 127).
    public static var keepAliveCount: SocketOption<Int> { .integer(CInt(IPPROTO_TCP), TCP_KEEPCNT, "TCP_KEEPCNT", 1...127) }
    /// `SO_RCVBUF`: the kernel's receive buffer, in bytes (the kernel doubles what it is given, for
    /// its own bookkeeping, and reports the doubled size).
    public static var receiveBufferSize: SocketOption<Int> { .integer(SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF", 1...Int(CInt.max)) }
    /// `SO_SNDBUF`: the kernel's send buffer, in bytes (doubled as for ``receiveBufferSize``).
    public static var sendBufferSize: SocketOption<Int> { .integer(SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF", 1...Int(CInt.max)) }
    /// `IP_TOS`: the IPv4 type-of-service byte (DSCP and ECN) of outgoing packets.
    public static var ipTypeOfService: SocketOption<Int> { .integer(CInt(IPPROTO_IP), IP_TOS, "IP_TOS", 0...255) }

    private static func integer(_ level: CInt, _ name: CInt, _ description: String, _ range: ClosedRange<Int>) -> SocketOption<Int> {
        SocketOption(level: level, name: name, description: description, size: MemoryLayout<CInt>.size,
                     encode: { range.contains($0) ? integerBytes(CInt($0)) : nil },
                     decode: { optionInteger(in: $0).map { Int($0) } })
    }
}

extension SocketOption where Value == Linger? {
    /// `SO_LINGER`: nil for the default (a close returns at once and the kernel sends what is left
    /// in the background), or how long a close waits for unsent data; zero resets the connection.
    public static var linger: SocketOption<Linger?> {
        SocketOption(level: SOL_SOCKET, name: SO_LINGER, description: "SO_LINGER", size: MemoryLayout<Glibc.linger>.size,
                     encode: { value in
                         guard let value else { return optionBytes(of: Glibc.linger(l_onoff: 0, l_linger: 0)) }
                         let seconds = value.timeout.nanoseconds / 1_000_000_000
                         guard (0...Int64(CInt.max)).contains(seconds) else { return nil }
                         return optionBytes(of: Glibc.linger(l_onoff: 1, l_linger: CInt(seconds)))
                     },
                     decode: { raw in
                         guard raw.count == MemoryLayout<Glibc.linger>.size else { return nil }
                         let value = raw.withUnsafeBytes { $0.loadUnaligned(as: Glibc.linger.self) }
                         return .some(value.l_onoff == 0 ? nil : Linger(timeout: .seconds(Int64(value.l_linger))))
                     })
    }
}

extension SocketOption where Value == [UInt8] {
    /// Any option, as the bytes of its C type: the escape hatch for what has no typed form here.
    /// Reading returns up to 256 bytes.
    public static func raw(level: CInt, name: CInt) -> SocketOption<[UInt8]> {
        SocketOption(level: level, name: name, description: "socket option \(level)/\(name)", size: 256,
                     encode: { $0 }, decode: { $0 })
    }
}

/// The bytes of a C `int`.
private func integerBytes(_ value: CInt) -> [UInt8] { optionBytes(of: value) }

/// A C `int` from exactly its bytes.
private func optionInteger(in bytes: [UInt8]) -> CInt? {
    guard bytes.count == MemoryLayout<CInt>.size else { return nil }
    return bytes.withUnsafeBytes { $0.loadUnaligned(as: CInt.self) }
}

private func optionBytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}
