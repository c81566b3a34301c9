import Glibc
import PheromonesCore

// The options of datagram sockets: broadcast, and multicast's loopback, time to live and interface.
// Set them through `DatagramBootstrap.socketOption(_:_:)` or on a live `DatagramChannel`
// (`setSocketOption(_:to:)`), and read them back with `socketOption(_:)`.

extension SocketOption where Value == Bool {
    /// `SO_BROADCAST`: the socket may send to a broadcast address.
    public static var broadcast: SocketOption<Bool> { .datagramFlag(SOL_SOCKET, SO_BROADCAST, "SO_BROADCAST") }
    /// `IP_MULTICAST_LOOP`: IPv4 multicast datagrams this socket sends are looped back to this
    /// host's members of the group (the kernel's default: on).
    public static var multicastLoopback: SocketOption<Bool> { .datagramFlag(CInt(IPPROTO_IP), IP_MULTICAST_LOOP, "IP_MULTICAST_LOOP") }
    /// `IPV6_MULTICAST_LOOP`: the same for IPv6 (default: on).
    public static var ipv6MulticastLoopback: SocketOption<Bool> {
        .datagramFlag(CInt(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, "IPV6_MULTICAST_LOOP")
    }

    private static func datagramFlag(_ level: CInt, _ name: CInt, _ description: String) -> SocketOption<Bool> {
        SocketOption(level: level, name: name, description: description, size: MemoryLayout<CInt>.size,
                     encode: { datagramIntegerBytes($0 ? 1 : 0) }, decode: { datagramOptionInteger(in: $0).map { $0 != 0 } })
    }
}

extension SocketOption where Value == Int {
    /// `IP_MULTICAST_TTL`: how many routers an IPv4 multicast datagram may cross (0 to 255; the
    /// kernel's default: 1, this network only).
    public static var multicastTimeToLive: SocketOption<Int> {
        .datagramInteger(CInt(IPPROTO_IP), IP_MULTICAST_TTL, "IP_MULTICAST_TTL", 0...255)
    }
    /// `IPV6_MULTICAST_HOPS`: the same for IPv6 (0 to 255, or -1 for the route's default).
    public static var ipv6MulticastHops: SocketOption<Int> {
        .datagramInteger(CInt(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, "IPV6_MULTICAST_HOPS", -1...255)
    }
    /// `IPV6_MULTICAST_IF`: the index of the interface IPv6 multicast datagrams leave by (0: the
    /// route's).
    public static var ipv6MulticastInterface: SocketOption<Int> {
        .datagramInteger(CInt(IPPROTO_IPV6), IPV6_MULTICAST_IF, "IPV6_MULTICAST_IF", 0...Int(CInt.max))
    }

    private static func datagramInteger(_ level: CInt, _ name: CInt, _ description: String, _ range: ClosedRange<Int>) -> SocketOption<Int> {
        SocketOption(level: level, name: name, description: description, size: MemoryLayout<CInt>.size,
                     encode: { range.contains($0) ? datagramIntegerBytes(CInt($0)) : nil },
                     decode: { datagramOptionInteger(in: $0).map { Int($0) } })
    }
}

extension SocketOption where Value == SocketAddress.IPv4 {
    /// `IP_MULTICAST_IF`: the local IPv4 address whose interface IPv4 multicast datagrams leave by
    /// (`0.0.0.0`: the route's). The port is ignored (read back as 0).
    public static var multicastInterface: SocketOption<SocketAddress.IPv4> {
        SocketOption(level: CInt(IPPROTO_IP), name: IP_MULTICAST_IF, description: "IP_MULTICAST_IF", size: MemoryLayout<in_addr>.size,
                     encode: { address in withUnsafeBytes(of: in_addr(s_addr: address.address)) { Array($0) } },
                     decode: { bytes in
                         guard bytes.count == MemoryLayout<in_addr>.size else { return nil }
                         return SocketAddress.IPv4(address: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }, port: 0)
                     })
    }
}

/// The bytes of a C `int`.
private func datagramIntegerBytes(_ value: CInt) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

/// A C `int` from exactly its bytes (a byte, for the IPv4 multicast options the kernel may return
/// as one).
private func datagramOptionInteger(in bytes: [UInt8]) -> CInt? {
    if bytes.count == 1 { return CInt(bytes[0]) }
    guard bytes.count == MemoryLayout<CInt>.size else { return nil }
    return bytes.withUnsafeBytes { $0.loadUnaligned(as: CInt.self) }
}
