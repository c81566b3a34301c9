import Pheromones
import PheromonesP2P

/// What every node delivered to its application, and when: the ground truth a simulation's
/// coverage and exactly-once checks are made from.
// Unchecked: shared by the protocols of one simulation's nodes, which all run on the simulation's
// single embedded loop, driven by one thread.
final class DeliveryLog: @unchecked Sendable {
    /// When each broadcast was published, by broadcast index.
    private(set) var published: [Deadline?]
    /// Each broadcast's origin.
    private(set) var origins: [Int]
    /// How many times each node delivered each broadcast: `counts[broadcast][node]`.
    private(set) var counts: [[UInt8]]
    /// When each node first delivered each broadcast.
    private(set) var firstDelivery: [[Deadline?]]
    /// Deliveries over all broadcasts and nodes, the extra ones included.
    private(set) var total = 0
    /// First deliveries over all broadcasts and nodes.
    private(set) var firstDeliveries = 0
    /// Deliveries of a broadcast a node had delivered already (must stay 0).
    private(set) var repeats = 0
    /// Messages that were not one of the simulation's broadcasts (must stay 0).
    private(set) var strays = 0

    init(broadcasts: Int, nodes: Int) {
        published = Array(repeating: nil, count: broadcasts)
        origins = Array(repeating: -1, count: broadcasts)
        counts = Array(repeating: Array(repeating: 0, count: nodes), count: broadcasts)
        firstDelivery = Array(repeating: Array(repeating: nil, count: nodes), count: broadcasts)
    }

    func publish(_ broadcast: Int, from origin: Int, at time: Deadline) {
        published[broadcast] = time
        origins[broadcast] = origin
    }

    func deliver(_ message: Envelope, to node: Int, at time: Deadline) {
        guard var data = message.data, let index = data.readInteger(as: UInt32.self).map(Int.init),
              index < counts.count, node < counts[index].count
        else {
            strays += 1
            return
        }
        total += 1
        if counts[index][node] > 0 {
            repeats += 1
        } else {
            firstDelivery[index][node] = time
            firstDeliveries += 1
        }
        counts[index][node] = counts[index][node] == .max ? .max : counts[index][node] + 1
    }

    /// Nodes other than the origin that delivered `broadcast` at least once.
    func covered(_ broadcast: Int) -> Int {
        counts[broadcast].enumerated().reduce(0) { total, entry in total + (entry.offset != origins[broadcast] && entry.element > 0 ? 1 : 0) }
    }
}

/// The application of a simulated node: it records each broadcast it is handed and answers nothing.
final class RecordingProtocol: PeerProtocol {
    private let node: Int
    private let log: DeliveryLog
    private let loop: any EventLoop

    init(node: Int, log: DeliveryLog, loop: any EventLoop) {
        self.node = node
        self.log = log
        self.loop = loop
    }

    func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        log.deliver(message, to: node, at: loop.now)
        return nil
    }
}
