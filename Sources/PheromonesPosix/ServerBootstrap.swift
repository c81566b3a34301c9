import Glibc
import PheromonesCore

/// Starts TCP servers.
///
/// ```swift
/// let server = try await ServerBootstrap(group: group)
///     .childChannelInitializer { channel in
///         try channel.pipeline.addHandler(EchoHandler())
///     }
///     .bind(host: "127.0.0.1", port: 9000)
/// ```
///
/// The child initializer runs on each connection's own loop, before any event, so the handlers it
/// creates never cross threads and need not be `Sendable`. Connections are spread over the child
/// group's loops round robin.
public struct ServerBootstrap: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let childGroup: MultiThreadedEventLoopGroup
    private var serverOptions = ServerSocketOptions()
    private var childOptions = SocketOptions()
    private var childInitializer: ServerSocketChannel.ChildInitializer = { _ in }

    /// Listens on a loop of `group` and serves connections on `childGroup` (default: the same group).
    public init(group: MultiThreadedEventLoopGroup, childGroup: MultiThreadedEventLoopGroup? = nil) {
        self.group = group
        self.childGroup = childGroup ?? group
    }

    /// Sets the listener's options.
    public func serverOptions(_ options: ServerSocketOptions) -> ServerBootstrap {
        var copy = self
        copy.serverOptions = options
        return copy
    }

    /// Sets every accepted connection's options.
    public func childOptions(_ options: SocketOptions) -> ServerBootstrap {
        var copy = self
        copy.childOptions = options
        return copy
    }

    /// Sets the code that installs each accepted connection's handlers (run on its loop).
    public func childChannelInitializer(_ initializer: @escaping @Sendable (SocketChannel) throws -> Void) -> ServerBootstrap {
        var copy = self
        copy.childInitializer = initializer
        return copy
    }

    /// Binds and listens on `address`; the future completes with the listening channel.
    ///
    /// With ``ServerSocketOptions/listenerPerLoop`` the returned channel is the first of one listener
    /// per loop; closing it closes them all.
    public func bind(to address: SocketAddress) -> Future<ServerSocketChannel> {
        guard serverOptions.listenerPerLoop, childGroup.epollLoops.count > 1 else {
            return bindListener(to: address, on: group.nextLoop(), children: .roundRobin(childGroup), reusePort: serverOptions.reusePort)
        }
        let loops = childGroup.epollLoops
        return bindListener(to: address, on: loops[0], children: .ownLoop, reusePort: true).flatMap { first in
            // Port 0 resolves on the first bind; the others join that port.
            let port = first.localAddress ?? address
            let others = loops.dropFirst().map { bindListener(to: port, on: $0, children: .ownLoop, reusePort: true) }
            return Future.whenAllComplete(Array(others), on: loops[0]).map { results in
                // Adopt those that bound, so that closing the first closes them too.
                first.adoptSiblings(results.compactMap { try? $0.get() })
                for case .failure(let error) in results {
                    first.close()
                    throw error
                }
                return first
            }
        }
    }

    /// Binds and listens on `address` from `loop` (which must belong to the group), and serves every
    /// accepted connection on that same loop: for a component whose connections must all share one
    /// loop (a P2P node keeps its route table, connections and protocol on one loop).
    public func bind(to address: SocketAddress, on loop: EpollEventLoop) -> Future<ServerSocketChannel> {
        bindListener(to: address, on: loop, children: .ownLoop, reusePort: serverOptions.reusePort)
    }

    private func bindListener(
        to address: SocketAddress, on loop: EpollEventLoop, children: ServerSocketChannel.ChildLoops, reusePort: Bool
    ) -> Future<ServerSocketChannel> {
        let serverOptions = serverOptions, childOptions = childOptions, childInitializer = childInitializer
        return loop.submit { () throws -> ServerSocketChannel in
            let fd = try Posix.socket(domain: address.protocolFamily, type: CInt(SOCK_STREAM.rawValue))
            do {
                if serverOptions.reuseAddress { try Posix.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1) }
                if reusePort { try Posix.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
                try Posix.bind(fd, to: address)
                try Posix.listen(fd, backlog: CInt(clamping: serverOptions.backlog ?? Int(Posix.somaxconn())))
                let bound = try Posix.localAddress(fd)
                let server = ServerSocketChannel(
                    fd: fd, address: bound, loop: loop, options: serverOptions,
                    children: children, childOptions: childOptions, childInitializer: childInitializer)
                try server.register()
                return server
            } catch {
                try? Posix.close(fd)
                throw error
            }
        }
    }

    /// Binds and listens on `host:port` (port 0: any free port; read it from `localAddress`).
    ///
    /// A host name that is not a numeric address is resolved with a blocking lookup first.
    public func bind(host: String, port: Int) async throws -> ServerSocketChannel {
        try await bind(to: SocketAddress.resolve(host: host, port: port)).get()
    }
}

/// Opens TCP connections.
///
/// ```swift
/// let channel = try await ClientBootstrap(group: group)
///     .channelInitializer { channel in try channel.pipeline.addHandler(MyHandler()) }
///     .connect(host: "127.0.0.1", port: 9000)
/// ```
public struct ClientBootstrap: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private var options = SocketOptions()
    private var initializer: @Sendable (SocketChannel) throws -> Void = { _ in }

    /// Connects from loops of `group`.
    public init(group: MultiThreadedEventLoopGroup) {
        self.group = group
    }

    /// Sets the connection's options.
    public func options(_ options: SocketOptions) -> ClientBootstrap {
        var copy = self
        copy.options = options
        return copy
    }

    /// Sets how long connecting may take (default 10 s).
    public func connectTimeout(_ timeout: TimeAmount) -> ClientBootstrap {
        var copy = self
        copy.options.connectTimeout = timeout
        return copy
    }

    /// Sets the code that installs the connection's handlers (run on its loop, before connecting).
    public func channelInitializer(_ initializer: @escaping @Sendable (SocketChannel) throws -> Void) -> ClientBootstrap {
        var copy = self
        copy.initializer = initializer
        return copy
    }

    /// Connects to `address` from the group's next loop.
    ///
    /// The future fails with ``ChannelError/connectionRefused(_:)``, ``ChannelError/unreachable(_:)``,
    /// ``ChannelError/connectTimeout(_:_:)`` or ``ChannelError/connectFailed(_:_:)``.
    public func connect(to address: SocketAddress) -> Future<SocketChannel> {
        connect(to: address, on: group.nextLoop())
    }

    /// Connects to `address` from `loop` (which must belong to the group).
    public func connect(to address: SocketAddress, on loop: EpollEventLoop) -> Future<SocketChannel> {
        let options = options, initializer = initializer
        let promise = loop.makePromise(of: SocketChannel.self)
        let started = loop.tryExecute {
            let channel: SocketChannel
            do {
                let fd = try Posix.socket(domain: address.protocolFamily, type: CInt(SOCK_STREAM.rawValue))
                channel = SocketChannel(fd: fd, loop: loop, options: SharedSocketOptions(options), parent: nil)
                try options.apply(to: fd)
            } catch {
                promise.fail(error)
                return
            }
            do {
                try initializer(channel)
                try channel.register()
            } catch {
                channel.close0(mode: .all, promise: nil)
                promise.fail(error)
                return
            }
            let connected = loop.makePromise(of: Void.self)
            connected.futureResult.whenComplete { result in
                switch result {
                case .success: promise.succeed(channel)
                case .failure(let error): promise.fail(error)
                }
            }
            channel.pipeline.connect(to: address, promise: connected)
        }
        if !started { promise.fail(EventLoopError.shutDown) }
        return promise.futureResult
    }

    /// Connects to `host:port`. A host name that is not a numeric address is resolved with a
    /// blocking lookup first.
    public func connect(host: String, port: Int) async throws -> SocketChannel {
        try await connect(to: SocketAddress.resolve(host: host, port: port)).get()
    }
}
