import Pheromones

/// The machine's TCP sockets: the network of every ``Node``. Connections, accepted and dialled,
/// stay on the node's loop.
struct SocketNetwork: NodeNetwork {
    let group: MultiThreadedEventLoopGroup
    let loop: EpollEventLoop

    var eventLoop: any EventLoop { loop }

    func listen(
        on address: SocketAddress, options: SocketOptions, childInitializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel> {
        ServerBootstrap(group: group)
            .childOptions(options)
            .childChannelInitializer { channel in try childInitializer(channel) }
            .bind(to: address, on: loop)
            .map { $0 as any Channel }
    }

    func connect(
        to address: SocketAddress, options: SocketOptions, initializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel> {
        ClientBootstrap(group: group)
            .options(options)
            .channelInitializer { channel in try initializer(channel) }
            .connect(to: address, on: loop)
            .map { $0 as any Channel }
    }
}
