import CEpoll

/// The persistent-router flooder: one connection that pipelines `getreq`s as fast as the socket
/// takes them and never reads (on the native wire after its hello, each request with its own id),
/// as the slow-reader flooder does to the echo server, through the same ``PipelineFlooder``.
final class PeerPipelineFlooder: PeerFlooder {
    private let stream: PeerFloodStream
    private let flooder: PipelineFlooder

    init(plan: P2PSlowPeerPlan, epoll: CInt) {
        let request = PeerMessages.getRequest(
            from: P2PSlowPeerPlan.flooderName, payload: plan.floodPayload, messageID: 1, wire: plan.wire)
        let hello = plan.wire == .native ? PeerMessages.hello(from: P2PSlowPeerPlan.flooderName) : []
        let count = ((plan.megabytes << 20) + request.count - 1) / request.count
        stream = PeerFloodStream(prefix: hello, request: request, count: count, stampsIDs: plan.wire == .native)
        flooder = PipelineFlooder(
            bytes: stream,
            limits: FloodLimits(connect: plan.connectTimeout, stall: plan.stallSeconds, flood: plan.floodTimeout),
            epoll: epoll, peer: "node")
    }

    var fd: CInt { flooder.fd }
    var outcome: FloodOutcome? { flooder.outcome }

    var figures: PeerFloodFigures {
        var figures = PeerFloodFigures()
        figures.bytesOffered = stream.total
        figures.bytesAccepted = stream.position
        figures.requestsOffered = stream.count
        figures.requestsAccepted = stream.requestsAccepted
        figures.outcome = flooder.outcome
        figures.detail = flooder.detail
        figures.secondsToLastByte = flooder.secondsToLastByte
        figures.seconds = flooder.seconds
        return figures
    }

    func connect(port: Int, now: UInt64) { flooder.connect(port: port, now: now) }
    func leave() { flooder.leave() }
    func handle(_ events: UInt32, now: UInt64) { flooder.handle(events, now: now) }
    func check(now: UInt64) { flooder.check(now: now) }
}
