import Pheromones

extension SocketAddress {
    /// A total order on addresses (family, then address bytes, then port), the same on every node:
    /// the simultaneous-dial rule compares listening addresses with it.
    func precedes(_ other: SocketAddress) -> Bool {
        if case .unix = self, case .unix = other { return description < other.description }
        return orderKey < other.orderKey
    }

    private var orderKey: (Int, UInt64, UInt64, Int) {
        switch self {
        case .v4(let address): return (4, 0, UInt64(UInt32(bigEndian: address.address)), port)
        case .v6(let address): return (6, address.high, address.low, port)
        case .unix: return (1, 0, 0, 0)
        }
    }

    /// Whether the address is the wildcard (`0.0.0.0` or `::`), which says nothing about where
    /// peers can reach us.
    var isUnspecified: Bool {
        switch self {
        case .v4(let address): return address.address == 0
        case .v6(let address): return address.high == 0 && address.low == 0
        case .unix: return false
        }
    }

    /// This address's host with another port.
    func withPort(_ port: Int) -> SocketAddress {
        switch self {
        case .v4(var address):
            address.port = UInt16(truncatingIfNeeded: port)
            return .v4(address)
        case .v6(var address):
            address.port = UInt16(truncatingIfNeeded: port)
            return .v6(address)
        case .unix:
            return self
        }
    }
}
