import Pheromones

/// One connection over a ``SimulatedLink``: its two ends, and the bytes between them. What one
/// end flushes reaches the other one latency later, in order (never before what it flushed
/// earlier, even when the link's latency is lowered meanwhile); what is on its way when the link
/// fails is lost, and both ends are reset.
final class SimulatedConnection {
    let link: SimulatedLink
    /// The connection's rank among the network's, for a fixed order wherever several are visited.
    let order: Int
    private let loop: EmbeddedEventLoop
    /// The dialling end (0) and the accepting end (1), while they are open.
    private var ends: [SimulatedChannel?] = [nil, nil]
    /// When the last bytes sent towards each end arrive there.
    private var lastArrival: [Deadline] = [.distantPast, .distantPast]

    init(link: SimulatedLink, order: Int, loop: EmbeddedEventLoop) {
        self.link = link
        self.order = order
        self.loop = loop
    }

    func attach(_ channel: SimulatedChannel, side: Int) {
        ends[side] = channel
    }

    /// The end at `side` closed: nothing more reaches it.
    func detach(_ side: Int) {
        ends[side] = nil
        if ends[0] == nil, ends[1] == nil { link.forget(self) }
    }

    /// Carries `buffers`, flushed by the end at `side`, to the other end.
    func carry(_ buffers: [ByteBuffer], from side: Int) {
        link.carried(bytes: buffers.reduce(0) { $0 + $1.readableBytes })
        deliver(from: side) { $0.arrived(buffers) }
    }

    /// Carries the end of stream of the end at `side` to the other end.
    func carryEndOfStream(from side: Int) {
        deliver(from: side) { $0.endOfStreamArrived() }
    }

    private func deliver(from side: Int, _ arrival: @escaping (SimulatedChannel) -> Void) {
        guard link.isUp else { return }
        let generation = link.generation
        let target = 1 - side
        let bound = LoopBound((self, arrival), eventLoop: loop)
        let arrivesAt = max(loop.now + link.latency, lastArrival[target])
        lastArrival[target] = arrivesAt
        loop.scheduleTask(deadline: arrivesAt) {
            let (connection, arrival) = bound.value
            // Lost if the link failed in the meantime (even if it is up again).
            guard connection.link.generation == generation, let end = connection.ends[target] else { return }
            arrival(end)
        }
    }

    /// The link failed: both ends are reset.
    func reset() {
        for end in ends.compactMap({ $0 }) { end.reset() }
    }
}
