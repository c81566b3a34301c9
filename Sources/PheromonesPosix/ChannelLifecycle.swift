import PheromonesCore

/// The life of a socket channel, shared by ``SocketChannel`` and ``ServerSocketChannel``: created,
/// registered with its loop, possibly connecting, active, closing, closed.
///
/// A state machine in SwiftNIO's manner: each transition updates the state and returns what the
/// channel must do, and the channel does it afterwards. So when the channel then fires an event and
/// a handler re-enters it (writes from `errorCaught`, closes from `channelInactive` or from a write
/// promise's callback), the handler finds the state already final: the channel closes exactly once,
/// one failure reaches `errorCaught` once, and `isActive` is false from the moment the channel
/// decided to close. The steps every close ends with are ``finish(_:promise:pipeline:completingCloseFuture:)``.
///
/// Loop-confined, like the channel that holds it.
struct ChannelLifecycle {
    enum State: Equatable {
        /// Created, handlers being installed.
        case fresh
        /// Registered with its loop (`channelRegistered` fired); not connected.
        case registered
        /// A non-blocking connect is under way.
        case connecting
        /// Connected or listening (`channelActive` fired).
        case active
        /// Decided to close: no longer active, and every operation fails, but the close has not
        /// finished (`errorCaught` is being delivered, or the close waits for the loop's next turn).
        case closing
        /// Closed: the descriptor is gone, `channelInactive` has fired.
        case closed
    }

    /// The socket, closed exactly once, by ``releaseDescriptor(loop:)``.
    let fd: CInt
    /// The registration with the loop's poller, while there is one.
    private(set) var token: Token?
    private(set) var state = State.fresh
    /// Whether `channelActive` fired, so that `channelInactive` must.
    private var firedActive = false
    /// Close requests made while closing: they complete when the close does.
    private var closeWaiters: [Promise<Void>] = []

    init(fd: CInt) {
        self.fd = fd
    }

    /// Whether the channel has not decided to close yet.
    var isOpen: Bool { state != .closing && state != .closed }

    /// Created → registered. Returns false (do nothing) if the channel is past that.
    mutating func register() -> Bool {
        guard state == .fresh else { return false }
        state = .registered
        return true
    }

    /// Adds the socket to the loop's poller with `interest`.
    mutating func enterPoller(_ selectable: any Selectable, loop: EpollEventLoop, interest: Interest) throws(IOError) {
        token = try loop.register(selectable, fd: fd, interest: interest)
    }

    /// Removes the socket from the poller, if it is there, and closes it. Called once, while closing.
    ///
    /// The close itself takes the socket out of epoll (it is the open file's only descriptor), so
    /// the registration is only forgotten: no `epoll_ctl(DEL)` per connection.
    mutating func releaseDescriptor(loop: EpollEventLoop) {
        assert(state == .closing, "releasing the descriptor of a channel that is not closing")
        if let token { loop.deregister(token, closing: true) }
        token = nil
        try? loop.posix.close(fd)
    }

    /// Registered → connecting.
    mutating func beginConnecting() -> Bool {
        guard state == .registered else { return false }
        state = .connecting
        return true
    }

    /// Registered or connecting → active. Returns false (fire nothing) if the channel closed
    /// meanwhile, for instance from a handler's `channelRegistered`.
    mutating func activate() -> Bool {
        guard state == .registered || state == .connecting else { return false }
        state = .active
        firedActive = true
        return true
    }

    /// What a close request asks the channel to do.
    enum CloseDecision {
        /// Close: the state is now `closing`. Release the transport, then ``ChannelLifecycle/finish(_:promise:pipeline:completingCloseFuture:)``.
        case close
        /// A close is already under way; the promise was kept and completes with it.
        case joined
        /// Already closed: fail the promise with ``ChannelError/alreadyClosed``.
        case alreadyClosed
    }

    /// Decides to close. Only the first request closes; one made while closing waits for that close.
    mutating func beginClose(promise: Promise<Void>?) -> CloseDecision {
        switch state {
        case .closed:
            return .alreadyClosed
        case .closing:
            if let promise { closeWaiters.append(promise) }
            return .joined
        case .fresh, .registered, .connecting, .active:
            state = .closing
            return .close
        }
    }

    /// What is left to do once the transport is released.
    struct Completion {
        /// Whether `channelInactive` must fire (`channelActive` did).
        var firesInactive: Bool
        /// Close requests made while closing.
        var waiters: [Promise<Void>]
    }

    /// Closing → closed.
    mutating func finishClose() -> Completion {
        assert(state == .closing, "finishing a close that did not begin")
        state = .closed
        defer { closeWaiters = [] }
        return Completion(firesInactive: firedActive, waiters: closeWaiters)
    }

    /// The steps every close ends with, once the transport is released and ``finishClose()`` has
    /// returned `completion`: the close requests succeed, `channelInactive` fires (if
    /// `channelActive` did), the handlers are removed, and `closeFuture` completes
    /// (`completingCloseFuture`).
    static func finish(_ completion: Completion, promise: Promise<Void>?, pipeline: ChannelPipeline, completingCloseFuture: () -> Void) {
        promise?.succeed(())
        for waiter in completion.waiters { waiter.succeed(()) }
        if completion.firesInactive { pipeline.fireChannelInactive() }
        pipeline.channelDidClose()
        completingCloseFuture()
    }
}
