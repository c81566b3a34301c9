/// A stage of a ``ChannelPipeline``.
///
/// Handlers are plain classes confined to their channel's loop; they need not be `Sendable`.
/// Conform to ``ChannelInboundHandler``, ``ChannelOutboundHandler`` or both
/// (``ChannelDuplexHandler``); a handler that conforms to neither only sees being added and removed.
public protocol ChannelHandler: AnyObject {
    /// Called once the handler is in the pipeline, before any event reaches it.
    func handlerAdded(context: ChannelHandlerContext)
    /// Called once the handler has left the pipeline; no event reaches it afterwards.
    func handlerRemoved(context: ChannelHandlerContext)
    /// The per-message events this handler only passes on unchanged, which the pipeline may
    /// therefore route past it. Default: none.
    ///
    /// A stage that acts on a few rare events (writability, say) but sits in the path of every
    /// message costs a hop per message and per event; declaring the events it does not touch makes
    /// it free on the data path. Declare only events whose methods keep the default (forwarding)
    /// implementation: the handler's method for a declared event may never be called.
    /// `channelRead` and `write` are honoured only for stages that pass their message type through
    /// unchanged (`InboundOut == InboundIn`, `OutboundOut == OutboundIn`).
    static var passThroughEvents: PassThroughEvents { get }
}

extension ChannelHandler {
    public func handlerAdded(context: ChannelHandlerContext) {}
    public func handlerRemoved(context: ChannelHandlerContext) {}
    public static var passThroughEvents: PassThroughEvents { [] }
}

/// Per-message events a handler passes on unchanged (see ``ChannelHandler/passThroughEvents``).
///
/// Only the events that flow for every message or read batch are listed: routing past a stage
/// matters there, and the rare events (activity, errors, user events, writability, close) always
/// reach every stage.
public struct PassThroughEvents: OptionSet, Sendable {
    public let rawValue: UInt8
    /// Creates a set from its raw bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Inbound messages (`channelRead`).
    public static let channelRead = PassThroughEvents(rawValue: 1 << 0)
    /// The end of a read batch (`channelReadComplete`).
    public static let channelReadComplete = PassThroughEvents(rawValue: 1 << 1)
    /// Outbound messages (`write`).
    public static let write = PassThroughEvents(rawValue: 1 << 2)
    /// `flush`.
    public static let flush = PassThroughEvents(rawValue: 1 << 3)
    /// Requests for more input (`read`).
    public static let read = PassThroughEvents(rawValue: 1 << 4)
}

/// A handler for events travelling from the network toward the application (head to tail).
///
/// The message types are part of the handler's declaration, and the pipeline checks them when it is
/// configured: a handler whose `InboundIn` is not its inbound neighbour's `InboundOut` is rejected by
/// ``ChannelPipeline/addHandler(_:name:position:)`` with a ``ChannelPipelineError/typeMismatch(_:)``
/// that names both handlers, instead of failing on the first message. Messages are passed as their
/// own type from stage to stage: no boxing, no cast per hop.
///
/// Every method has a default that forwards the event to the next handler. The default
/// `channelRead` exists only when `InboundOut == InboundIn` (a pass-through stage); a stage that
/// changes the type implements it.
public protocol ChannelInboundHandler: ChannelHandler {
    /// The message type this handler reads.
    associatedtype InboundIn
    /// The message type this handler passes on to the next inbound handler (`Never`: none).
    associatedtype InboundOut = Never
    /// The message type this handler writes toward the network (`Never`: it does not write).
    associatedtype OutboundOut = Never

    /// The channel was registered with its event loop.
    func channelRegistered(context: ChannelHandlerContext)
    /// The channel became connected.
    func channelActive(context: ChannelHandlerContext)
    /// The channel was closed. Fires exactly once, after `channelActive`.
    func channelInactive(context: ChannelHandlerContext)
    /// A message arrived.
    func channelRead(context: ChannelHandlerContext, data: InboundIn)
    /// The current batch of reads is over: a good moment to flush.
    func channelReadComplete(context: ChannelHandlerContext)
    /// An error happened; the stage may handle it or pass it on.
    func errorCaught(context: ChannelHandlerContext, error: any Error)
    /// A user-defined or framework event (``ChannelEvent``, ``IdleStateEvent``, ...).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any)
    /// The channel's writability flipped (see ``Channel/isWritable``).
    func channelWritabilityChanged(context: ChannelHandlerContext)

    /// Part of the pipeline's machinery; do not implement it. Delivers a `ByteBuffer` to a stage
    /// whose `InboundIn` the pipeline has checked is `ByteBuffer`. The default implementation is
    /// specialised in the handler's own module, so the most common hop costs no generic
    /// indirection (no metadata lookup, no value-witness copy).
    func _channelReadByteBuffer(context: ChannelHandlerContext, data: ByteBuffer)
}

extension ChannelInboundHandler {
    public func channelRegistered(context: ChannelHandlerContext) { context.fireChannelRegistered() }
    public func channelActive(context: ChannelHandlerContext) { context.fireChannelActive() }
    public func channelInactive(context: ChannelHandlerContext) { context.fireChannelInactive() }
    public func channelReadComplete(context: ChannelHandlerContext) { context.fireChannelReadComplete() }
    public func errorCaught(context: ChannelHandlerContext, error: any Error) { context.fireErrorCaught(error) }
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
    }
    public func channelWritabilityChanged(context: ChannelHandlerContext) { context.fireChannelWritabilityChanged() }
}

extension ChannelInboundHandler {
    @inlinable
    public func _channelReadByteBuffer(context: ChannelHandlerContext, data: ByteBuffer) {
        channelRead(context: context, data: unsafeBitCast(data, to: InboundIn.self))
    }
}

extension ChannelInboundHandler where InboundOut == InboundIn {
    /// Passes the message on unchanged.
    public func channelRead(context: ChannelHandlerContext, data: InboundIn) { context.fireChannelRead(data) }
}

/// A handler for operations travelling from the application toward the network (tail to head).
///
/// As for inbound handlers, `OutboundIn` must equal the `OutboundOut` of whatever writes to this
/// stage, checked when the pipeline is configured. The default `write` exists only for pass-through
/// stages (`OutboundOut == OutboundIn`).
public protocol ChannelOutboundHandler: ChannelHandler {
    /// The message type this handler accepts for writing.
    associatedtype OutboundIn
    /// The message type this handler writes toward the network (`Never`: none).
    associatedtype OutboundOut = Never

    /// Queues a message; `promise` completes when the transport has sent it (or failed to).
    func write(context: ChannelHandlerContext, data: OutboundIn, promise: Promise<Void>?)
    /// Sends what is queued.
    func flush(context: ChannelHandlerContext)
    /// Requests input (auto-read off).
    func read(context: ChannelHandlerContext)
    /// Closes the channel or one direction of it.
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?)
    /// Binds to a local address.
    func bind(context: ChannelHandlerContext, to address: SocketAddress, promise: Promise<Void>?)
    /// Connects to a remote address.
    func connect(context: ChannelHandlerContext, to address: SocketAddress, promise: Promise<Void>?)
    /// A user-defined outbound event.
    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: Promise<Void>?)

    /// Part of the pipeline's machinery; do not implement it. Delivers a `ByteBuffer` write to a
    /// stage whose `OutboundIn` the pipeline has checked is `ByteBuffer` (see
    /// ``ChannelInboundHandler/_channelReadByteBuffer(context:data:)``).
    func _writeByteBuffer(context: ChannelHandlerContext, data: ByteBuffer, promise: Promise<Void>?)
}

extension ChannelOutboundHandler {
    public func flush(context: ChannelHandlerContext) { context.flush() }
    public func read(context: ChannelHandlerContext) { context.read() }
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        context.close(mode: mode, promise: promise)
    }
    public func bind(context: ChannelHandlerContext, to address: SocketAddress, promise: Promise<Void>?) {
        context.bind(to: address, promise: promise)
    }
    public func connect(context: ChannelHandlerContext, to address: SocketAddress, promise: Promise<Void>?) {
        context.connect(to: address, promise: promise)
    }
    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: Promise<Void>?) {
        context.triggerUserOutboundEvent(event, promise: promise)
    }
}

extension ChannelOutboundHandler {
    @inlinable
    public func _writeByteBuffer(context: ChannelHandlerContext, data: ByteBuffer, promise: Promise<Void>?) {
        write(context: context, data: unsafeBitCast(data, to: OutboundIn.self), promise: promise)
    }
}

extension ChannelOutboundHandler where OutboundOut == OutboundIn {
    /// Passes the message on unchanged.
    public func write(context: ChannelHandlerContext, data: OutboundIn, promise: Promise<Void>?) {
        context.write(data, promise: promise)
    }
}

/// A handler that takes part in both directions.
public typealias ChannelDuplexHandler = ChannelInboundHandler & ChannelOutboundHandler

/// A handler that can remove itself from the pipeline once its job is done (a handshake stage).
extension ChannelHandlerContext {
    /// Removes this context's handler from the pipeline. Events already passing through it continue
    /// to the next handler; later events skip it.
    public func removeHandler() throws(ChannelPipelineError) {
        try pipeline.removeHandler(context: self)
    }
}
