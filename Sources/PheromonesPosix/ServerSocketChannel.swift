import Glibc
import Logging
import PheromonesCore
import Synchronization

/// A listening TCP socket on an ``EpollEventLoop``. Each accepted connection becomes a
/// ``SocketChannel`` on a loop of the child group, where the child initializer installs its handlers.
///
/// Accepting is bounded per wake-up (``ServerSocketOptions/maxAcceptsPerWakeup``) so a flood of
/// connections cannot starve established ones. When the process runs out of descriptors
/// (`EMFILE`/`ENFILE`) the listener stops accepting for ``ServerSocketOptions/acceptBackoff`` instead
/// of spinning on the connection it cannot take, and resumes by itself once descriptors free up.
// Unchecked: mutable state is touched only on `loop`'s thread; `activeFlag` is atomic and
// `boundAddress` is written once before the channel is published.
public final class ServerSocketChannel: Channel, ChannelCore, Selectable, @unchecked Sendable {
    /// Installs a new connection's handlers; runs on the connection's loop.
    public typealias ChildInitializer = @Sendable (SocketChannel) throws -> Void

    /// Where accepted connections live.
    enum ChildLoops {
        /// On the group's loops, round robin.
        case roundRobin(MultiThreadedEventLoopGroup)
        /// On the listener's own loop (one listener per loop).
        case ownLoop
    }

    /// The loop that owns the listener.
    public let loop: EpollEventLoop
    /// The descriptor, the registration and the stage of life (see ``ChannelLifecycle``).
    private var lifecycle: ChannelLifecycle
    private var pipelineStorage: ChannelPipeline!
    private let closePromise: Promise<Void>
    private let options: ServerSocketOptions
    private let children: ChildLoops
    private let childOptions: SharedSocketOptions
    private let childInitializer: ChildInitializer
    private let boundAddress: SocketAddress
    /// The local address of every accepted connection, when it is known without asking the kernel:
    /// the listening address, unless that is a wildcard (then each connection's own address depends
    /// on where its peer reached us).
    private let childLocalAddress: SocketAddress?
    private let activeFlag = Atomic<Bool>(false)
    /// How many times accepting paused for want of descriptors (loop-confined; for tests and metrics).
    package private(set) var acceptPauses = 0
    /// The other listeners of a listener-per-loop server, closed with this one.
    private var siblings: [ServerSocketChannel] = []
    private var acceptPaused = false

    init(
        fd: CInt, address: SocketAddress, loop: EpollEventLoop, options: ServerSocketOptions,
        children: ChildLoops, childOptions: SocketOptions, childInitializer: @escaping ChildInitializer
    ) {
        self.lifecycle = ChannelLifecycle(fd: fd)
        self.boundAddress = address
        self.childLocalAddress = address.isSpecificHost ? address : nil
        self.loop = loop
        self.options = options
        self.children = children
        self.childOptions = SharedSocketOptions(childOptions)
        self.childInitializer = childInitializer
        closePromise = loop.makePromise(of: Void.self)
        pipelineStorage = ChannelPipeline(channel: self, eventLoop: loop)
    }

    deinit {
        // Not reached before the close in practice: until the close has finished, the pipeline holds the channel.
        if lifecycle.state != .closed { try? loop.posix.close(lifecycle.fd) }
    }

    // MARK: Channel

    public var pipeline: ChannelPipeline { pipelineStorage }
    public var eventLoop: any EventLoop { loop }
    public var closeFuture: Future<Void> { closePromise.futureResult }
    public var isActive: Bool { activeFlag.load(ordering: .relaxed) }
    public var isWritable: Bool { false }
    /// Nothing: a listener writes nothing.
    public var bufferedOutboundBytes: Int { 0 }
    public var localAddress: SocketAddress? { boundAddress }
    public var remoteAddress: SocketAddress? { nil }
    public var parent: (any Channel)? { nil }

    /// Registers the listening socket and starts accepting. When this throws, the caller closes the
    /// channel (which closes the socket).
    func register() throws(IOError) {
        loop.assertInEventLoop()
        guard lifecycle.register() else { return }
        try lifecycle.enterPoller(self, loop: loop, interest: .readable)
        pipeline.fireChannelRegistered()
        guard lifecycle.activate() else { return }
        activeFlag.store(true, ordering: .relaxed)
        pipeline.fireChannelActive()
    }

    // MARK: Accepting

    package func handleReadiness(_ events: UInt32) {
        guard lifecycle.state == .active, !acceptPaused else { return }
        for _ in 0..<options.maxAcceptsPerWakeup {
            let accepted: IOResult<CInt>
            var peer: SocketAddress?
            do throws(IOError) {
                accepted = try loop.posix.accept(lifecycle.fd, peer: &peer)
            } catch {
                handleAcceptError(error)
                return
            }
            guard case .processed(let childFD) = accepted else { return }
            switch children {
            case .roundRobin(let group): hand(childFD, peer: peer, to: group.nextLoop())
            case .ownLoop: startChild(childFD, peer: peer, on: loop)
            }
        }
    }

    private func handleAcceptError(_ error: IOError) {
        switch error.errnoCode {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            loop.logger.warning("out of descriptors or memory: pausing accepts", metadata: [
                "error": "\(error)", "backoff": "\(options.acceptBackoff)",
            ])
            pauseAccepting()
        default:
            pipeline.fireErrorCaught(error)
        }
    }

    private func pauseAccepting() {
        guard let token = lifecycle.token else { return }
        acceptPaused = true
        acceptPauses += 1
        loop.setInterest([], for: token)
        loop.scheduleTask(in: options.acceptBackoff) { [self] in
            guard lifecycle.state == .active else { return }
            acceptPaused = false
            loop.setInterest(.readable, for: token)
        }
    }

    private func hand(_ childFD: CInt, peer: SocketAddress?, to childLoop: EpollEventLoop) {
        if childLoop === loop {
            startChild(childFD, peer: peer, on: childLoop)
        } else if !childLoop.tryExecute({ [self] in startChild(childFD, peer: peer, on: childLoop) }) {
            // The child group has shut down: nobody will serve the connection, so close it rather
            // than leak its descriptor (and leave the peer waiting on it).
            loop.logger.debug("the child loop has shut down: closing an accepted connection")
            try? loop.posix.close(childFD)
        }
    }

    /// Creates the connection's channel on its loop, installs its handlers, registers it, and fires
    /// `channelRegistered` and `channelActive`. `peer` is the address `accept4` reported.
    private func startChild(_ childFD: CInt, peer: SocketAddress?, on childLoop: EpollEventLoop) {
        let child = SocketChannel(fd: childFD, loop: childLoop, options: childOptions, parent: self)
        childLoop.metrics?.accepted.increment()
        do {
            try childOptions.value.apply(to: childFD, isInternet: boundAddress.isInternet, using: childLoop.posix)
            try childInitializer(child)
            try child.register(connected: true)
        } catch {
            childLoop.logger.warning("could not start an accepted connection", metadata: ["error": "\(error)"])
            child.close0(mode: .all, promise: nil)
            return
        }
        child.becomeActive(knownLocal: childLocalAddress, knownRemote: peer)
    }

    package func closeForShutdown() { close0(mode: .all, promise: nil) }

    package func registrationFailed(_ error: IOError) { close(error: error, promise: nil) }

    /// Makes this listener close `others` when it closes (listener per loop).
    func adoptSiblings(_ others: [ServerSocketChannel]) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen else {
            for sibling in others { sibling.close() }
            return
        }
        siblings = others
    }

    // MARK: ChannelCore

    public var acceptedOutboundType: Any.Type? { Never.self }
    public var producedInboundType: Any.Type? { Never.self }

    public func write0<Message>(_ data: Message, promise: Promise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    public func flush0() {}
    public func read0() {}

    public func close0(mode: CloseMode, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        close(error: nil, promise: promise)
    }

    /// Closes the listener (any `mode`: a listener has no halves), and its siblings; `error`, if
    /// any, reaches `errorCaught` first. Only the first request closes (see ``ChannelLifecycle``).
    private func close(error: (any Error)?, promise: Promise<Void>?) {
        switch lifecycle.beginClose(promise: promise) {
        case .alreadyClosed:
            promise?.fail(ChannelError.alreadyClosed)
        case .joined:
            break
        case .close:
            activeFlag.store(false, ordering: .relaxed)
            if let error { pipeline.fireErrorCaught(error) }
            let others = siblings
            siblings = []
            for sibling in others { sibling.close() }
            lifecycle.releaseDescriptor(loop: loop)
            // The socket file a Unix listener made goes with it (an abstract name needs nothing).
            if case .unix(let unix) = boundAddress { loop.posix.removeSocketFile(unix) }
            ChannelLifecycle.finish(lifecycle.finishClose(), promise: promise, pipeline: pipeline) { closePromise.succeed(()) }
        }
    }

    public func bind0(to address: SocketAddress, promise: Promise<Void>?) { promise?.fail(ChannelError.alreadyConnected) }
    public func connect0(to address: SocketAddress, promise: Promise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    public func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?) { promise?.fail(ChannelError.operationUnsupported) }
    public func channelReadReachedTail<Message>(_ data: Message) {}
    public func errorCaughtReachedTail(_ error: any Error) {
        loop.logger.debug("listener error", metadata: ["error": "\(error)", "address": "\(boundAddress)"])
    }
    public func userInboundEventReachedTail(_ event: Any) {}
}

extension ServerSocketChannel: SocketOptionProvider, SocketOptionTarget {
    public func setSocketOption<Value>(_ option: SocketOption<Value>, to value: Value) -> Future<Void> {
        setOnSocket(option, to: value)
    }

    public func socketOption<Value>(_ option: SocketOption<Value>) -> Future<Value> {
        readFromSocket(option)
    }

    var openDescriptor: CInt? { lifecycle.isOpen ? lifecycle.fd : nil }
}
