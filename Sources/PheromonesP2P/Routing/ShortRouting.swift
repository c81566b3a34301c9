import Pheromones
import PheromonesNoise

/// Short mode (the original's `SRouter`): a connection per message. A route is an address; each
/// message dials it, writes itself, reads the one reply and closes. A conversation is a loop of
/// such dispatches, each reply handed to this node's protocol, whose answer is the next message.
struct ShortRouting: RoutingMode {
    var connectionType: ConnectionType { .short }

    func acceptedStage(in core: NodeCore) -> RouterStage {
        core.makeStage(ShortServerStage.self, dialedAddress: nil, facts: ConnectionFacts(direction: .inbound, generation: 0))
    }

    /// Records the address (and the peer id each dial must find there, if pinned); nothing is
    /// dialed until a message is sent.
    func add(name: String, address: SocketAddress, pin: PeerID?, in core: NodeCore) -> Future<Void> {
        do {
            try core.addAddress(name: name, address: address, pinned: true, pin: pin)
            return core.loop.makeSucceededFuture(())
        } catch {
            return core.loop.makeFailedFuture(error)
        }
    }

    func addRoute(name: String, address: SocketAddress, over stage: RouterStage?, in core: NodeCore) throws(P2PError) {
        try core.addAddress(name: name, address: address, pinned: false)
    }

    func send(_ outgoing: Outgoing, to address: SocketAddress, in core: NodeCore) {
        switch outgoing {
        case .dispatch(let message, let reply):
            core.dialOnce(address, message).cascade(to: reply)
        case .conversation(let message, let conversation):
            converse(conversation, sending: message, to: address, in: core)
        case .oneWay(let message, _):
            core.dialOnce(address, message).whenFailure { [logger = core.logger] error in
                logger.debug("a broadcast did not reach a peer", metadata: ["address": "\(address)", "error": "\(escapedDescription(of: error))"])
            }
        }
    }

    /// The routes the application added (the others are addresses the protocol learned).
    func reachesByDefault(_ route: RouteTable.Route, in table: RouteTable) -> Bool {
        route.isPinned
    }

    /// The original's `for msg != nil { Dispatch; Handle }`, on the loop: sends `message`, hands
    /// the reply to the protocol, and sends its answer, until either side answers nothing.
    private func converse(_ conversation: Conversation, sending message: Envelope, to address: SocketAddress, in core: NodeCore) {
        conversation.sent(message, awaitingAnswerWithin: core.configuration.replyTimeout)
        let bound = LoopBound(core, eventLoop: core.loop)
        core.dialOnce(address, message).whenCompleteOnLoop { result in
            guard !conversation.isFinished else { return }
            switch result {
            case .failure(let error):
                conversation.fail(error)
            case .success(nil):
                conversation.complete(.completedByPeer)
            case .success(let reply?):
                conversation.received(reply)
                bound.value.handleLocally(reply, from: address) { answer in
                    switch answer {
                    case .failure(let error): conversation.fail(error)
                    case .success(nil): conversation.complete(.completedHere)
                    case .success(let next?): converse(conversation, sending: NodeCore.pointToPoint(next), to: address, in: bound.value)
                    }
                }
            }
        }
    }
}
