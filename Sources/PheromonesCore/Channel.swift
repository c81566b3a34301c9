/// A connection (or listener) whose events flow through a ``ChannelPipeline`` of handlers.
///
/// A channel lives on one ``EventLoop`` for its whole life. The methods on this protocol are safe
/// to call from any thread: off the loop they hop onto it. Handlers, the pipeline and the
/// transport underneath are loop-confined.
///
/// A channel stays alive while anything refers to it: its pipeline holds it until it has closed,
/// and a context a handler kept, a reference the application holds or a pending future keep it
/// after that. Nothing it does after the close traps: writes fail with
/// ``ChannelError/ioOnClosedChannel``, `close` with ``ChannelError/alreadyClosed``, and `flush` and
/// `read` do nothing. A closed channel nothing refers to is freed.
///
/// A failure (a reset, a failed write) closes the channel once: `isActive` turns false first, then
/// `errorCaught` fires once, then `channelInactive`. What handlers do meanwhile fails at once rather
/// than failing the channel again: a write from `errorCaught`, `channelInactive` or a write
/// promise's callback fails its promise, and a close from `errorCaught` completes when the close does.
public protocol Channel: AnyObject, Sendable {
    /// The loop that owns this channel.
    var eventLoop: any EventLoop { get }
    /// The handlers that process this channel's events.
    var pipeline: ChannelPipeline { get }
    /// Completes once the channel has closed and its inactive event has run.
    var closeFuture: Future<Void> { get }
    /// Whether the channel is connected (a snapshot when read off the loop).
    var isActive: Bool { get }
    /// Whether writes are below the high watermark (a snapshot when read off the loop).
    var isWritable: Bool { get }
    /// The local address, once bound.
    var localAddress: SocketAddress? { get }
    /// The peer's address, once connected.
    var remoteAddress: SocketAddress? { get }
    /// The listener that accepted this channel, if any.
    var parent: (any Channel)? { get }
    /// Bytes written to the channel and not yet handed to the transport (the kernel, for a
    /// socket): what grows while the peer does not read. Call on the channel's loop.
    ///
    /// Writability (``isWritable``) turns on this figure with hysteresis, for back pressure; this
    /// is the figure itself, for bounds above the watermarks (a per-peer queue limit, say).
    var bufferedOutboundBytes: Int { get }
}

/// How much of a channel to close.
public enum CloseMode: Sendable, Hashable {
    /// Stop sending: flush what is queued, then `shutdown(SHUT_WR)`. The peer sees end-of-stream;
    /// reading goes on.
    case output
    /// Stop receiving (`shutdown(SHUT_RD)`).
    case input
    /// Close the channel entirely; queued writes that have not been sent fail.
    case all
}

/// The transport underneath a pipeline: what the pipeline's head calls for outbound operations,
/// and what its tail reports unhandled inbound events to.
///
/// Implemented by the socket channels in `PheromonesPosix` and the embedded channel; users do not
/// implement it. All methods are called on the channel's loop.
public protocol ChannelCore: AnyObject {
    /// The outbound message type the transport accepts (`ByteBuffer` for sockets), or `nil` for any.
    var acceptedOutboundType: Any.Type? { get }
    /// The inbound message type the transport produces (`ByteBuffer` for sockets), or `nil` for any.
    var producedInboundType: Any.Type? { get }
    /// Queues `data` for sending; `promise` completes when it has been handed to the kernel.
    func write0<Message>(_ data: Message, promise: Promise<Void>?)
    /// Queues a `ByteBuffer` (the common case, without going through the generic `write0`).
    func writeByteBuffer0(_ data: ByteBuffer, promise: Promise<Void>?)
    /// Sends everything queued.
    func flush0()
    /// Asks for more input (when auto-read is off).
    func read0()
    /// Closes all or half of the channel.
    func close0(mode: CloseMode, promise: Promise<Void>?)
    /// Binds the channel to a local address.
    func bind0(to address: SocketAddress, promise: Promise<Void>?)
    /// Connects the channel to a remote address.
    func connect0(to address: SocketAddress, promise: Promise<Void>?)
    /// Handles an outbound user event that no handler consumed.
    func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?)
    /// Receives a read that reached the end of the pipeline unhandled.
    func channelReadReachedTail<Message>(_ data: Message)
    /// Receives an error that reached the end of the pipeline unhandled.
    func errorCaughtReachedTail(_ error: any Error)
    /// Receives a user event that reached the end of the pipeline unhandled.
    func userInboundEventReachedTail(_ event: Any)
}

extension ChannelCore {
    /// Queues a `ByteBuffer` through the generic `write0`.
    public func writeByteBuffer0(_ data: ByteBuffer, promise: Promise<Void>?) { write0(data, promise: promise) }
}

extension Channel {
    /// Sends `data` through the whole pipeline (from the tail) without flushing.
    public func write<Message: Sendable>(_ data: Message) -> Future<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        onLoop { $0.pipeline.write(data, promise: promise) }
        return promise.futureResult
    }

    /// Sends `data` through the whole pipeline and flushes.
    public func writeAndFlush<Message: Sendable>(_ data: Message) -> Future<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        onLoop { $0.pipeline.writeAndFlush(data, promise: promise) }
        return promise.futureResult
    }

    /// Flushes what the pipeline has queued.
    public func flush() { onLoop { $0.pipeline.flush() } }

    /// Requests more input when auto-read is off.
    public func read() { onLoop { $0.pipeline.read() } }

    /// Closes the channel (or one direction of it).
    @discardableResult
    public func close(mode: CloseMode = .all) -> Future<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        onLoop { $0.pipeline.close(mode: mode, promise: promise) }
        return promise.futureResult
    }

    private func onLoop(_ body: @escaping @Sendable (Self) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            eventLoop.execute { body(self) }
        }
    }
}
