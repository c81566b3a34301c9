import Glibc
import PheromonesCore

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

    /// Adds an option of the connection's socket, set before its handlers are added.
    public func socketOption<Value>(_ option: SocketOption<Value>, _ value: Value) -> ClientBootstrap {
        var copy = self
        copy.options.set(option, value)
        return copy
    }

    /// Sets the code that installs the connection's handlers (run on its loop, before connecting).
    public func channelInitializer(_ initializer: @escaping @Sendable (SocketChannel) throws -> Void) -> ClientBootstrap {
        var copy = self
        copy.initializer = initializer
        return copy
    }

    /// This bootstrap, with `extra` run after its channel initializer.
    func wrappingInitializer(_ extra: @escaping @Sendable (SocketChannel) throws -> Void) -> ClientBootstrap {
        let first = initializer
        return channelInitializer { channel in
            try first(channel)
            try extra(channel)
        }
    }

    /// Connects to `address` from the group's next loop.
    ///
    /// The future fails with `ChannelError.connectionRefused(_:)`, `ChannelError.unreachable(_:)`,
    /// `ChannelError.connectTimeout(_:_:)` or `ChannelError.connectFailed(_:_:)`.
    public func connect(to address: SocketAddress) -> Future<SocketChannel> {
        connect(to: address, on: group.nextLoop())
    }

    /// Connects to `address` from `loop` (which must belong to the group).
    public func connect(to address: SocketAddress, on loop: EpollEventLoop) -> Future<SocketChannel> {
        let options = options, initializer = initializer
        let promise = loop.makePromise(of: SocketChannel.self)
        if let invalid = options.additional.firstInvalid {
            promise.fail(invalid)
            return promise.futureResult
        }
        let started = loop.tryExecute {
            let channel: SocketChannel
            do {
                let fd = try loop.posix.socket(domain: address.protocolFamily, type: CInt(SOCK_STREAM.rawValue))
                channel = SocketChannel(fd: fd, loop: loop, options: SharedSocketOptions(options), parent: nil)
            } catch {
                promise.fail(error)
                return
            }
            // From here the channel owns the descriptor: every failure closes the channel, which
            // closes the descriptor and lets the channel go.
            do {
                try options.apply(to: channel.fd, isInternet: address.isInternet, using: loop.posix)
                try initializer(channel)
                try channel.register(connected: false)
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
