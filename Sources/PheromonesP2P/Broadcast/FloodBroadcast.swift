import Pheromones

/// ``BroadcastMode/flood``: every node forwards a broadcast it has not seen to all its other
/// peers, with the hop limit decreased, and drops repeats (a bounded set of recent ids). Each
/// node receives one copy per link at most, so up to degree − 1 duplicates per message.
final class FloodBroadcast: BroadcastStrategy {
    private var seen: RecentIDs

    init(memory: Int) {
        seen = RecentIDs(capacity: memory)
    }

    func publish(_ message: Envelope, to recipients: Recipients, in core: NodeCore) -> Int {
        _ = seen.insert(message.messageID)
        return core.forward(message, idChosenBy: .thisNode, to: recipients, except: nil)
    }

    func received(_ message: Envelope, from stage: RouterStage, in core: NodeCore) -> Bool {
        guard seen.insert(message.messageID) else {
            core.metrics.droppedDuplicate()
            return false
        }
        if core.configuration.forwardsBroadcasts, message.hopLimit > 1, !core.isShutDown {
            var copy = message
            copy.hopLimit -= 1
            copy.correlationID = 0
            core.metrics.forwardedCopies(core.forward(copy, idChosenBy: .broadcaster, to: .connected, except: stage.routeAddress))
        }
        return true
    }

    func peerUp(_ stage: PersistentStage, in core: NodeCore) {}
    func peerDown(_ connection: ConnectionID, in core: NodeCore) {}
    func controlReceived(_ message: Envelope, on stage: PersistentStage, in core: NodeCore) throws(P2PError) -> Bool { false }
    func flushCounters(in core: NodeCore) {}
    func shutdown() {}
}
