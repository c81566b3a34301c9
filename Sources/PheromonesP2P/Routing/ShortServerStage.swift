import Pheromones

/// A short-mode accepted connection (the original's `SRouter` serving): lets one request through
/// to the protocol, writes its answer, and closes once that is flushed.
///
/// The request has the handshake timeout to arrive, and the answer the reply timeout to go out
/// (the dialer gives up then): a peer that sends nothing, or does not read its answer, and a
/// protocol that does not answer, cannot hold the connection.
final class ShortServerStage: RouterStage {
    private var requestSeen = false
    /// The id of the request the protocol owes its answer to, once it has come.
    private var owedRequestID: UInt64?

    override func connectionActive(context: ChannelHandlerContext) {
        startHandshakeTimer { stage in .readTimeout(peer: "\(stage.peerAddress)") }
    }

    override func received(_ request: Envelope, context: ChannelHandlerContext) {
        guard takeRequest() else { return }
        guard validated(request) else {
            context.close()
            return
        }
        if request.hopLimit > 0, !core.noteBroadcast(request, from: self) {
            // A broadcast seen before: the protocol does not see it again.
            context.close()
            return
        }
        owedRequestID = request.messageID
        core.metrics.deliveredToProtocol()
        context.fireChannelRead(request)
    }

    override func receivedMalformed(_ error: WireError, context: ChannelHandlerContext) {
        guard takeRequest() else { return }
        owedRequestID = 0
        context.fireErrorCaught(error)
    }

    /// Whether this is the first request (the only one taken); starts the wait for its answer.
    private func takeRequest() -> Bool {
        guard !requestSeen else { return false }
        requestSeen = true
        startTimer(configuration.replyTimeout) { stage in
            stage.logger.debug("the answer to a short request did not go out in time; closing", metadata: ["peer": "\(stage.peerAddress)"])
            stage.closeNow(.writeTimeout(stage.peerAddress))
        }
        return true
    }

    override func peerClosedOutput(context: ChannelHandlerContext) {
        if !requestSeen { context.close() }
    }

    override func deliver(_ answer: Envelope?, promise: Promise<Void>?, context: ChannelHandlerContext) {
        let requestID = owedRequestID ?? 0
        owedRequestID = nil
        guard let reply = dialect.shortAnswer(answer, to: requestID, localName: configuration.name, nextID: core.nextMessageID) else {
            // Nothing to write: closing without a reply says it.
            promise?.succeed(())
            context.close()
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(reply, promise: written)
        written.futureResult.whenCompleteOnLoop { result in
            promise?.complete(result)
            context.close()
        }
    }
}
