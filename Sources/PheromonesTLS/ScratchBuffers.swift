import Glibc
import Pheromones

/// Buffers a thread lends to the TLS stages that run on it, so that reading and writing records
/// allocates nothing in steady state.
///
/// A stage takes a buffer, fills it, hands a copy to the pipeline, and gives it back. When the
/// pipeline is done with its copy (the next stage read it, the socket wrote it), the storage is
/// the lender's alone again, and the next ``take(minimumCapacity:)`` reuses it without allocating;
/// when a stage keeps its copy, copy-on-write leaves that copy alone and the next take gets fresh
/// storage. Each event loop is one thread, so the stages of one loop share its buffers without a
/// lock. At most ``keptPerThread`` buffers of at most ``largestKept`` bytes are kept: what a burst
/// grows goes back to the allocator.
enum ScratchBuffers {
    static let keptPerThread = 4
    static let largestKept = 64 * 1024

    private final class Shelf {
        var buffers: [ByteBuffer] = []
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        // At a thread's exit its shelf is released.
        let created = pthread_key_create(&key) { shelf in
            guard let shelf else { return }
            Unmanaged<AnyObject>.fromOpaque(shelf).release()
        }
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    private static var shelf: Shelf {
        if let existing = pthread_getspecific(key) {
            return Unmanaged<Shelf>.fromOpaque(existing).takeUnretainedValue()
        }
        let shelf = Shelf()
        pthread_setspecific(key, Unmanaged.passRetained(shelf as AnyObject).toOpaque())
        return shelf
    }

    /// An empty buffer of at least `minimumCapacity` bytes: a kept one when there is one.
    static func take(minimumCapacity: Int) -> ByteBuffer {
        guard var buffer = shelf.buffers.popLast() else { return ByteBuffer(capacity: minimumCapacity) }
        buffer.clear(minimumCapacity: minimumCapacity)
        return buffer
    }

    /// Gives `buffer` back to be reused.
    static func give(_ buffer: ByteBuffer) {
        let shelf = shelf
        guard shelf.buffers.count < keptPerThread, buffer.capacity <= largestKept else { return }
        shelf.buffers.append(buffer)
    }
}
