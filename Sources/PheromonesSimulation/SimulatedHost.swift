import Pheromones
import PheromonesP2P

/// A ``SimulatedNetwork`` as seen from one host: the `NodeNetwork` a simulated node listens and
/// dials through.
package struct SimulatedHost: NodeNetwork {
    let network: SimulatedNetwork
    /// The host's address (its port is the node's listening port).
    let address: SocketAddress

    package var eventLoop: any EventLoop { network.loop }

    package func listen(
        on address: SocketAddress, options: SocketOptions, childInitializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel> {
        network.listen(at: address, options: options, childInitializer: childInitializer)
    }

    package func connect(
        to address: SocketAddress, options: SocketOptions, initializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel> {
        network.connect(from: self.address, to: address, options: options, initializer: initializer)
    }
}
