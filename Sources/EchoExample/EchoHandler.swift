import Pheromones

/// Writes back every message it reads, flushing once per read batch, and finishes the
/// conversation properly when the peer has finished sending.
///
/// In `echo` mode the messages are whatever the socket read; in `framed` mode they are the payloads
/// the length framer decoded (and it re-encodes the replies).
///
/// ### End of input
/// The example's connections allow half-closure (see ``EchoProtocol/connectionOptions``): when the
/// peer shuts down its output, the channel stays open and fires ``ChannelEvent/inputClosed``
/// instead of closing. Every byte the peer sent has been read and answered by then, though the
/// answers may still wait in the write queue, so the handler closes only the output
/// (`close(mode: .output)`), which sends everything queued first and then shuts the socket's write
/// side. With both directions done the channel closes. A client that sends, shuts its write side
/// and then reads gets every byte back.
///
/// ### Graceful shutdown
/// Told to quiesce (``ChannelShouldQuiesceEvent``: the server is shutting down), the handler closes
/// the output the same way: the answers to what was read go out, then the client sees the end of
/// the stream.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.write(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(mode: .output, promise: nil)
        } else if event is ChannelShouldQuiesceEvent {
            context.flush()
            context.close(mode: .output, promise: nil)
        }
    }
}
