import PheromonesCore

extension ClientBootstrap {
    /// Connects to `address`, running `initializer` on the new channel's loop before it connects,
    /// and returns what the initializer made once the connection is up.
    ///
    /// The initializer runs before the channel reads its first byte, so what it sets up (an
    /// `AsyncChannel`, typically) sees everything the server sends, its greeting included:
    ///
    /// ```swift
    /// let connection = try await ClientBootstrap(group: group).connect(to: address) { channel in
    ///     try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
    /// }
    /// for try await message in connection.inbound { ... }
    /// ```
    ///
    /// The bootstrap's own channel initializer, if any, runs first.
    public func connect<Output: Sendable>(
        to address: SocketAddress, channelInitializer initializer: @escaping @Sendable (SocketChannel) throws -> Output
    ) async throws -> Output {
        let made = LockedValue<Output?>(nil)
        let channel = try await wrappingInitializer { channel in
            let output = try initializer(channel)
            made.withLock { $0 = output }
        }.connect(to: address).get()
        guard let output = made.withLock({ $0 }) else {
            // Not reachable: the connect succeeds only after the initializer has returned.
            _ = channel.close()
            throw ChannelError.ioOnClosedChannel
        }
        return output
    }

    /// Connects to `host:port` (a host name is resolved first); see ``connect(to:channelInitializer:)``.
    public func connect<Output: Sendable>(
        host: String, port: Int, channelInitializer initializer: @escaping @Sendable (SocketChannel) throws -> Output
    ) async throws -> Output {
        try await connect(to: SocketAddress.resolve(host: host, port: port), channelInitializer: initializer)
    }
}
