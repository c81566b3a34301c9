import Pheromones

/// Connects `channel`, then feeds a byte stream into it in the reads a ``ChunkPlan`` chooses, calling
/// `afterEachRead` after every read (a target checks its buffering bound there), until the channel
/// closes (a decoder error closes it) or the stream ends; then closes the channel, so the decoder
/// sees the end of input.
///
/// Returns the number of bytes fed (all of them, unless the channel closed early).
@discardableResult
public func feed(
    _ bytes: UnsafeRawBufferPointer,
    to channel: EmbeddedChannel,
    plan: ChunkPlan,
    afterEachRead: (_ fedSoFar: Int) -> Void
) -> Int {
    var plan = plan
    var fed = 0
    channel.connect()
    plan.forEachChunk(of: bytes) { chunk in
        var buffer = ByteBuffer(capacity: chunk.count)
        buffer.writeBytes(chunk)
        do {
            try channel.writeInbound(buffer)
        } catch {
            // Only "already closed" can come back: the collector takes every pipeline error.
            return false
        }
        fed += chunk.count
        afterEachRead(fed)
        return channel.isActive
    }
    _ = try? channel.finish()
    return fed
}
