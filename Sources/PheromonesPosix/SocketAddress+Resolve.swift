import Glibc
import PheromonesCore

extension SocketAddress {
    /// Resolves `host` (a numeric literal or a name) with `port`, preferring the first IPv4 result.
    ///
    /// Numeric hosts (`"127.0.0.1"`, `"::1"`, `"fe80::1%lo"`) are parsed without any lookup. Anything
    /// else goes through `getaddrinfo(3)`, which **blocks** (it may read `/etc/hosts` and ask DNS
    /// servers): never call it on an event loop for a non-numeric host; resolve up front or on a
    /// separate thread.
    ///
    /// - Throws: `AddressError.portOutOfRange(_:)` when `port` is outside 0...65535,
    ///   `AddressError.empty` for an empty host, `AddressError.unresolvable(host:reason:)` (with
    ///   `gai_strerror`'s reason) when the name does not resolve to any IPv4 or IPv6 address.
    public static func resolve(host: String, port: Int) throws(AddressError) -> SocketAddress {
        guard (0...65535).contains(port) else { throw .portOutOfRange(String(port)) }
        guard !host.isEmpty else { throw .empty }
        if let numeric = try? SocketAddress(ipAddress: host, port: port) {
            return numeric
        }

        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = CInt(SOCK_STREAM.rawValue)
        hints.ai_protocol = CInt(IPPROTO_TCP)
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &results)
        guard status == 0 else {
            let reason: String
            if status == EAI_SYSTEM {
                reason = IOError(errnoCode: errno, function: "getaddrinfo(3)").description
            } else {
                reason = gai_strerror(status).map { String(cString: $0) } ?? "error \(status)"
            }
            throw .unresolvable(host: host, reason: reason)
        }
        defer { freeaddrinfo(results) }

        var firstV6: SocketAddress?
        var entry = results
        while let info = entry {
            if let sockaddr = info.pointee.ai_addr,
               let address = SocketAddress(sockaddr: sockaddr, length: info.pointee.ai_addrlen) {
                switch address {
                case .v4(var v4):
                    v4.port = UInt16(port)
                    return .v4(v4)
                case .v6(var v6):
                    if firstV6 == nil {
                        v6.port = UInt16(port)
                        firstV6 = .v6(v6)
                    }
                case .unix:
                    break
                }
            }
            entry = info.pointee.ai_next
        }
        guard let firstV6 else {
            throw .unresolvable(host: host, reason: "no IPv4 or IPv6 address")
        }
        return firstV6
    }

    /// Splits `"host:port"` / `"[ipv6]:port"` with `splitHostPort(_:)`, then resolves it with
    /// ``resolve(host:port:)``. **Blocks** for non-numeric hosts: keep it off event loops.
    ///
    /// - Throws: the parsing errors of `splitHostPort(_:)` or the errors of ``resolve(host:port:)``.
    public static func resolve(_ hostPort: String) throws(AddressError) -> SocketAddress {
        let (host, port) = try splitHostPort(hostPort)
        return try resolve(host: host, port: port)
    }
}
