import PheromonesP2P
import ServiceLifecycle

/// A P2P ``Node`` run by swift-service-lifecycle's `ServiceGroup`: it runs until the group shuts
/// down (gracefully, on a signal, or by cancellation), then shuts the node down: its server and
/// connections close, and what waits on them fails with `P2PError.nodeShutDown`.
///
/// ```swift
/// let node = try Node(configuration: configuration, protocol: MyProtocol())
/// _ = try await node.listen(on: address)
/// let services = ServiceGroup(services: [NodeService(node: node), ServerService(...)],
///                             gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await services.run()
/// ```
///
/// Services stop in the reverse order of the group's list: put the node after what uses it.
public struct NodeService: Service {
    /// The node.
    public let node: Node

    /// A service running `node` (already listening, or dialling, as the application set it up).
    public init(node: Node) {
        self.node = node
    }

    /// Waits for the group's shutdown, then shuts the node down.
    public func run() async throws {
        // Throws only when the task is cancelled: the node shuts down either way.
        try? await gracefulShutdown()
        await node.shutdown()
    }
}
