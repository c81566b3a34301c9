import DequeModule
import Pheromones

/// One end of an in-memory connection on a ``SimulatedNetwork``: a byte stream with TCP's
/// ordering, delivered to the other end after the link's latency, in virtual time.
///
/// It behaves as a connected `SocketChannel` does, as far as the stages above can tell: bytes
/// written are taken at the flush (the peer's end receives them one latency later, in order), a
/// read is held back until the pipeline asks for it (so back pressure works), the peer's close
/// arrives as an end of stream (a half-close when the options allow it), and a link that fails
/// resets both ends. There is no congestion and no loss on a working link, and no bandwidth: a
/// flush is taken whole, so ``bufferedOutboundBytes`` is back to 0 after it and a node's
/// slow-peer limits never come into play, and what a pipeline does not read waits without bound,
/// as if the kernel's buffers were unlimited.
// Unchecked: a simulated channel belongs to its network's embedded loop, which runs on the one
// thread that drives the simulation; nothing reaches it from another thread.
final class SimulatedChannel: Channel, ChannelCore, @unchecked Sendable {
    /// The network's loop, where every simulated channel runs.
    let loop: EmbeddedEventLoop
    /// The connection this is one end of.
    let connection: SimulatedConnection
    /// Which end this is (0: the dialling side).
    let side: Int
    private let options: SocketOptions
    private let closePromise: Promise<Void>
    /// The other end, once the connection is set up; weak: each end is owned by its own pipeline's users.
    weak var peer: SimulatedChannel?
    private var unflushed: [(ByteBuffer, Promise<Void>?)] = []
    private var unflushedBytes = 0
    /// Bytes that arrived while no read was wanted, in order.
    private var backlog: Deque<ByteBuffer> = []
    /// Whether the peer's end of stream arrived after `backlog`.
    private var endOfStreamPending = false
    private var readPending = false
    private var deliveryScheduled = false
    private var active = false
    private var closed = false
    private var inputClosed = false
    private var outputClosed = false

    let localAddress: SocketAddress?
    let remoteAddress: SocketAddress?
    var parent: (any Channel)? { nil }

    init(loop: EmbeddedEventLoop, connection: SimulatedConnection, side: Int, local: SocketAddress, remote: SocketAddress, options: SocketOptions) {
        self.loop = loop
        self.connection = connection
        self.side = side
        self.options = options
        self.localAddress = local
        self.remoteAddress = remote
        closePromise = loop.makePromise(of: Void.self)
        pipeline.fireChannelRegistered()
    }

    private(set) lazy var pipeline = ChannelPipeline(channel: self, eventLoop: loop)

    var eventLoop: any EventLoop { loop }
    var closeFuture: Future<Void> { closePromise.futureResult }
    var isActive: Bool { active }
    var isWritable: Bool { true }
    var bufferedOutboundBytes: Int { unflushedBytes }

    // MARK: Driven by the network

    /// The connection is established on this side.
    func becomeActive() {
        guard !closed, !active else { return }
        active = true
        pipeline.fireChannelActive()
        if options.autoRead, active { pipeline.read() }
        deliverBacklogIfWanted()
    }

    /// Bytes from the peer, arriving now.
    func arrived(_ buffers: [ByteBuffer]) {
        guard !closed, !inputClosed, !endOfStreamPending else { return }
        backlog.append(contentsOf: buffers)
        deliverBacklogIfWanted()
    }

    /// The peer's end of stream, arriving now (after every byte it sent before it).
    func endOfStreamArrived() {
        guard !closed, !inputClosed else { return }
        endOfStreamPending = true
        deliverBacklogIfWanted()
    }

    /// The link failed: the connection is reset on this side.
    func reset() {
        close(error: ChannelError.connectionReset, promise: nil)
    }

    private func deliverBacklogIfWanted() {
        guard active, readPending, !deliveryScheduled, !backlog.isEmpty || endOfStreamPending else { return }
        // Delivered on the next turn, as an epoll loop reads only once it polls again.
        deliveryScheduled = true
        loop.execute { [weak self] in self?.deliverBacklog() }
    }

    private func deliverBacklog() {
        deliveryScheduled = false
        guard active, readPending, !closed else { return }
        readPending = false
        var readAnything = false
        while let buffer = backlog.popFirst(), !closed {
            readAnything = true
            pipeline.fireChannelRead(buffer)
        }
        if readAnything, !closed { pipeline.fireChannelReadComplete() }
        if endOfStreamPending, backlog.isEmpty, !closed {
            endOfInput()
            return
        }
        if options.autoRead, active, !readPending, !closed { pipeline.read() }
    }

    private func endOfInput() {
        endOfStreamPending = false
        inputClosed = true
        if options.allowRemoteHalfClosure, !outputClosed {
            pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        } else {
            close(error: nil, promise: nil)
        }
    }

    // MARK: ChannelCore

    var acceptedOutboundType: Any.Type? { ByteBuffer.self }
    var producedInboundType: Any.Type? { ByteBuffer.self }

    func write0<Message>(_ data: Message, promise: Promise<Void>?) {
        guard !closed else { return promise?.fail(ChannelError.ioOnClosedChannel) ?? () }
        guard !outputClosed else { return promise?.fail(ChannelError.outputClosed) ?? () }
        guard let buffer = data as? ByteBuffer else { return promise?.fail(ChannelError.operationUnsupported) ?? () }
        unflushed.append((buffer, promise))
        unflushedBytes += buffer.readableBytes
    }

    func flush0() {
        guard active, !unflushed.isEmpty else { return }
        let flushed = unflushed
        unflushed.removeAll(keepingCapacity: true)
        unflushedBytes = 0
        connection.carry(flushed.map(\.0), from: side)
        for (_, promise) in flushed { promise?.succeed(()) }
    }

    func read0() {
        guard !closed, !readPending else { return }
        readPending = true
        deliverBacklogIfWanted()
    }

    func close0(mode: CloseMode, promise: Promise<Void>?) {
        guard !closed else { return promise?.fail(ChannelError.alreadyClosed) ?? () }
        switch mode {
        case .output:
            guard !outputClosed else { return promise?.succeed(()) ?? () }
            flush0()
            outputClosed = true
            connection.carryEndOfStream(from: side)
            promise?.succeed(())
            pipeline.fireUserInboundEventTriggered(ChannelEvent.outputClosed)
            if inputClosed { close(error: nil, promise: nil) }
        case .input:
            inputClosed = true
            backlog.removeAll()
            promise?.succeed(())
            pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .all:
            close(error: nil, promise: promise)
        }
    }

    private func close(error: (any Error)?, promise: Promise<Void>?) {
        guard !closed else { return promise?.fail(ChannelError.alreadyClosed) ?? () }
        closed = true
        let wasActive = active
        active = false
        if !outputClosed, error == nil { connection.carryEndOfStream(from: side) }
        outputClosed = true
        connection.detach(side)
        backlog.removeAll()
        let dropped = unflushed
        unflushed.removeAll()
        unflushedBytes = 0
        for (_, pending) in dropped { pending?.fail(ChannelError.closedBeforeWriteCompleted) }
        if let error { pipeline.fireErrorCaught(error) }
        promise?.succeed(())
        if wasActive { pipeline.fireChannelInactive() }
        pipeline.channelDidClose()
        closePromise.succeed(())
    }

    func bind0(to address: SocketAddress, promise: Promise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    func connect0(to address: SocketAddress, promise: Promise<Void>?) {
        promise?.fail(active ? ChannelError.alreadyConnected : ChannelError.operationUnsupported)
    }

    func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?) {
        promise?.succeed(())
    }

    func channelReadReachedTail<Message>(_ data: Message) {}
    func errorCaughtReachedTail(_ error: any Error) {}
    func userInboundEventReachedTail(_ event: Any) {}

    var description: String {
        "SimulatedChannel(\(localAddress.map { "\($0)" } ?? "?") ↔ \(remoteAddress.map { "\($0)" } ?? "?"))"
    }
}
