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

    /// Adds an option of the listening socket, set before it binds.
    public func serverSocketOption<Value>(_ option: SocketOption<Value>, _ value: Value) -> ServerBootstrap {
        var copy = self
        copy.serverOptions.set(option, value)
        return copy
    }

    /// Adds an option of every accepted connection, set before its handlers are added.
    public func childSocketOption<Value>(_ option: SocketOption<Value>, _ value: Value) -> ServerBootstrap {
        var copy = self
        copy.childOptions.set(option, value)
        return copy
    }

    /// Sets the code that installs each accepted connection's handlers (run on its loop).
    public func childChannelInitializer(_ initializer: @escaping @Sendable (SocketChannel) throws -> Void) -> ServerBootstrap {
        var copy = self
        copy.childInitializer = initializer
        return copy
    }

    /// This bootstrap, with `extra` run after its child channel initializer.
    func wrappingChildInitializer(_ extra: @escaping @Sendable (SocketChannel) throws -> Void) -> ServerBootstrap {
        let first = childInitializer
        return childChannelInitializer { channel in
            try first(channel)
            try extra(channel)
        }
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
            // A value an option cannot take fails the bind, rather than every connection later.
            if let invalid = serverOptions.additional.firstInvalid ?? childOptions.additional.firstInvalid { throw invalid }
            let fd = try loop.posix.socket(domain: address.protocolFamily, type: CInt(SOCK_STREAM.rawValue))
            let bound: SocketAddress
            do {
                if serverOptions.reuseAddress { try loop.posix.setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1) }
                if reusePort { try loop.posix.setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
                try serverOptions.additional.apply(to: fd, using: loop.posix)
                try bind(fd, to: address, using: loop.posix)
                try loop.posix.listen(fd, backlog: CInt(clamping: serverOptions.backlog ?? Int(Posix.somaxconn())))
                bound = try loop.posix.localAddress(fd)
            } catch {
                try? loop.posix.close(fd)
                throw error
            }
            // From here the channel owns the descriptor: a failed registration closes the channel,
            // which closes the descriptor, once.
            let server = ServerSocketChannel(
                fd: fd, address: bound, loop: loop, options: serverOptions,
                children: children, childOptions: childOptions, childInitializer: childInitializer)
            do {
                try server.register()
            } catch {
                server.close0(mode: .all, promise: nil)
                throw error
            }
            return server
        }
    }

    /// Binds `fd` to `address`. A Unix domain path whose socket file was left behind by a server
    /// that is gone (a socket nobody listens on) is removed and bound again; one a live server
    /// listens on fails with `EADDRINUSE`, as any address in use.
    private func bind(_ fd: CInt, to address: SocketAddress, using posix: Posix) throws(IOError) {
        do {
            try posix.bind(fd, to: address)
        } catch where error.errnoCode == EADDRINUSE {
            guard case .unix(let unix) = address, posix.isStaleSocketFile(unix) else { throw error }
            posix.removeSocketFile(unix)
            try posix.bind(fd, to: address)
        }
    }

    /// Binds and listens on `host:port` (port 0: any free port; read it from `localAddress`).
    ///
    /// A host name that is not a numeric address is resolved with a blocking lookup first.
    public func bind(host: String, port: Int) async throws -> ServerSocketChannel {
        try await bind(to: SocketAddress.resolve(host: host, port: port)).get()
    }
}
