import DequeModule
import Synchronization

/// The queue between a channel's loop (producer) and one async consumer.
///
/// State changes happen under a mutex and return what to do (resume a waiter, ask for a read) so
/// that the action runs after the lock is released.
final class InboundBuffer<Element: Sendable>: Sendable {
    private struct State: @unchecked Sendable {
        // Unchecked: lives only inside `state`'s mutex; the continuation is resumed exactly once,
        // outside the lock, by whoever took it out.
        var messages: Deque<Element> = []
        var waiter: CheckedContinuation<Element?, any Error>?
        var ending: Result<Void, any Error>?
        /// The channel asked for a read while the buffer was full; it is owed one.
        var readHeld = false
        var resumeReading: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())
    private let configuration: AsyncChannel<Element, Never>.Configuration

    init<Outbound>(configuration: AsyncChannel<Element, Outbound>.Configuration) {
        self.configuration = .init(highWatermark: configuration.highWatermark, lowWatermark: configuration.lowWatermark)
    }

    // MARK: Loop side

    /// Sets the action that issues a `read()` on the channel's loop, for when the consumer catches up.
    func setResumeReading(_ action: @escaping @Sendable () -> Void) {
        state.withLock { $0.resumeReading = action }
    }

    /// Hands a message to the waiting consumer, or queues it.
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

    /// Whether the channel may read more now. If not, the read is remembered and issued later.
    func shouldRead() -> Bool {
        state.withLock { state in
            if state.messages.count >= configuration.highWatermark {
                state.readHeld = true
                return false
            }
            return true
        }
    }

    /// Ends the stream after the queued messages: normally (nil) or with an error.
    func finish(_ error: (any Error)?) {
        let waiter = state.withLock { state -> CheckedContinuation<Element?, any Error>? in
            guard state.ending == nil else { return nil }
            state.ending = error.map { .failure($0) } ?? .success(())
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    // MARK: Consumer side

    func next() async throws -> Element? {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
            let (immediate, resumeReading) = state.withLock { state -> (Result<Element?, any Error>?, (@Sendable () -> Void)?) in
                if let message = state.messages.popFirst() {
                    var resume: (@Sendable () -> Void)?
                    if state.readHeld, state.messages.count <= configuration.lowWatermark {
                        state.readHeld = false
                        resume = state.resumeReading
                    }
                    return (.success(message), resume)
                }
                switch state.ending {
                case .some(.success): return (.success(nil), nil)
                case .some(.failure(let error)):
                    state.ending = .success(())
                    return (.failure(error), nil)
                case .none:
                    state.waiter = continuation
                    return (nil, nil)
                }
            }
            resumeReading?()
            if let immediate { continuation.resume(with: immediate) }
        }
    }
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
        let bound = LoopBound(context, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        buffer.setResumeReading {
            loop.execute { bound.value.read() }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        buffer.finish(nil)
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
