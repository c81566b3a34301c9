import Glibc
import PheromonesCore

/// Opens UDP sockets: ``DatagramChannel``s, bound to a local address or connected to one peer.
///
/// ```swift
/// let channel = try await DatagramBootstrap(group: group)
///     .channelInitializer { channel in try channel.pipeline.addHandler(DatagramEchoHandler()) }
///     .bind(to: .loopbackV4(port: 9000))
///     .get()
/// ```
///
/// The initializer runs on the channel's loop before any event, so the handlers it creates never
/// cross threads.
public struct DatagramBootstrap: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private var options = DatagramOptions()
    private var initializer: @Sendable (DatagramChannel) throws -> Void = { _ in }

    /// Opens sockets on loops of `group`.
    public init(group: MultiThreadedEventLoopGroup) {
        self.group = group
    }

    /// Sets the socket's options.
    public func options(_ options: DatagramOptions) -> DatagramBootstrap {
        var copy = self
        copy.options = options
        return copy
    }

    /// Adds an option of the socket, set before it binds.
    public func socketOption<Value>(_ option: SocketOption<Value>, _ value: Value) -> DatagramBootstrap {
        var copy = self
        copy.options.set(option, value)
        return copy
    }

    /// Sets the code that installs the channel's handlers (run on its loop, before it is active).
    public func channelInitializer(_ initializer: @escaping @Sendable (DatagramChannel) throws -> Void) -> DatagramBootstrap {
        var copy = self
        copy.initializer = initializer
        return copy
    }

    /// Binds a socket to `address` (port 0: any free port; read it from `localAddress`); the future
    /// completes with the active channel, which receives from anyone and writes
    /// `AddressedEnvelope<ByteBuffer>`s.
    public func bind(to address: SocketAddress) -> Future<DatagramChannel> {
        open(family: address.protocolFamily, local: address, remote: nil, on: group.nextLoop())
    }

    /// Binds to `host:port`. A host name that is not a numeric address is resolved with a blocking lookup first.
    public func bind(host: String, port: Int) async throws -> DatagramChannel {
        try await bind(to: SocketAddress.resolve(host: host, port: port)).get()
    }

    /// Opens a socket connected to `remote` (bound to `local` first, if given; otherwise the kernel
    /// picks the address): the kernel delivers only `remote`'s datagrams, and the channel also
    /// takes plain `ByteBuffer` writes, for `remote`.
    public func connect(to remote: SocketAddress, from local: SocketAddress? = nil) -> Future<DatagramChannel> {
        open(family: remote.protocolFamily, local: local, remote: remote, on: group.nextLoop())
    }

    private func open(family: CInt, local: SocketAddress?, remote: SocketAddress?, on loop: EpollEventLoop) -> Future<DatagramChannel> {
        let options = options, initializer = initializer
        return loop.submit { () throws -> DatagramChannel in
            // A value an option cannot take fails here, before any socket is made.
            if let invalid = options.additional.firstInvalid { throw invalid }
            guard family == AF_INET || family == AF_INET6 else { throw ChannelError.operationUnsupported }
            let fd = try loop.posix.socket(domain: family, type: CInt(SOCK_DGRAM.rawValue))
            do {
                try options.apply(to: fd, using: loop.posix)
                if let local { try loop.posix.bind(fd, to: local) }
            } catch {
                try? loop.posix.close(fd)
                throw error
            }
            // From here the channel owns the descriptor: every failure closes the channel, which
            // closes the descriptor, once.
            let channel = DatagramChannel(fd: fd, loop: loop, options: options, acceptsPlainBuffers: remote != nil)
            do {
                channel.enableOffloads()
                try initializer(channel)
                try channel.register()
            } catch {
                channel.close0(mode: .all, promise: nil)
                throw error
            }
            if let remote {
                let connected = loop.makePromise(of: Void.self)
                // A UDP connect completes at once: the promise is already complete here.
                channel.connect0(to: remote, promise: connected)
                if let error = Self.failure(of: connected.futureResult) {
                    channel.close0(mode: .all, promise: nil)
                    throw error
                }
            } else {
                channel.becomeActive()
            }
            return channel
        }
    }

    /// The error of a completed future, if it failed.
    private static func failure(of future: Future<Void>) -> (any Error)? {
        guard case .failure(let error) = future.resultIfAvailable else { return nil }
        return error
    }
}
