/// A pass-through stage that stops the channel reading while it cannot write, and lets it read again
/// once it can: a server that answers what it reads then holds, per connection, no more than the
/// write buffer's high watermark plus one read batch, however much a peer sends without reading
/// the answers.
///
/// Put it next to the transport, in front of everything else:
///
/// ```swift
/// try channel.pipeline.addHandlers([BackPressureHandler(), EchoHandler()])
/// try channel.pipeline.addHandlers([BackPressureHandler()] + LengthFieldFramer.handlers() + [MyHandler()])
/// ```
///
/// ### How
/// A channel asks its pipeline for more input with an outbound `read()`, after every read batch
/// (auto-read) or whenever the application calls `read()`. While the channel is unwritable (its
/// queued outbound bytes went above ``Channel/isWritable``'s high watermark) this handler keeps
/// that request instead of passing it on, so the transport stops reading: the kernel's buffers
/// fill and TCP's flow control pushes back on the peer. When `channelWritabilityChanged` says the
/// channel is writable again (its queue drained below the low watermark), the handler passes the
/// held request on and reading resumes. Several requests held in a row are one request.
///
/// When the channel turns unwritable the handler also flushes. Bytes written but not yet flushed
/// count toward the watermark too, and a later stage that flushes only once more input has
/// arrived would otherwise wait forever for input this handler holds back.
///
/// The handler passes every event on, `channelWritabilityChanged` included, so later stages can
/// react to writability as well.
///
/// ### Removal
/// Removing the handler passes a held request on, so the channel never stays stalled behind a
/// stage that is gone.
///
/// ### Cost
/// None per message: the handler declares that it passes messages, read completions, writes and
/// flushes through (``passThroughEvents``), so the pipeline routes those past it. Only `read()`
/// requests and writability changes reach it.
///
/// SwiftNIO's `BackPressureHandler` (NIOCore) behaves the same way.
public final class BackPressureHandler: ChannelDuplexHandler {
    /// Reads pass through unchanged.
    public typealias InboundIn = ByteBuffer
    /// Reads pass through unchanged.
    public typealias InboundOut = ByteBuffer
    /// Writes pass through unchanged.
    public typealias OutboundIn = ByteBuffer
    /// Writes pass through unchanged.
    public typealias OutboundOut = ByteBuffer

    /// Whether the channel was writable at the last writability change (or when the handler was added).
    private var writable = true
    /// Whether a `read()` request arrived while the channel was unwritable and has not been passed on.
    private var readHeld = false

    /// Messages, read completions, writes and flushes go past this stage (it never touches them).
    public static var passThroughEvents: PassThroughEvents { [.channelRead, .channelReadComplete, .write, .flush] }

    /// Creates a handler; it takes the channel's writability when it is added to a pipeline.
    public init() {}

    /// Whether a `read()` request is being held back because the channel is unwritable.
    public var isHoldingRead: Bool { readHeld }

    /// Takes the channel's current writability (the handler may join a channel that is already unwritable).
    public func handlerAdded(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
    }

    /// Passes a held `read()` request on: without this stage nothing would ever release it.
    public func handlerRemoved(context: ChannelHandlerContext) {
        releaseHeldRead(context: context)
    }

    /// Passes the request on while the channel is writable; holds it otherwise.
    public func read(context: ChannelHandlerContext) {
        if writable {
            context.read()
        } else {
            readHeld = true
        }
    }

    /// Releases a held `read()` when the channel turns writable, flushes when it turns unwritable
    /// (see the type's documentation), then passes the event on.
    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        if writable {
            releaseHeldRead(context: context)
        } else {
            context.flush()
        }
        context.fireChannelWritabilityChanged()
    }

    private func releaseHeldRead(context: ChannelHandlerContext) {
        guard readHeld else { return }
        readHeld = false
        context.read()
    }
}
