/// What ``ChannelPipeline/channel`` returns once the channel has closed, the pipeline has let go
/// of it and nothing else holds it: a closed, inactive stand-in, so that a handler that kept its
/// context can still ask for its channel.
///
/// Its operations go through the pipeline, whose head has let go of the transport: writes fail
/// with ``ChannelError/ioOnClosedChannel``, `close` with ``ChannelError/alreadyClosed``, and `flush`
/// and `read` do nothing.
// Sendable: its one stored property is (a pipeline is loop-confined behind its assertions).
final class DeadChannel: Channel {
    let pipeline: ChannelPipeline

    init(pipeline: ChannelPipeline) {
        self.pipeline = pipeline
    }

    var eventLoop: any EventLoop { pipeline.eventLoop }
    /// Already complete: the channel this stands in for has closed.
    var closeFuture: Future<Void> { pipeline.eventLoop.makeSucceededFuture(()) }
    var isActive: Bool { false }
    var isWritable: Bool { false }
    var localAddress: SocketAddress? { nil }
    var remoteAddress: SocketAddress? { nil }
    var parent: (any Channel)? { nil }
    /// Nothing: a closed channel's writes have failed.
    var bufferedOutboundBytes: Int { 0 }
}
