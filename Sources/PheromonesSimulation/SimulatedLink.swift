import Pheromones

/// The path between two hosts of a ``SimulatedNetwork``: its latency (one way, drawn when the
/// path is first used, or set), whether it works, and the connections over it.
final class SimulatedLink {
    /// The one-way latency.
    var latency: TimeAmount
    /// Whether bytes and connections get through.
    private(set) var isUp = true
    /// Bumped each time the link fails, so that what was on its way is lost.
    private(set) var generation = 0
    private var connections: [ObjectIdentifier: SimulatedConnection] = [:]
    /// Bytes carried, both ways.
    private(set) var bytesCarried = 0

    init(latency: TimeAmount) {
        self.latency = latency
    }

    func open(_ connection: SimulatedConnection) {
        connections[ObjectIdentifier(connection)] = connection
    }

    func forget(_ connection: SimulatedConnection) {
        connections[ObjectIdentifier(connection)] = nil
    }

    func carried(bytes: Int) {
        bytesCarried += bytes
    }

    /// Fails the link: what is on its way is lost, every connection over it is reset, and new
    /// connections time out until it is restored.
    func fail() {
        guard isUp else { return }
        isUp = false
        generation += 1
        // In a fixed order (ids are addresses, which vary from run to run).
        let open = connections.values.sorted { $0.order < $1.order }
        connections = [:]
        for connection in open { connection.reset() }
    }

    /// Restores the link.
    func restore() {
        isUp = true
    }
}
