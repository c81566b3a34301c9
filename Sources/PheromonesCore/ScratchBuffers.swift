import Glibc

/// Buffers a thread lends to the stages that run on it (TLS and Noise records, say), so that
/// reading and writing allocates nothing in steady state and an idle connection holds no buffer of
/// its own.
///
/// A stage takes a buffer, fills it, hands a copy to the pipeline, and gives it back. When the
/// pipeline is done with its copy (the next stage read it, the socket wrote it), the storage is
/// the lender's alone again, and the next ``take(minimumCapacity:)`` reuses it without allocating;
/// when a stage keeps its copy, copy-on-write leaves that copy alone and the next take gets fresh
/// storage. Each event loop is one thread, so the stages of one loop share its buffers without a
/// lock. At most ``keptPerThread`` buffers of at most ``largestKept`` bytes are kept: what a burst
/// grows goes back to the allocator.
package enum ScratchBuffers {
    package static let keptPerThread = 4
    package static let largestKept = 64 * 1024

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
    package static func take(minimumCapacity: Int) -> ByteBuffer {
        let shelf = shelf
        // One whose storage the pipeline still holds (a message a stage queued) would be copied by
        // the first write into it: take one that is the shelf's alone, and leave the others to
        // come free.
        // (A plain loop over indices: a closure over the array could hold a second reference to it,
        // and the uniqueness check through that would copy the array and see every buffer shared.)
        var index = shelf.buffers.count - 1
        while index >= 0 {
            if shelf.buffers[index].isStorageUniquelyReferenced {
                var buffer = shelf.buffers.remove(at: index)
                buffer.clear(minimumCapacity: minimumCapacity)
                return buffer
            }
            index -= 1
        }
        return ByteBuffer(capacity: minimumCapacity)
    }

    /// Gives `buffer` back to be reused.
    package static func give(_ buffer: ByteBuffer) {
        let shelf = shelf
        guard shelf.buffers.count < keptPerThread, buffer.capacity <= largestKept else { return }
        shelf.buffers.append(buffer)
    }
}
