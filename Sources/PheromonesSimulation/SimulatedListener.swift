import Pheromones

/// A listening address on a ``SimulatedNetwork``: what a node's server is there. Closing it stops
/// accepting; the connections it accepted stay open.
// Unchecked: like every simulated channel, it lives on the network's embedded loop, driven by one thread.
final class SimulatedListener: Channel, ChannelCore, @unchecked Sendable {
    let loop: EmbeddedEventLoop
    let address: SocketAddress
    let options: SocketOptions
    /// Installs an accepted connection's handlers; throws to refuse it.
    let childInitializer: @Sendable (any Channel) throws -> Void
    private weak var network: SimulatedNetwork?
    private let closePromise: Promise<Void>
    private var closed = false

    init(
        network: SimulatedNetwork, address: SocketAddress, options: SocketOptions,
        childInitializer: @escaping @Sendable (any Channel) throws -> Void
    ) {
        self.network = network
        self.loop = network.loop
        self.address = address
        self.options = options
        self.childInitializer = childInitializer
        closePromise = loop.makePromise(of: Void.self)
    }

    private(set) lazy var pipeline = ChannelPipeline(channel: self, eventLoop: loop)
    var eventLoop: any EventLoop { loop }
    var closeFuture: Future<Void> { closePromise.futureResult }
    var isActive: Bool { !closed }
    var isWritable: Bool { false }
    var localAddress: SocketAddress? { address }
    var remoteAddress: SocketAddress? { nil }
    var parent: (any Channel)? { nil }
    var bufferedOutboundBytes: Int { 0 }

    var acceptedOutboundType: Any.Type? { nil }
    var producedInboundType: Any.Type? { nil }
    func write0<Message>(_ data: Message, promise: Promise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    func flush0() {}
    func read0() {}
    func bind0(to address: SocketAddress, promise: Promise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    func connect0(to address: SocketAddress, promise: Promise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?) { promise?.succeed(()) }
    func channelReadReachedTail<Message>(_ data: Message) {}
    func errorCaughtReachedTail(_ error: any Error) {}
    func userInboundEventReachedTail(_ event: Any) {}

    func close0(mode: CloseMode, promise: Promise<Void>?) {
        guard !closed else { return promise?.fail(ChannelError.alreadyClosed) ?? () }
        closed = true
        network?.stopListening(at: address, listener: self)
        promise?.succeed(())
        pipeline.channelDidClose()
        closePromise.succeed(())
    }
}
