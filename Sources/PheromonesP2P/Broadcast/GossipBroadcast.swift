import Pheromones

/// ``BroadcastMode/gossip(_:)``: the gossip router driven from the node's loop. (Being built:
/// until it lands, it floods.)
final class GossipBroadcast: BroadcastStrategy {
    private let flood: FloodBroadcast

    init(parameters: GossipParameters, seed: UInt64, memory: Int) {
        flood = FloodBroadcast(memory: memory)
    }

    func publish(_ message: Envelope, to recipients: Recipients, in core: NodeCore) -> Int {
        flood.publish(message, to: recipients, in: core)
    }

    func received(_ message: Envelope, from stage: RouterStage, in core: NodeCore) -> Bool {
        flood.received(message, from: stage, in: core)
    }

    func peerUp(_ stage: PersistentStage, in core: NodeCore) {}
    func peerDown(_ connection: ConnectionID, in core: NodeCore) {}
    func controlReceived(_ message: Envelope, on stage: PersistentStage, in core: NodeCore) throws(P2PError) -> Bool { false }
    func shutdown() {}
}
