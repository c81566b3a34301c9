import Pheromones

/// Counts the envelopes that cross the wire, both ways, into the node's ``NodeMetrics``: a stage
/// right above the wire's codec, so that every message is counted once whoever sent it (the
/// protocol, the router, the node).
final class TrafficCounter: ChannelDuplexHandler {
    typealias InboundIn = Envelope
    typealias InboundOut = Envelope
    typealias OutboundIn = Envelope
    typealias OutboundOut = Envelope

    /// Read completions, flushes and read requests go past this stage.
    static var passThroughEvents: PassThroughEvents { [.channelReadComplete, .flush, .read] }

    private let metrics: NodeMetrics

    init(metrics: NodeMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: Envelope) {
        metrics.received(data)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: Envelope, promise: Promise<Void>?) {
        metrics.sent(data)
        context.write(data, promise: promise)
    }
}
