import Pheromones

/// What a ``SimulatedNetwork`` refuses.
public enum SimulatedNetworkError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Something listens at the address already.
    case addressInUse(SocketAddress)

    /// What happened, in a sentence.
    public var description: String {
        switch self {
        case .addressInUse(let address): return "something listens at \(address) already"
        }
    }
}
