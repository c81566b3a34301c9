import Glibc
import PheromonesCore

/// The network interface a multicast group is joined on.
public enum MulticastInterface: Sendable, Hashable {
    /// The kernel's choice (by the routing table).
    case any
    /// The interface with this index (`if_nametoindex`); IPv4 and IPv6.
    case index(UInt32)
    /// The interface that has this IPv4 address (IPv4 groups only).
    case address(SocketAddress.IPv4)

    /// The interface named `name` (`"eth0"`, `"lo"`), or nil if there is none.
    public static func named(_ name: String) -> MulticastInterface? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : .index(index)
    }
}

/// Why a multicast membership could not change.
public enum MulticastError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The address is not a multicast group of the channel's family (224.0.0.0/4 for IPv4,
    /// ff00::/8 for IPv6).
    case notAMulticastGroup(SocketAddress)
    /// An interface given by IPv4 address for an IPv6 group.
    case interfaceFamilyMismatch

    public var description: String {
        switch self {
        case .notAMulticastGroup(let address): return "\(address) is not a multicast group address"
        case .interfaceFamilyMismatch: return "an IPv6 group is joined on an interface index, not an IPv4 address"
        }
    }
}

extension DatagramChannel {
    /// Joins the multicast `group` (its port is ignored) on `interface`: `IP_ADD_MEMBERSHIP` for an
    /// IPv4 group, `IPV6_JOIN_GROUP` for an IPv6 one. The channel must be bound to the group's port
    /// (to the wildcard address, or the group's) to receive its datagrams. Callable from any thread.
    public func joinGroup(_ group: SocketAddress, interface: MulticastInterface = .any) -> Future<Void> {
        changeMembership(group, interface: interface, join: true)
    }

    /// Leaves the multicast `group` joined with ``joinGroup(_:interface:)`` on the same `interface`.
    public func leaveGroup(_ group: SocketAddress, interface: MulticastInterface = .any) -> Future<Void> {
        changeMembership(group, interface: interface, join: false)
    }

    private func changeMembership(_ group: SocketAddress, interface: MulticastInterface, join: Bool) -> Future<Void> {
        loop.submit { [self] () throws -> Void in
            guard let fd = openDescriptor else { throw ChannelError.ioOnClosedChannel }
            switch group {
            case .v4(let address):
                // 224.0.0.0/4: the top four bits are 1110.
                guard UInt32(bigEndian: address.address) >> 28 == 0xE else { throw MulticastError.notAMulticastGroup(group) }
                var request = ip_mreqn()
                request.imr_multiaddr = address.sockaddrIn.sin_addr
                switch interface {
                case .any: break
                case .index(let index): request.imr_ifindex = CInt(bitPattern: index)
                case .address(let local): request.imr_address = local.sockaddrIn.sin_addr
                }
                try loop.posix.setOption(fd, level: CInt(IPPROTO_IP), name: join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP,
                                         bytes: withUnsafeBytes(of: request) { Array($0) })
            case .v6(let address):
                // ff00::/8.
                guard address.high >> 56 == 0xFF else { throw MulticastError.notAMulticastGroup(group) }
                var request = ipv6_mreq()
                request.ipv6mr_multiaddr = address.in6Addr
                switch interface {
                case .any: break
                case .index(let index): request.ipv6mr_interface = CUnsignedInt(index)
                case .address: throw MulticastError.interfaceFamilyMismatch
                }
                try loop.posix.setOption(fd, level: CInt(IPPROTO_IPV6), name: join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP,
                                         bytes: withUnsafeBytes(of: request) { Array($0) })
            case .unix:
                throw MulticastError.notAMulticastGroup(group)
            }
        }
    }
}
