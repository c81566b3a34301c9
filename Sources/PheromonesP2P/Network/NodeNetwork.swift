import Pheromones

/// Where a node's connections come from: the machine's TCP sockets (``SocketNetwork``), or an
/// in-memory network in virtual time (`PheromonesSimulation`'s `SimulatedNetwork`).
///
/// It is the node's only seam to the outside: everything above it (the transport's stages, the
/// wire, the routers, the protocol) is the same whichever network carries the bytes, which is
/// what lets a simulation run real node stacks. Both calls are made on the node's loop, and the
/// connections they make run on it too.
package protocol NodeNetwork {
    /// The loop the node and all its connections run on.
    var eventLoop: any EventLoop { get }

    /// Listens at `address`; `childInitializer` runs on the loop for each accepted connection,
    /// before any event reaches it, and refuses the connection by throwing.
    ///
    /// - Returns: the listener (closing it stops accepting) and the address it is bound to.
    func listen(
        on address: SocketAddress, options: SocketOptions, childInitializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel>

    /// Connects to `address`; `initializer` installs the connection's handlers on the loop before
    /// it connects.
    func connect(
        to address: SocketAddress, options: SocketOptions, initializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel>
}
