import Pheromones

/// The last stage of a fuzzed pipeline: records every message and every error that reaches it,
/// so a target can compare them with what the input should have produced.
public final class Collector<Message>: ChannelInboundHandler {
    /// The stage reads the decoder's messages.
    public typealias InboundIn = Message

    /// The messages, in order.
    public private(set) var messages: [Message] = []
    /// The errors fired through the pipeline, in order.
    public private(set) var errors: [any Error] = []

    /// Creates an empty collector.
    public init() {}

    /// Records the message.
    public func channelRead(context: ChannelHandlerContext, data: Message) {
        messages.append(data)
    }

    /// Records the error (and does not pass it on, so the channel does not throw it).
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }
}
