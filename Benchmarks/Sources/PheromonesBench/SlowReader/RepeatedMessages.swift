/// What the `slow-reader` flooder sends: `SlowReaderPlan.floodBytes` from one buffer of whole
/// messages (framed: 16 frames of `floodPayload` bytes after a 4-byte big-endian length), sent
/// over and over, so that the stream is valid for the server whatever it is cut into.
final class RepeatedMessages: FloodBytes {
    private let buffer: UnsafeMutableRawBufferPointer
    let total: Int
    private(set) var position = 0

    init(plan: SlowReaderPlan, reference: ReferenceBytes) {
        total = plan.floodBytes
        var stream = ChaosStream(reference: reference, proto: plan.proto)
        stream.messageSize = plan.floodPayload
        buffer = .allocate(byteCount: 16 * stream.wireLength, alignment: 16)
        stream.copy(from: 0, into: buffer)
    }

    deinit { buffer.deallocate() }

    func nextBytes() -> UnsafeRawBufferPointer {
        guard position < total, let base = buffer.baseAddress else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        let offset = position % buffer.count
        return UnsafeRawBufferPointer(start: base + offset, count: min(buffer.count - offset, total - position))
    }

    func consumed(_ count: Int) { position += count }
}

extension PipelineFlooder {
    /// The client of a slow-reader run that pipelines as fast as the socket takes it and never reads.
    static func slowReader(plan: SlowReaderPlan, epoll: CInt, reference: ReferenceBytes) -> PipelineFlooder {
        PipelineFlooder(
            bytes: RepeatedMessages(plan: plan, reference: reference),
            limits: FloodLimits(connect: plan.connectTimeout, stall: plan.stallSeconds, flood: plan.floodTimeout),
            epoll: epoll, peer: "server")
    }
}
