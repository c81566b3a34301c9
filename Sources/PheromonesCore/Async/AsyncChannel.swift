/// A channel driven from async code: an `AsyncSequence` of inbound messages and an async writer.
///
/// ```swift
/// let connection = try await AsyncChannel<ByteBuffer, ByteBuffer>.wrapping(channel)
/// for try await message in connection.inbound {
///     try await connection.outbound.write(message)
/// }
/// ```
///
/// Backpressure reaches the socket: when the consumer falls behind by ``Configuration/highWatermark``
/// messages, the bridge stops passing the channel's `read()` requests on, so the channel stops
/// reading and the kernel's buffers push back on the peer; once the consumer has caught up to
/// ``Configuration/lowWatermark``, reading resumes. Writes complete when the bytes are handed to the
/// kernel, so a writer that awaits each write cannot outrun the connection either.
///
/// The bridge is the last stage of the pipeline: `Inbound` is what the stage before it emits, and
/// `Outbound` is what it writes.
public final class AsyncChannel<Inbound: Sendable, Outbound: Sendable>: Sendable {
    /// How far the consumer may fall behind before reading stops.
    public struct Configuration: Sendable, Hashable {
        /// Buffered messages at which the bridge stops reading from the socket.
        public var highWatermark: Int
        /// Buffered messages at which reading resumes.
        public var lowWatermark: Int

        /// Creates a configuration; `lowWatermark` must be below `highWatermark`.
        public init(highWatermark: Int = 16, lowWatermark: Int = 4) {
            precondition(lowWatermark >= 0 && lowWatermark < highWatermark, "need 0 <= lowWatermark < highWatermark")
            self.highWatermark = highWatermark
            self.lowWatermark = lowWatermark
        }
    }

    /// The wrapped channel.
    public let channel: any Channel
    /// The messages the channel receives, in order; ends when the channel closes, throws what the
    /// pipeline reported with `errorCaught`.
    public let inbound: AsyncInboundStream<Inbound>
    /// Writes messages to the channel.
    public let outbound: AsyncOutboundWriter<Outbound>

    /// Adds the bridge at the end of `channel`'s pipeline. Call on the channel's loop (for example in a
    /// channel initializer).
    public init(wrapping channel: any Channel, configuration: Configuration = Configuration()) throws(ChannelPipelineError) {
        channel.eventLoop.assertInEventLoop()
        let buffer = InboundBuffer<Inbound>(configuration: configuration)
        try channel.pipeline.addHandler(AsyncBridgeHandler<Inbound, Outbound>(buffer: buffer), name: "async-bridge")
        self.channel = channel
        inbound = AsyncInboundStream(buffer: buffer)
        outbound = AsyncOutboundWriter(channel: channel)
    }

    /// Adds the bridge to `channel` from any thread.
    public static func wrapping(_ channel: any Channel, configuration: Configuration = Configuration()) async throws -> AsyncChannel {
        try await channel.eventLoop.submit { try AsyncChannel(wrapping: channel, configuration: configuration) }.get()
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
    public func write<Messages: Sequence & Sendable>(contentsOf messages: Messages) async throws where Messages.Element == Outbound {
        let loop = channel.eventLoop
        let channel = channel
        try await loop.flatSubmit { () -> Future<Void> in
            let futures = messages.map { message -> Future<Void> in
                let promise = loop.makePromise(of: Void.self)
                channel.pipeline.write(message, promise: promise)
                return promise.futureResult
            }
            channel.pipeline.flush()
            return Future.andAllSucceed(futures, on: loop)
        }.get()
    }

    /// Shuts the output down (the peer sees end of stream); the channel stays open for reading.
    public func finish() async throws {
        try await channel.close(mode: .output).get()
    }
}

/// The inbound messages of an ``AsyncChannel``. It has one consumer: iterate it once.
public struct AsyncInboundStream<Element: Sendable>: AsyncSequence, Sendable {
    let buffer: InboundBuffer<Element>

    /// The iterator.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: InboundBuffer<Element>

        /// The next message, or nil once the channel has closed and everything was consumed.
        public mutating func next() async throws -> Element? {
            try await buffer.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}
