/// Turns messages into bytes.
///
/// Like ``ByteToMessageDecoder``, an encoder is a plain value that knows nothing about channels;
/// ``MessageToByteHandler`` runs it in a pipeline and batches its output.
public protocol MessageToByteEncoder {
    /// The message type this encoder accepts.
    associatedtype OutboundIn

    /// Appends the encoding of `data` to `out`.
    ///
    /// `out` already holds the encodings of earlier messages of the same flush: only append to it
    /// (never clear it or move its reader index). If encoding fails, throw; whatever was appended for
    /// this message is rolled back.
    mutating func encode(data: OutboundIn, out: inout ByteBuffer) throws
}

/// The pipeline stage that runs a ``MessageToByteEncoder``: it accepts the encoder's messages and
/// writes ``ByteBuffer``s toward the network.
///
/// ### Batching
/// Every message written is encoded into one buffer owned by the handler; on `flush` that buffer
/// goes down the pipeline once, so a flush of many small messages costs the transport a single
/// buffer (one `writev` entry) instead of one per message.
///
/// ### Memory reuse
/// The handler does not clear its buffer right after handing it to the transport: the transport's
/// write queue still references the bytes, and clearing a shared buffer allocates fresh storage.
/// It clears it at the next encode instead, by which time the transport has usually sent the bytes
/// and let go, so the same memory is reused flush after flush. In steady state the per-message path
/// allocates nothing.
///
/// ### Promises
/// The write promises of the messages coalesced into one flush complete together with that
/// buffer's write. With no promise, the buffer is written with none; with one, that promise is
/// passed on; with several, the handler makes one promise on the loop and completes all of them
/// from it (the only allocation, made only when callers ask for more than one promise per flush).
///
/// ### Errors and closing
/// An encoding error fails that message's promise and is fired with `fireErrorCaught`; the other
/// messages of the batch are unaffected. On `close(mode: .all)`, messages written but never
/// flushed are dropped and their promises fail with ``ChannelError/closedBeforeWriteCompleted``,
/// as a transport does with its unflushed writes. On `close(mode: .output)` they are handed to the
/// transport (unflushed), whose half-close sends what it has queued. If the handler is removed
/// from a live pipeline, unflushed messages are likewise handed on, so no accepted write is lost.
public final class MessageToByteHandler<Encoder: MessageToByteEncoder>: ChannelOutboundHandler {
    /// The handler accepts the encoder's messages.
    public typealias OutboundIn = Encoder.OutboundIn
    /// The handler writes bytes.
    public typealias OutboundOut = ByteBuffer

    // `@exclusivity(unchecked)`: loop-confined hot state. Only the loop's thread touches it, and no access
    // spans a call that could re-enter, so the runtime check (a thread-local lookup per access) buys nothing.
    @exclusivity(unchecked) private var encoder: Encoder
    /// The encodings of the messages written since the last flush.
    @exclusivity(unchecked) private var pending = ByteBuffer()
    /// Whether `pending` holds bytes that are no longer ours (handed down, or discarded): it is
    /// reset at the next encode, not earlier (see "Memory reuse").
    @exclusivity(unchecked) private var pendingIsStale = false
    /// The first promise of the batch; `extraPromises` holds the others.
    @exclusivity(unchecked) private var firstPromise: Promise<Void>?
    @exclusivity(unchecked) private var extraPromises: [Promise<Void>] = []

    /// Wraps `encoder`.
    public init(_ encoder: Encoder) {
        self.encoder = encoder
    }

    /// Encodes `data` into the pending batch; it is sent at the next `flush`.
    @_specialize(exported: false, where Encoder == LengthFieldPrepender)
    public func write(context: ChannelHandlerContext, data: Encoder.OutboundIn, promise: Promise<Void>?) {
        if pendingIsStale {
            pendingIsStale = false
            pending.clear()
        }
        let mark = pending.writerIndex
        do {
            try encoder.encode(data: data, out: &pending)
        } catch {
            // Roll back a partial encoding so the batch stays well-formed (guarded in case the
            // encoder broke its contract and moved the indices).
            if mark >= pending.readerIndex, mark <= pending.writerIndex { pending.moveWriterIndex(to: mark) }
            promise?.fail(error)
            context.fireErrorCaught(error)
            return
        }
        if let promise {
            if firstPromise == nil { firstPromise = promise } else { extraPromises.append(promise) }
        }
    }

    /// Writes the pending batch down the pipeline as one buffer, then flushes.
    public func flush(context: ChannelHandlerContext) {
        handOffPending(context: context)
        context.flush()
    }

    /// Drops (`.all`) or hands on (`.output`) the unflushed batch, then passes the close on.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        switch mode {
        case .all:
            discardPending(error: ChannelError.closedBeforeWriteCompleted)
        case .output:
            handOffPending(context: context)
        case .input:
            break
        }
        context.close(mode: mode, promise: promise)
    }

    /// Hands the unflushed batch on (without flushing) so it is not lost.
    public func handlerRemoved(context: ChannelHandlerContext) {
        handOffPending(context: context)
    }

    // MARK: Batches

    private var hasUnflushedBatch: Bool {
        !pendingIsStale && (pending.readableBytes > 0 || firstPromise != nil)
    }

    private func handOffPending(context: ChannelHandlerContext) {
        guard hasUnflushedBatch else { return }
        let promise = takeBatchPromise(eventLoop: context.eventLoop)
        // Marked before writing: a promise failed synchronously may make its callback write again,
        // and that write must start a new batch rather than append to the one on its way down.
        pendingIsStale = true
        context.write(pending, promise: promise)
    }

    private func discardPending(error: any Error) {
        guard hasUnflushedBatch else { return }
        pendingIsStale = true
        let first = firstPromise
        let extras = extraPromises
        firstPromise = nil
        extraPromises.removeAll(keepingCapacity: true)
        first?.fail(error)
        for promise in extras { promise.fail(error) }
    }

    /// The promise to write the batch with: nil, the only one, or one that completes them all.
    private func takeBatchPromise(eventLoop: any EventLoop) -> Promise<Void>? {
        guard let first = firstPromise else { return nil }
        firstPromise = nil
        if extraPromises.isEmpty { return first }
        let extras = extraPromises
        extraPromises = []
        let combined = eventLoop.makePromise(of: Void.self)
        combined.futureResult.whenComplete { result in
            first.complete(result)
            for promise in extras { promise.complete(result) }
        }
        return combined
    }
}
