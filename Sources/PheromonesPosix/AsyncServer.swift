import PheromonesCore

/// A listening server whose accepted connections arrive as an `AsyncSequence`, each as what the
/// child initializer made for it (an `AsyncChannel`, typically), for a `for try await` loop:
///
/// ```swift
/// let server = try await ServerBootstrap(group: group).bind(to: address) { channel in
///     try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
/// }
/// for await connection in server {
///     Task {
///         for try await message in connection.inbound { try await connection.outbound.write(message) }
///     }
/// }
/// ```
///
/// The initializer runs on the connection's loop before it reads its first byte, so nothing the
/// client sends is lost while the connection waits to be taken. Connections not taken yet are
/// bounded (`maximumPendingConnections`): past that many, a new connection is closed at once (and
/// logged), the server's memory never grows with clients arriving faster than they are taken.
/// The sequence ends when the server closes. One task iterates it (it is a single-consumer stream).
public final class AsyncServer<Connection: Sendable>: AsyncSequence, Sendable {
    /// A connection, as the child initializer made it.
    public typealias Element = Connection

    /// The listening channel.
    public let channel: ServerSocketChannel
    private let connections: AsyncStream<Accepted>

    /// An accepted connection waiting to be taken, with its channel (closed if it is dropped).
    struct Accepted: Sendable {
        let channel: SocketChannel
        let connection: Connection
    }

    init(channel: ServerSocketChannel, connections: AsyncStream<Accepted>) {
        self.channel = channel
        self.connections = connections
    }

    /// The address the server listens on.
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Closes the server: no connection is accepted any more, and the sequence ends once the
    /// connections already accepted have been taken. Open connections stay open.
    public func close() async throws {
        try await channel.close().get()
    }

    /// Iterates the accepted connections.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<Accepted>.Iterator

        /// The next accepted connection, or nil once the server has closed.
        public mutating func next() async -> Connection? {
            await base.next()?.connection
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: connections.makeAsyncIterator())
    }
}

extension ServerBootstrap {
    /// Binds and listens on `address`, running `initializer` on each accepted connection's loop
    /// before it reads, and hands the connections out, as what the initializer made, through the
    /// returned ``AsyncServer``.
    ///
    /// The bootstrap's own child channel initializer, if any, runs first. At most
    /// `maximumPendingConnections` connections wait to be taken; later ones are closed at once.
    public func bind<Connection: Sendable>(
        to address: SocketAddress, maximumPendingConnections: Int = 256,
        childChannelInitializer initializer: @escaping @Sendable (SocketChannel) throws -> Connection
    ) async throws -> AsyncServer<Connection> {
        let (connections, continuation) = AsyncStream.makeStream(
            of: AsyncServer<Connection>.Accepted.self, bufferingPolicy: .bufferingOldest(max(1, maximumPendingConnections)))
        let server = try await wrappingChildInitializer { channel in
            let connection = try initializer(channel)
            let accepted = AsyncServer<Connection>.Accepted(channel: channel, connection: connection)
            switch continuation.yield(accepted) {
            case .enqueued:
                break
            case .dropped, .terminated:
                channel.loop.logger.warning("closing an accepted connection: too many are waiting to be taken, or nobody takes them")
                channel.loop.execute { _ = channel.close() }
            @unknown default:
                channel.loop.execute { _ = channel.close() }
            }
        }.bind(to: address).get()
        server.closeFuture.whenComplete { _ in continuation.finish() }
        return AsyncServer(channel: server, connections: connections)
    }

    /// Binds to `host:port` (a host name is resolved first); see ``bind(to:maximumPendingConnections:childChannelInitializer:)``.
    public func bind<Connection: Sendable>(
        host: String, port: Int, maximumPendingConnections: Int = 256,
        childChannelInitializer initializer: @escaping @Sendable (SocketChannel) throws -> Connection
    ) async throws -> AsyncServer<Connection> {
        try await bind(to: SocketAddress.resolve(host: host, port: port), maximumPendingConnections: maximumPendingConnections,
                       childChannelInitializer: initializer)
    }
}
