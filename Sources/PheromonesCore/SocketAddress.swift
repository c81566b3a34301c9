import Glibc

/// A socket address: numeric IPv4 or IPv6 (address plus port, stored without any allocation), or
/// a Unix domain socket's path.
///
/// Parse one with ``init(ipAddress:port:)`` or ``init(parsing:)`` (numeric literals only; host
/// names are resolved by `SocketAddress.resolve` in `PheromonesPosix`), make a Unix one with
/// ``unixDomain(path:)`` or ``unixDomain(abstractName:)``, or read one back from the kernel with
/// ``init(storage:)`` / ``init(sockaddr:length:)``. `description` prints `127.0.0.1:8080`,
/// `[::1]:8080`, `/run/app.sock` or `@app` (an abstract name).
public enum SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// An IPv4 address and port.
    case v4(IPv4)
    /// An IPv6 address, port and scope (zone) ID.
    case v6(IPv6)
    /// A Unix domain socket: a file system path, or a name in Linux's abstract namespace.
    case unix(UnixDomain)

    /// A Unix domain socket's address.
    public struct UnixDomain: Sendable, Hashable {
        /// The path's bytes; for an abstract address, the name (without the leading NUL the kernel
        /// uses to tell it apart); empty for an unnamed socket (a client's end, say).
        public let path: [UInt8]
        /// Whether the name lives in Linux's abstract namespace (no file, gone with the socket).
        public let isAbstract: Bool

        /// The most bytes a path holds (`sun_path` is 108 bytes, one of which ends the path, or
        /// starts an abstract name).
        public static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

        /// `path`'s bytes, as they are; `isAbstract` for a name in the abstract namespace.
        public init(path: [UInt8], isAbstract: Bool) {
            self.path = path
            self.isAbstract = isAbstract
        }

        /// The address as a kernel `sockaddr_un` and its length (exactly the path, for an
        /// abstract name: its bytes after the NUL are part of it).
        @usableFromInline
        var sockaddrUn: (sockaddr_un, socklen_t) {
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let start = isAbstract ? 1 : 0
            withUnsafeMutableBytes(of: &address.sun_path) { bytes in
                for (index, byte) in path.prefix(Self.maximumPathLength).enumerated() { bytes[start + index] = byte }
            }
            let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
            let length = pathOffset + start + min(path.count, Self.maximumPathLength) + (isAbstract ? 0 : 1)
            return (address, socklen_t(length))
        }

        /// Reads `length` bytes of a kernel `sockaddr_un` at `raw`. Only an exact `length` (what the
        /// kernel said) tells an abstract name's end; without one, a path ends at its NUL, and one
        /// that starts with NUL is unnamed.
        @usableFromInline
        init(raw: UnsafeRawPointer, length: Int, exactLength: Bool) {
            let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path) ?? 2
            let count = max(0, min(length - pathOffset, Self.maximumPathLength + 1))
            let bytes = (0..<count).map { raw.load(fromByteOffset: pathOffset + $0, as: UInt8.self) }
            if exactLength, let first = bytes.first, first == 0, count > 1 {
                self.init(path: Array(bytes.dropFirst()), isAbstract: true)
            } else {
                self.init(path: Array(bytes.prefix { $0 != 0 }), isAbstract: false)
            }
        }
    }

    /// The Unix domain socket at file system `path`.
    ///
    /// - Throws: ``AddressError/invalidUnixPath(_:maximum:)`` for an empty path, one longer than
    ///   ``UnixDomain/maximumPathLength`` bytes, or one holding a NUL.
    public static func unixDomain(path: String) throws(AddressError) -> SocketAddress {
        .unix(UnixDomain(path: try checkedUnixPath(path), isAbstract: false))
    }

    /// The Unix domain socket named `name` in Linux's abstract namespace: no file, and nothing to
    /// clean up; gone when the socket closes.
    ///
    /// - Throws: ``AddressError/invalidUnixPath(_:maximum:)`` as for ``unixDomain(path:)``.
    public static func unixDomain(abstractName name: String) throws(AddressError) -> SocketAddress {
        .unix(UnixDomain(path: try checkedUnixPath(name), isAbstract: true))
    }

    private static func checkedUnixPath(_ path: String) throws(AddressError) -> [UInt8] {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= UnixDomain.maximumPathLength, !bytes.contains(0) else {
            throw .invalidUnixPath(path, maximum: UnixDomain.maximumPathLength)
        }
        return bytes
    }

    /// An IPv4 address and port.
    public struct IPv4: Sendable, Hashable {
        /// The address in network byte order, exactly as in `in_addr.s_addr`
        /// (so `127.0.0.1` is stored as the bytes `7f 00 00 01`).
        public var address: UInt32
        /// The port, in host byte order.
        public var port: UInt16

        /// Makes an address from `address` in network byte order (as in `in_addr.s_addr`) and `port`.
        @inlinable
        public init(address: UInt32, port: UInt16) {
            self.address = address
            self.port = port
        }

        /// Makes `a.b.c.d:port`.
        @inlinable
        public init(octets: (UInt8, UInt8, UInt8, UInt8), port: UInt16) {
            let value = UInt32(octets.0) << 24 | UInt32(octets.1) << 16 | UInt32(octets.2) << 8 | UInt32(octets.3)
            self.init(address: value.bigEndian, port: port)
        }

        /// Reads a kernel `sockaddr_in` (port and address in network byte order).
        @inlinable
        public init(_ sin: sockaddr_in) {
            self.init(address: sin.sin_addr.s_addr, port: UInt16(bigEndian: sin.sin_port))
        }

        /// The four octets of the address, most significant first (`127.0.0.1` is `(127, 0, 0, 1)`).
        @inlinable
        public var octets: (UInt8, UInt8, UInt8, UInt8) {
            let value = UInt32(bigEndian: address)
            return (UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
                    UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value))
        }

        /// The address as a kernel `sockaddr_in`.
        @inlinable
        public var sockaddrIn: sockaddr_in {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            sin.sin_addr = in_addr(s_addr: address)
            return sin
        }
    }

    /// An IPv6 address, port and scope ID.
    ///
    /// The 16 address bytes are held as two big-endian numbers: `high` is bytes 0..<8 and `low` is
    /// bytes 8..<16, so `::1` is `high == 0, low == 1`.
    public struct IPv6: Sendable, Hashable {
        /// Address bytes 0..<8 read as a big-endian number.
        public var high: UInt64
        /// Address bytes 8..<16 read as a big-endian number.
        public var low: UInt64
        /// The port, in host byte order.
        public var port: UInt16
        /// The scope (zone) ID, an interface index; 0 when unscoped.
        public var scopeID: UInt32

        /// Makes an address from its two big-endian halves, `port` and `scopeID`.
        @inlinable
        public init(high: UInt64, low: UInt64, port: UInt16, scopeID: UInt32 = 0) {
            self.high = high
            self.low = low
            self.port = port
            self.scopeID = scopeID
        }

        /// Reads a kernel `sockaddr_in6` (port and address in network byte order; flow info is dropped).
        @inlinable
        public init(_ sin6: sockaddr_in6) {
            var addr = sin6.sin6_addr
            let (high, low) = withUnsafeBytes(of: &addr) { raw in
                (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                 UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            self.init(high: high, low: low, port: UInt16(bigEndian: sin6.sin6_port), scopeID: sin6.sin6_scope_id)
        }

        /// The address as a kernel `in6_addr`.
        @inlinable
        public var in6Addr: in6_addr {
            var addr = in6_addr()
            withUnsafeMutableBytes(of: &addr) { raw in
                raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
                raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            return addr
        }

        /// The address as a kernel `sockaddr_in6` (flow info 0).
        @inlinable
        public var sockaddrIn6: sockaddr_in6 {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = port.bigEndian
            sin6.sin6_flowinfo = 0
            sin6.sin6_addr = in6Addr
            sin6.sin6_scope_id = scopeID
            return sin6
        }
    }

    // MARK: - Making addresses

    /// Parses a numeric IPv4 (`"10.0.0.1"`) or IPv6 (`"::1"`, `"fe80::1%2"`, `"fe80::1%lo"`) literal.
    ///
    /// No brackets and no host names. An IPv6 `%zone` may be an interface index or an interface
    /// name; a name is looked up with `if_nametoindex` (a small local query, no network traffic).
    ///
    /// - Throws: ``AddressError/empty`` for `""`, ``AddressError/portOutOfRange(_:)`` when `port` is
    ///   outside 0...65535, ``AddressError/invalidIPAddress(_:)`` for anything else that is not a
    ///   numeric literal.
    public init(ipAddress: String, port: Int) throws(AddressError) {
        guard (0...65535).contains(port) else { throw .portOutOfRange(String(port)) }
        guard !ipAddress.isEmpty else { throw .empty }
        guard let address = Self.parseNumeric(ipAddress, port: UInt16(port)) else {
            throw .invalidIPAddress(ipAddress)
        }
        self = address
    }

    /// Parses `"1.2.3.4:80"`, `"[::1]:80"` or `"[fe80::1%lo]:80"` (numeric hosts only).
    ///
    /// - Throws: the errors of ``splitHostPort(_:)``, then ``AddressError/invalidIPAddress(_:)``
    ///   (naming the host) when the host is not a numeric literal.
    public init(parsing text: String) throws(AddressError) {
        let (host, port) = try Self.splitHostPort(text)
        self = try SocketAddress(ipAddress: host, port: port)
    }

    /// Reads an address the kernel filled in (from `getsockname`, `accept`, `recvfrom`, ...).
    ///
    /// Returns `nil` for families other than `AF_INET`, `AF_INET6` and `AF_UNIX`.
    @inlinable
    public init?(storage: UnsafePointer<sockaddr_storage>) {
        self.init(raw: UnsafeRawPointer(storage), length: MemoryLayout<sockaddr_storage>.size, exactLength: false)
    }

    /// Reads an address of `length` bytes at `sockaddr`.
    ///
    /// Returns `nil` for families other than `AF_INET`, `AF_INET6` and `AF_UNIX`, or when `length` is too short
    /// for the family.
    @inlinable
    public init?(sockaddr: UnsafePointer<sockaddr>, length: socklen_t) {
        self.init(raw: UnsafeRawPointer(sockaddr), length: Int(length), exactLength: true)
    }

    /// Reads the bytes as untyped memory, so the pointer may be bound to any of the sockaddr types.
    @usableFromInline
    init?(raw: UnsafeRawPointer, length: Int, exactLength: Bool) {
        let familyOffset = MemoryLayout<sockaddr>.offset(of: \.sa_family) ?? 0
        guard length >= familyOffset + MemoryLayout<sa_family_t>.size else { return nil }
        switch CInt(raw.loadUnaligned(fromByteOffset: familyOffset, as: sa_family_t.self)) {
        case AF_INET:
            guard length >= MemoryLayout<sockaddr_in>.size else { return nil }
            self = .v4(IPv4(raw.loadUnaligned(as: sockaddr_in.self)))
        case AF_INET6:
            guard length >= MemoryLayout<sockaddr_in6>.size else { return nil }
            self = .v6(IPv6(raw.loadUnaligned(as: sockaddr_in6.self)))
        case AF_UNIX:
            self = .unix(UnixDomain(raw: raw, length: min(length, MemoryLayout<sockaddr_un>.size), exactLength: exactLength))
        default:
            return nil
        }
    }

    /// `127.0.0.1:port`.
    ///
    /// - Precondition: `port` is in 0...65535.
    @inlinable
    public static func loopbackV4(port: Int) -> SocketAddress {
        .v4(IPv4(octets: (127, 0, 0, 1), port: checkedPort(port)))
    }

    /// `0.0.0.0:port` (every IPv4 interface, for listening).
    ///
    /// - Precondition: `port` is in 0...65535.
    @inlinable
    public static func anyV4(port: Int) -> SocketAddress {
        .v4(IPv4(address: 0, port: checkedPort(port)))
    }

    /// `[::1]:port`.
    ///
    /// - Precondition: `port` is in 0...65535.
    @inlinable
    public static func loopbackV6(port: Int) -> SocketAddress {
        .v6(IPv6(high: 0, low: 1, port: checkedPort(port)))
    }

    /// `[::]:port` (every IPv6 interface, for listening).
    ///
    /// - Precondition: `port` is in 0...65535.
    @inlinable
    public static func anyV6(port: Int) -> SocketAddress {
        .v6(IPv6(high: 0, low: 0, port: checkedPort(port)))
    }

    /// `port` as a `UInt16`, trapping with a readable message when it is outside 0...65535.
    @usableFromInline
    static func checkedPort(_ port: Int) -> UInt16 {
        precondition((0...65535).contains(port), "port \(port) is out of range 0...65535")
        return UInt16(port)
    }

    // MARK: - Reading addresses

    /// The port, 0...65535 (0 for a Unix domain socket, which has none).
    @inlinable
    public var port: Int {
        switch self {
        case .v4(let a): return Int(a.port)
        case .v6(let a): return Int(a.port)
        case .unix: return 0
        }
    }

    /// `AF_INET`, `AF_INET6` or `AF_UNIX`, for `socket(2)`.
    @inlinable
    public var protocolFamily: CInt {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        case .unix: return AF_UNIX
        }
    }

    /// Whether this is an IPv4 or IPv6 address (TCP options apply), not a Unix domain socket.
    @inlinable
    public var isInternet: Bool {
        if case .unix = self { return false }
        return true
    }

    /// The numeric address as text (`inet_ntop`): `"127.0.0.1"`, `"::1"`, or `"fe80::1%2"` when an
    /// IPv6 address has a scope ID (printed as its number, so no interface lookup happens).
    public var ipAddress: String {
        // INET6_ADDRSTRLEN (46) covers both families, including the terminating NUL.
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { buffer in
            let text: String
            switch self {
            case .v4(let a):
                var addr = in_addr(s_addr: a.address)
                text = inet_ntop(AF_INET, &addr, buffer.baseAddress, socklen_t(buffer.count))
                    .map { String(cString: $0) } ?? "?"
            case .v6(let a):
                var addr = a.in6Addr
                let base = inet_ntop(AF_INET6, &addr, buffer.baseAddress, socklen_t(buffer.count))
                    .map { String(cString: $0) } ?? "?"
                text = a.scopeID == 0 ? base : "\(base)%\(a.scopeID)"
            case .unix:
                text = ""
            }
            return text
        }
    }

    /// `"127.0.0.1:8080"`, `"[::1]:8080"`, a Unix socket's path, `"@name"` for an abstract one,
    /// or `"(unnamed)"`.
    public var description: String {
        switch self {
        case .v4: return "\(ipAddress):\(port)"
        case .v6: return "[\(ipAddress)]:\(port)"
        case .unix(let unix):
            if unix.path.isEmpty, !unix.isAbstract { return "(unnamed)" }
            return (unix.isAbstract ? "@" : "") + String(decoding: unix.path, as: UTF8.self)
        }
    }

    /// Calls `body` with this address as a kernel `sockaddr` and its length, for `bind`, `connect`
    /// and `sendto`. The pointer is valid only during `body`.
    @inlinable
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        switch self {
        case .v4(let a):
            var sin = a.sockaddrIn
            return try withUnsafePointer(to: &sin) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    try body(sa, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .v6(let a):
            var sin6 = a.sockaddrIn6
            return try withUnsafePointer(to: &sin6) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    try body(sa, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        case .unix(let unix):
            var (sun, length) = unix.sockaddrUn
            return try withUnsafePointer(to: &sun) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in try body(sa, length) }
            }
        }
    }

    // MARK: - Splitting "host:port"

    /// Splits `"host:port"` or `"[ipv6-address]:port"` into host (brackets removed) and port.
    ///
    /// Nothing is trimmed and the host is not checked: it may be a name or a numeric literal. The
    /// port must be plain decimal digits in 0...65535.
    ///
    /// - Throws: ``AddressError/empty`` for `""`; ``AddressError/missingPort(_:)`` for `"host"`,
    ///   `"host:"`, `"[::1]"`; ``AddressError/missingHost(_:)`` for `":80"`, `"[]:80"`;
    ///   ``AddressError/invalidPort(_:)`` for `"host:abc"`; ``AddressError/portOutOfRange(_:)`` for
    ///   `"host:70000"`; ``AddressError/ambiguousIPv6(_:)`` for `"::1:80"` (bare IPv6 with a port);
    ///   ``AddressError/invalidIPAddress(_:)`` for an unclosed `"[::1"` or a bracket inside the
    ///   host (`"[[::1]:80"`, `"a]b:80"`).
    public static func splitHostPort(_ text: String) throws(AddressError) -> (host: String, port: Int) {
        guard !text.isEmpty else { throw .empty }
        // In ASCII text every byte is a Character, so the delimiters are searched byte by byte
        // rather than Character by Character (grapheme breaking, for an address sent with every
        // greeting); other text keeps the Character search (a delimiter that a combining mark
        // follows is no delimiter).
        let isASCII = text.utf8.allSatisfy { $0 < 0x80 }
        func find(_ delimiter: UInt8, in part: Substring) -> String.Index? {
            isASCII ? part.utf8.firstIndex(of: delimiter) : part.firstIndex(of: Character(Unicode.Scalar(delimiter)))
        }
        let host: Substring
        let portText: Substring
        if text.utf8.first == UInt8(ascii: "[") {
            guard let close = find(UInt8(ascii: "]"), in: text[...]) else { throw .invalidIPAddress(text) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.utf8.first == UInt8(ascii: ":") else { throw .missingPort(text) }
            portText = rest.dropFirst()
        } else {
            guard let colon = find(UInt8(ascii: ":"), in: text[...]) else { throw .missingPort(text) }
            guard find(UInt8(ascii: ":"), in: text[text.index(after: colon)...]) == nil else {
                throw .ambiguousIPv6(text)
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty else { throw .missingHost(text) }
        // Brackets belong only around a whole IPv6 literal: a host holding one (`"[[0]:6"`) is
        // refused, as Go's `net.SplitHostPort` refuses it, so every split host joins back.
        guard !host.utf8.contains(where: { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") }) else {
            throw .invalidIPAddress(text)
        }
        return (String(host), try parsePort(portText, in: text))
    }

    /// Parses decimal digits in 0...65535; `whole` is the text quoted by the error.
    private static func parsePort(_ portText: Substring, in whole: String) throws(AddressError) -> Int {
        var digits = portText.utf8[...]
        guard !digits.isEmpty else { throw .missingPort(whole) }
        var negative = false
        if digits.first == UInt8(ascii: "-") {
            negative = true
            digits = digits.dropFirst()
        }
        guard !digits.isEmpty else { throw .invalidPort(whole) }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw .invalidPort(whole) }
            // Saturate instead of overflowing on absurdly long digit strings.
            value = min(value * 10 + Int(byte - UInt8(ascii: "0")), 1_000_000)
        }
        guard !negative, value <= 65535 else { throw .portOutOfRange(whole) }
        return value
    }

    /// `inet_pton` for IPv4, then IPv6 with an optional `%zone`; `nil` when neither parses.
    private static func parseNumeric(_ text: String, port: UInt16) -> SocketAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return .v4(IPv4(address: v4.s_addr, port: port))
        }
        var addressText = text[...]
        var scopeID: UInt32 = 0
        if let percent = text.firstIndex(of: "%") {
            addressText = text[..<percent]
            guard let scope = parseZone(text[text.index(after: percent)...]) else { return nil }
            scopeID = scope
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, String(addressText), &v6) == 1 else { return nil }
        var sin6 = sockaddr_in6()
        sin6.sin6_addr = v6
        sin6.sin6_port = port.bigEndian
        sin6.sin6_scope_id = scopeID
        return .v6(IPv6(sin6))
    }

    /// A `%zone`: an interface index (`"2"`) or a known interface name (`"lo"`); `nil` otherwise.
    private static func parseZone(_ zone: Substring) -> UInt32? {
        guard !zone.isEmpty else { return nil }
        if zone.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return UInt32(zone)
        }
        let index = if_nametoindex(String(zone))
        return index == 0 ? nil : index
    }
}
