/// A channel driven from async code: an `AsyncSequence` of inbound messages and an async writer.
///
/// ```swift
/// // In a channel initializer (on the channel's loop):
/// let connection = try AsyncChannel<ByteBuffer, ByteBuffer>(wrapping: channel)
/// Task {
///     for try await message in connection.inbound {
///         try await connection.outbound.write(message)
///     }
/// }
/// ```
///
/// Backpressure reaches the socket: when the consumer falls behind by
/// ``AsyncChannelConfiguration/highWatermark`` messages, the bridge stops passing the channel's
/// `read()` requests on, so the channel stops reading and the kernel's buffers push back on the
/// peer; once the consumer has caught up to ``AsyncChannelConfiguration/lowWatermark``, the held
/// read is issued and reading resumes. (The watermarks are soft: a read already issued may deliver
/// a whole batch.) Writes complete when the bytes are handed to the kernel, so a writer that awaits
/// each write cannot outrun the connection either.
///
/// The inbound stream ends (returns nil) once the queued messages are consumed after the channel
/// closes, its input closes (``ChannelEvent/inputClosed``), or the bridge is removed from the
/// pipeline; it throws the first error the pipeline reports with `errorCaught`, once, and then ends.
/// After the end the bridge drops what still reaches it and stops reading; close the channel when
/// you are done with it. A consumer that stops iterating early leaves the channel to stall once
/// `highWatermark` messages are queued: close the channel then too.
///
/// A consumer running on an actor or a loop-bound task (`Task(executorPreference: loop)`) is not
/// hopped off its executor by the iteration.
///
/// The bridge is the last stage of the pipeline: `Inbound` is what the stage before it emits, and
/// `Outbound` is what it writes.
public final class AsyncChannel<Inbound: Sendable, Outbound: Sendable>: Sendable {
    /// How far the consumer may fall behind before reading stops.
    public typealias Configuration = AsyncChannelConfiguration

    /// The wrapped channel.
    public let channel: any Channel
    /// The messages the channel receives, in order (see ``AsyncInboundStream``).
    public let inbound: AsyncInboundStream<Inbound>
    /// Writes messages to the channel.
    public let outbound: AsyncOutboundWriter<Outbound>

    /// Adds the bridge at the end of `channel`'s pipeline. Call on the channel's loop, before the
    /// channel reads (in a channel initializer): messages read before the bridge is in place pass it by.
    public init(wrapping channel: any Channel, configuration: Configuration = Configuration()) throws(ChannelPipelineError) {
        channel.eventLoop.preconditionInEventLoop()
        let buffer = InboundBuffer<Inbound>(configuration: configuration)
        try channel.pipeline.addHandler(AsyncBridgeHandler<Inbound, Outbound>(buffer: buffer), name: "async-bridge")
        self.channel = channel
        inbound = AsyncInboundStream(buffer: buffer)
        outbound = AsyncOutboundWriter(channel: channel)
    }

    /// Adds the bridge to `channel` from any thread (see ``init(wrapping:configuration:)``).
    public static func wrapping(_ channel: any Channel, configuration: Configuration = Configuration()) async throws -> AsyncChannel {
        try await channel.eventLoop.submit { try AsyncChannel(wrapping: channel, configuration: configuration) }.get()
    }
}

/// How far the consumer of an ``AsyncChannel`` may fall behind before the channel stops reading.
public struct AsyncChannelConfiguration: Sendable, Hashable {
    /// Queued messages at which the bridge stops passing read requests on.
    public let highWatermark: Int
    /// Queued messages at which the held read request is issued again.
    public let lowWatermark: Int

    /// Creates a configuration; needs `0 <= lowWatermark < highWatermark`.
    public init(highWatermark: Int = 16, lowWatermark: Int = 4) {
        precondition(lowWatermark >= 0 && lowWatermark < highWatermark, "need 0 <= lowWatermark < highWatermark")
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
    }
}

/// Writes messages to a channel from async code.
public struct AsyncOutboundWriter<Outbound: Sendable>: Sendable {
    let channel: any Channel

    /// Writes and flushes `message`; returns once it has been handed to the kernel.
    public func write(_ message: Outbound) async throws {
        try await channel.writeAndFlush(message).get()
    }

    /// Writes every message, flushes once, and returns once all have been handed to the kernel.
    /// Fails with the first write that fails.
    public func write<Messages: Sequence & Sendable>(contentsOf messages: Messages) async throws where Messages.Element == Outbound {
        let loop = channel.eventLoop
        let channel = channel
        let writeAll = { @Sendable () -> Future<Void> in
            let futures = messages.map { message -> Future<Void> in
                let promise = loop.makePromise(of: Void.self)
                channel.pipeline.write(message, promise: promise)
                return promise.futureResult
            }
            channel.pipeline.flush()
            return Future.andAllSucceed(futures, on: loop)
        }
        // Like `Channel.writeAndFlush`: no hop for a writer already on the loop.
        try await (loop.inEventLoop ? writeAll() : loop.flatSubmit(writeAll)).get()
    }

    /// Shuts the output down once what was written has been sent (the peer sees end of stream);
    /// the channel stays open for reading.
    public func finish() async throws {
        try await channel.close(mode: .output).get()
    }
}

/// The inbound messages of an ``AsyncChannel``, in order.
///
/// It has one consumer: iterate it once, from one task at a time (two `next()` calls waiting at
/// once trap). `next()` returns nil once the stream has ended and everything queued was consumed,
/// and throws the error that ended it once (then returns nil). When the consuming task is
/// cancelled, `next()` throws `CancellationError` at once, whether it was waiting or not; the
/// queued messages stay queued.
public struct AsyncInboundStream<Element: Sendable>: AsyncSequence, Sendable {
    public typealias Failure = any Error

    let buffer: InboundBuffer<Element>

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Failure = any Error

        let buffer: InboundBuffer<Element>

        /// The next message, or nil once the stream has ended; runs on the caller's isolation.
        public mutating func next(isolation actor: isolated (any Actor)?) async throws -> Element? {
            try await buffer.next(isolation: actor)
        }

        /// The next message, or nil once the stream has ended.
        public mutating func next() async throws -> Element? {
            try await buffer.next(isolation: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}
