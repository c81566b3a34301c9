import Pheromones

/// A short-mode dial (the original's `SRouter` sending): writes one request, hands the one reply
/// to the dispatch waiting for it, and closes. No protocol stage follows it.
///
/// The reply has the reply timeout to arrive; what stands for "no reply" is the dialect's (the
/// native marker, or on the JSON wire a server that closes without a reply).
final class ShortDialStage: RouterStage {
    private var reply: Promise<Envelope?>?

    /// Writes `message` and waits (at most the reply timeout) for the one reply.
    func sendRequest(_ message: Envelope, reply: Promise<Envelope?>) {
        core.loop.assertInEventLoop()
        guard let context, !isClosed else {
            reply.fail(P2PError.connectionLost(peerAddress))
            return
        }
        self.reply = reply
        startTimer(configuration.replyTimeout) { stage in
            stage.closeNow(.readTimeout(peer: "\(stage.peerAddress)"))
        }
        context.writeAndFlush(dialect.shortRequest(message, nextID: core.nextMessageID))
    }

    override func received(_ message: Envelope, context: ChannelHandlerContext) {
        complete(.success(dialect.shortReply(message)))
        context.close()
    }

    override func receivedMalformed(_ error: WireError, context: ChannelHandlerContext) {
        complete(.failure(.mismatchedResponse(error.description)))
        context.close()
    }

    override func peerClosedOutput(context: ChannelHandlerContext) {
        complete(dialect.shortReplyAtEndOfStream(from: peerAddress))
        context.close()
    }

    override func connectionFailed(_ error: any Error) {
        complete(.failure(.mismatchedResponse("\(error)")))
    }

    override func failEverything(_ error: P2PError) {
        complete(.failure(error))
    }

    private func complete(_ result: Result<Envelope?, P2PError>) {
        guard let promise = reply else { return }
        reply = nil
        cancelTimer()
        promise.complete(result.mapError { $0 })
    }
}
