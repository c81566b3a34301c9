import DequeModule

/// The queue between a channel's loop (the producer) and the one async consumer of an
/// ``AsyncInboundStream``.
///
/// Every change is a transition of `state` under its lock that returns what is left to do (resume
/// the consumer's continuation, hand a held read back to the loop); the caller does it after
/// unlocking, so no continuation is resumed and no pipeline code runs under the lock.
///
/// Backpressure: the loop asks ``shouldRead()`` each time the channel requests a read. While
/// `highWatermark` messages are queued the answer is no and the read is *held*; the consumer call
/// that takes the queue down to `lowWatermark` hands it back through the reader, which re-checks on
/// the loop. Once the stream has ended, every read is held: what would be read could only be
/// dropped, so it stays in the kernel, which pushes back on the peer. A held read is passed on when
/// the bridge leaves the pipeline, so a handler that replaces it is not left without one.
final class InboundBuffer<Element: Sendable>: Sendable {
    typealias Reader = @Sendable () -> Void

    // Unchecked: lives only inside `state`'s lock; `waiter` is resumed exactly once, after
    // unlocking, by whoever took it out.
    private struct State: @unchecked Sendable {
        var messages: Deque<Element> = []
        /// The consumer suspended in `next`. Only set while `messages` is empty and `ending` is nil.
        var waiter: CheckedContinuation<Element?, any Error>?
        /// Set once the stream ends: after `messages` is drained, `next` returns nil (`.success`) or
        /// throws the error once (`.failure`, then `.success`).
        var ending: Result<Void, any Error>?
        /// The channel asked for a read that was not passed on; it is owed one.
        var readHeld = false
        /// Passes a held read on, on the channel's loop. It retains the bridge's context, so it is
        /// dropped when the stream ends or the bridge leaves the pipeline.
        var reader: Reader?
    }

    private let state = LockedValue(State())
    private let highWatermark: Int
    private let lowWatermark: Int

    init(configuration: AsyncChannelConfiguration) {
        highWatermark = configuration.highWatermark
        lowWatermark = configuration.lowWatermark
    }

    // MARK: Loop side

    /// Sets what passes a held read on once the consumer has caught up.
    func setReader(_ reader: @escaping Reader) {
        state.withLock { $0.reader = reader }
    }

    /// Hands `message` to the waiting consumer, or queues it. Dropped once the stream has ended.
    func push(_ message: Element) {
        let waiter = state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            guard state.ending == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.messages.append(message)
            return nil
        }
        waiter?.resume(returning: message)
    }

    /// Whether a read the channel asked for may be passed on now. If not, it is held and passed on
    /// by the reader when the consumer catches up.
    func shouldRead() -> Bool {
        state.withLock { state in
            if state.ending == nil, state.messages.count < highWatermark { return true }
            state.readHeld = true
            return false
        }
    }

    /// Ends the stream after the queued messages: normally (nil) or by throwing `error`. Only the
    /// first call counts.
    func finish(_ error: (any Error)?) {
        // The reader comes out of the lock to be released there: it may hold the last reference to
        // the bridge's context.
        let (waiter, _) = state.withLock { state -> (CheckedContinuation<Element?, any Error>?, Reader?) in
            guard state.ending == nil else { return (nil, nil) }
            let reader = state.reader
            state.reader = nil
            guard let waiter = state.waiter else {
                state.ending = error.map { .failure($0) } ?? .success(())
                return (nil, reader)
            }
            // The waiter gets the end (or the error) now; later calls return nil.
            state.waiter = nil
            state.ending = .success(())
            return (waiter, reader)
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    /// Forgets the reader (the bridge is leaving the pipeline) and reports whether a read was held,
    /// which the caller then passes on itself.
    func detach() -> Bool {
        let (held, _) = state.withLock { state -> (Bool, Reader?) in
            let held = state.readHeld
            let reader = state.reader
            state.readHeld = false
            state.reader = nil
            return (held, reader)
        }
        return held
    }

    // MARK: Consumer side

    /// The next message; nil once the stream has ended and been drained; throws the error it ended
    /// with (once), or `CancellationError` when the calling task is cancelled (before or while
    /// waiting; queued messages stay queued).
    func next(isolation actor: isolated (any Actor)? = #isolation) async throws -> Element? {
        // A message (or the end) already there is taken without suspending.
        if case let (result, reader)? = take(orPark: nil) {
            reader?()
            return try result.get()
        }
        return try await withTaskCancellationHandler(
            operation: {
                try await withCheckedThrowingContinuation(isolation: actor) { (continuation: CheckedContinuation<Element?, any Error>) in
                    if case let (result, reader)? = take(orPark: continuation) {
                        reader?()
                        continuation.resume(with: result)
                    }
                }
            },
            onCancel: {
                let waiter = state.withLock { state -> CheckedContinuation<Element?, any Error>? in
                    let waiter = state.waiter
                    state.waiter = nil
                    return waiter
                }
                waiter?.resume(throwing: CancellationError())
            },
            isolation: actor)
    }

    /// Takes the next result if there is one, with the reader if this call brought the queue down to
    /// the low watermark while a read was held. Otherwise parks `continuation` (if any) as the waiter
    /// and returns nil.
    private func take(orPark continuation: CheckedContinuation<Element?, any Error>?) -> (Result<Element?, any Error>, Reader?)? {
        state.withLock { state -> (Result<Element?, any Error>, Reader?)? in
            // Checked under the lock: a cancellation handler that ran before the waiter was parked
            // found nothing to resume, so the parking call must see the flag instead.
            if Task.isCancelled { return (.failure(CancellationError()), nil) }
            if let message = state.messages.popFirst() {
                var reader: Reader?
                if state.readHeld, state.messages.count <= lowWatermark, let pending = state.reader {
                    state.readHeld = false
                    reader = pending
                }
                return (.success(message), reader)
            }
            switch state.ending {
            case .some(.success):
                return (.success(nil), nil)
            case .some(.failure(let error)):
                state.ending = .success(())
                return (.failure(error), nil)
            case .none:
                guard let continuation else { return nil }
                precondition(state.waiter == nil, "AsyncInboundStream has one consumer: next() called while another call waits")
                state.waiter = continuation
                return nil
            }
        }
    }

    // MARK: Inspection (tests)

    /// Whether the consumer is suspended in `next`, waiting for a message.
    var isConsumerWaiting: Bool { state.withLock { $0.waiter != nil } }
}

/// The last stage of an ``AsyncChannel``'s pipeline: hands messages to the async consumer and holds
/// back the channel's read requests while the consumer is behind.
final class AsyncBridgeHandler<Inbound: Sendable, Outbound: Sendable>: ChannelDuplexHandler {
    typealias InboundIn = Inbound
    typealias OutboundIn = Outbound
    typealias OutboundOut = Outbound

    private let buffer: InboundBuffer<Inbound>

    init(buffer: InboundBuffer<Inbound>) {
        self.buffer = buffer
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = LoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        buffer.setReader {
            loop.execute { bound.value.handler.passHeldRead(context: bound.value.context) }
        }
        // Added to a channel that has already closed: no event will ever come to end the stream.
        if context.channel.closeFuture.isFulfilled { buffer.finish(nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        let readHeld = buffer.detach()
        buffer.finish(nil)
        // Removed from a live channel: whoever reads next gets the read the bridge held back (the
        // removed context still links to its neighbour toward the head).
        if readHeld, context.channel.isActive { context.read() }
    }

    /// The consumer has caught up: issue the held read, unless the queue filled up again meanwhile
    /// (then it stays held) or the bridge has left the pipeline (then `handlerRemoved` passed it on).
    private func passHeldRead(context: ChannelHandlerContext) {
        guard !context.isRemoved else { return }
        if buffer.shouldRead() { context.read() }
    }

    func channelRead(context: ChannelHandlerContext, data: Inbound) {
        buffer.push(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        buffer.finish(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        buffer.finish(error)
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { buffer.finish(nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func read(context: ChannelHandlerContext) {
        if buffer.shouldRead() { context.read() }
    }
}
