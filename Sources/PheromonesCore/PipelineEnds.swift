/// Both ends of a pipeline, as one stage: the head (the transport's end, where inbound events start
/// and outbound operations end) and the tail (the application's end, where outbound operations start
/// and inbound events that no handler consumed end).
///
/// One object rather than two because each end uses only half of a stage: the head fires inbound
/// events along the stage's inbound links and takes outbound operations in its outbound `invoke`
/// methods; the tail starts outbound operations along the outbound links and takes inbound events in
/// its inbound `invoke` methods. So the inbound links are the head's (to the first inbound handler)
/// and the outbound links the tail's (to the last outbound handler); with no handlers, both lead back
/// to this stage. A second context per channel would cost every idle connection about 130 bytes.
///
/// The pipeline holds it through ``TransportContext``, the part that does not depend on the
/// transport's type.
class TransportContext: ChannelHandlerContext {
    /// Lets go of the transport, once the pipeline has let go of its channel: from then on,
    /// outbound operations that reach the head fail (or, for `flush` and `read`, do nothing).
    func detachTransport() {}
}

/// The ends of a pipeline whose transport is a `Core`.
///
/// Generic over the transport so that a write reaching the head calls it with neither an
/// existential nor reference counting (an unsafe unowned existential is retained and released
/// around every call).
final class PipelineEnds<Core: ChannelCore>: TransportContext, ChannelHandler {
    /// The transport, which every write ends in; nil once the pipeline has let go of its channel.
    ///
    /// Unretained, and called through as a guaranteed reference (no reference counting per write).
    /// Safe because the transport is the pipeline's channel itself (see `ChannelPipeline.init`), which
    /// the pipeline holds strongly for as long as this link is set: the pipeline clears the link
    /// (`detachTransport`) in the same step in which it lets go of the channel, and the ends belong
    /// to the pipeline.
    @exclusivity(unchecked) private var coreLink: Unmanaged<Core>?

    init(pipeline: ChannelPipeline, core: Core) {
        coreLink = .passUnretained(core)
        super.init(name: .head, pipeline: pipeline, retainsPipeline: false, inboundIn: nil, outboundIn: core.acceptedOutboundType)
    }

    /// The transport's types; once detached, types that fit anything (no handler is added for good
    /// to a closed channel's pipeline, see `ChannelPipeline.addHandlers`).
    override var types: MessageTypes {
        guard let coreLink else { return MessageTypes(inboundIn: nil, inboundOut: Any.self, outboundIn: Any.self, outboundOut: nil) }
        return coreLink._withUnsafeGuaranteedRef { core in
            MessageTypes(inboundIn: nil, inboundOut: core.producedInboundType ?? Any.self,
                         outboundIn: core.acceptedOutboundType, outboundOut: nil)
        }
    }
    override var anyHandler: any ChannelHandler { self }
    override func detachTransport() { coreLink = nil }

    // MARK: The head: outbound operations reach the transport

    override func invokeWrite<Message>(_ data: Message, promise: Promise<Void>?) {
        guard let coreLink else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        coreLink._withUnsafeGuaranteedRef { $0.write0(data, promise: promise) }
    }
    override func invokeWriteByteBuffer(_ data: ByteBuffer, promise: Promise<Void>?) {
        guard let coreLink else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        coreLink._withUnsafeGuaranteedRef { $0.writeByteBuffer0(data, promise: promise) }
    }
    override func invokeFlush() { coreLink?._withUnsafeGuaranteedRef { $0.flush0() } }
    override func invokeRead() { coreLink?._withUnsafeGuaranteedRef { $0.read0() } }
    override func invokeClose(mode: CloseMode, promise: Promise<Void>?) {
        guard let coreLink else { promise?.fail(ChannelError.alreadyClosed); return }
        coreLink._withUnsafeGuaranteedRef { $0.close0(mode: mode, promise: promise) }
    }
    override func invokeBind(to address: SocketAddress, promise: Promise<Void>?) {
        guard let coreLink else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        coreLink._withUnsafeGuaranteedRef { $0.bind0(to: address, promise: promise) }
    }
    override func invokeConnect(to address: SocketAddress, promise: Promise<Void>?) {
        guard let coreLink else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        coreLink._withUnsafeGuaranteedRef { $0.connect0(to: address, promise: promise) }
    }
    override func invokeTriggerUserOutboundEvent(_ event: Any, promise: Promise<Void>?) {
        guard let coreLink else { promise?.fail(ChannelError.ioOnClosedChannel); return }
        coreLink._withUnsafeGuaranteedRef { $0.triggerUserOutboundEvent0(event, promise: promise) }
    }

    // MARK: The tail: what no handler consumed is reported to the transport

    override func invokeChannelRegistered() {}
    override func invokeChannelActive() {}
    override func invokeChannelInactive() {}
    override func invokeChannelRead<Message>(_ data: Message) {
        coreLink?._withUnsafeGuaranteedRef { $0.channelReadReachedTail(data) }
    }
    override func invokeChannelReadComplete() {}
    override func invokeErrorCaught(_ error: any Error) {
        coreLink?._withUnsafeGuaranteedRef { $0.errorCaughtReachedTail(error) }
    }
    override func invokeUserInboundEventTriggered(_ event: Any) {
        coreLink?._withUnsafeGuaranteedRef { $0.userInboundEventReachedTail(event) }
    }
    override func invokeChannelWritabilityChanged() {}
}
