/// Turns a stream of bytes into messages, one message at a time.
///
/// A decoder is a plain value: it sees bytes and returns messages, and knows nothing about channels.
/// ``ByteToMessageHandler`` puts it in a pipeline and does the buffering, the re-entrancy handling
/// and the error reporting, so every decoder gets those right for free.
///
/// A decoder must either return a message or return `nil` having consumed nothing: the handler
/// calls ``decode(buffer:)`` in a loop until it returns `nil`, and again with the same bytes plus
/// more once they arrive (so a decoder that returns messages without consuming bytes must run out
/// of them eventually, or the loop never ends). Bad input is
/// reported by throwing (a typed error of the decoder's own); the handler then stops decoding,
/// fires the error and closes the connection. A decoder never traps on input.
///
/// Messages may be slices of `buffer` (``ByteBuffer/readSlice(length:)``): the handler decodes from
/// the buffer the transport read into whenever it can, so such messages are not copied at all.
public protocol ByteToMessageDecoder {
    /// The message type this decoder produces.
    associatedtype InboundOut

    /// Decodes one message from the front of `buffer`, consuming its bytes, or returns nil
    /// (consuming nothing) when more bytes are needed.
    mutating func decode(buffer: inout ByteBuffer) throws -> InboundOut?

    /// Called at end of input with what is left; the default calls ``decode(buffer:)``.
    ///
    /// Called repeatedly until it returns nil, at least once even when `buffer` is empty (so a
    /// decoder holding state can emit a final message). `seenEOF` is true when the peer closed its
    /// side of the stream (the only case in which the handler calls this).
    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> InboundOut?
}

extension ByteToMessageDecoder {
    /// Decodes like ``decode(buffer:)``: most protocols have no special end-of-stream form.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> InboundOut? {
        try decode(buffer: &buffer)
    }
}

/// Errors raised by ``ByteToMessageHandler`` itself (decoders throw their own errors too).
public enum ByteToMessageDecoderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The decoder needed more than `limit` bytes buffered to make progress; the connection was closed.
    ///
    /// This bounds the memory a peer can make the handler hold by sending a message that never ends.
    case bufferLimitExceeded(limit: Int)
    /// The input ended with `bytes` bytes that did not form a complete message.
    case leftoverDataAtEOF(bytes: Int)

    /// A sentence describing the failure, for logs.
    public var description: String {
        switch self {
        case .bufferLimitExceeded(let limit):
            return "the decoder needed more than \(limit) buffered bytes to make progress"
        case .leftoverDataAtEOF(let bytes):
            return "the input ended with \(bytes) undecoded byte\(bytes == 1 ? "" : "s")"
        }
    }
}

/// The pipeline stage that runs a ``ByteToMessageDecoder``: it reads ``ByteBuffer``s and fires the
/// decoder's messages, one `fireChannelRead` per message.
///
/// ### Buffering
/// When nothing is buffered, the handler decodes straight from the buffer that arrived, so decoded
/// messages can be zero-copy slices of it; only the undecoded tail is copied into the handler's own
/// buffer (the *cumulation*). When bytes are buffered, new bytes are appended to them and decoding
/// continues there. The cumulation's memory is reused from read to read: in steady state (the
/// application done with the previous messages by the time the next read arrives) the per-message
/// path allocates nothing.
///
/// ### Limits and errors
/// The handler never holds more than `maximumBufferSize` undecoded bytes: if the decoder still needs
/// more once that many are buffered, it fires ``ByteToMessageDecoderError/bufferLimitExceeded(limit:)``
/// and closes the connection. A decoder error is handled the same way. After an error the handler
/// decodes nothing more and drops further input silently (the connection is closing).
///
/// ### End of input
/// On `channelInactive`, and on ``ChannelEvent/inputClosed`` (half-closure), the decoder's
/// ``ByteToMessageDecoder/decodeLast(buffer:seenEOF:)`` runs on what is left, every message it
/// returns is fired, and bytes still undecoded are reported as
/// ``ByteToMessageDecoderError/leftoverDataAtEOF(bytes:)`` (and, on half-closure, the connection is
/// closed). Then the event is passed on.
///
/// ### Re-entrancy
/// A message fired by this handler may lead a later handler to close the channel, remove this
/// handler, or even feed more input through the pipeline. The handler stops decoding as soon as it
/// is removed or the channel closes under it (the rest of that batch is dropped: the application
/// asked to stop), and input that arrives while it is decoding is queued and decoded afterwards, in
/// order.
///
/// ### Removal
/// When the handler is removed from a live pipeline, bytes still buffered are dropped: they belong to
/// a message that was never complete, and the stage after the decoder does not read raw bytes.
public final class ByteToMessageHandler<Decoder: ByteToMessageDecoder>: ChannelInboundHandler {
    /// The handler reads the transport's bytes.
    public typealias InboundIn = ByteBuffer
    /// The handler fires the decoder's messages.
    public typealias InboundOut = Decoder.InboundOut

    private enum State {
        /// Decoding input as it comes.
        case decoding
        /// Input ended (or the handler left the pipeline); nothing more is decoded.
        case finished
        /// An error was fired and the connection closed; nothing more is decoded.
        case failed
    }

    /// The most bytes this handler buffers while waiting for a message to complete.
    public let maximumBufferSize: Int

    // `@exclusivity(unchecked)`: loop-confined hot state. Only the loop's thread touches it, and no access
    // spans a call that could re-enter, so the runtime check (a thread-local lookup per access) buys nothing.
    @exclusivity(unchecked) private var decoder: Decoder
    @exclusivity(unchecked) private var state = State.decoding
    /// Undecoded bytes carried from one read to the next. Its storage is recycled (see `prepareEmptyCumulation`).
    @exclusivity(unchecked) private var cumulation = ByteBuffer()
    /// True while a decode loop runs: a re-entrant `channelRead` must not touch the buffer being decoded.
    @exclusivity(unchecked) private var isDecoding = false
    /// Input that arrived re-entrantly while decoding; decoded once the current loop is done.
    @exclusivity(unchecked) private var reentrantInput = ByteBuffer()
    /// An `inputClosed` event that arrived while decoding, handled once the current loop is done;
    /// the value records whether the channel was active when it arrived.
    @exclusivity(unchecked) private var inputClosedWhileDecoding: Bool?

    /// Wraps `decoder`, buffering at most `maximumBufferSize` undecoded bytes.
    ///
    /// Choose `maximumBufferSize` at least as large as the largest message the decoder must buffer
    /// whole (for a length-prefixed protocol: the header plus the largest payload). It is capped at
    /// `UInt32.max`, the largest ``ByteBuffer``.
    ///
    /// - Precondition: `maximumBufferSize` is positive (a configuration error, not an input error).
    public init(_ decoder: Decoder, maximumBufferSize: Int = 1 << 20) {
        precondition(maximumBufferSize > 0, "ByteToMessageHandler: maximumBufferSize must be positive")
        self.decoder = decoder
        self.maximumBufferSize = min(maximumBufferSize, Int(UInt32.max))
    }

    /// The number of undecoded bytes buffered, for tests and diagnostics.
    package var bufferedByteCount: Int { cumulation.readableBytes }
    /// The capacity of the buffer holding undecoded bytes (0 when it never allocated), for tests.
    package var bufferCapacity: Int { cumulation.capacity }
    /// A copy of the decoder as it is now, for a stage that must know what it is in the middle of
    /// (whether the bytes buffered begin a message or are only what comes between messages).
    package var decoderSnapshot: Decoder { decoder }

    // MARK: Events

    /// Decodes every complete message in the buffered bytes plus `data`, firing each one.
    @_specialize(exported: false, where Decoder == LengthFieldBasedFrameDecoder)
    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        guard state == .decoding, !context.isRemoved else { return }
        if isDecoding {
            // Re-entered from a message we fired: the buffer being decoded belongs to the outer call.
            // Queue the bytes (a rare path, so its copy is fine) and let the outer call decode them.
            guard data.readableBytes <= maximumBufferSize - reentrantInput.readableBytes else {
                fail(context: context, error: ByteToMessageDecoderError.bufferLimitExceeded(limit: maximumBufferSize))
                return
            }
            reentrantInput.writeImmutableBuffer(data)
            return
        }

        isDecoding = true
        var input = data
        consume(context: context, input: &input)
        while state == .decoding, !context.isRemoved, reentrantInput.readableBytes > 0 {
            var queued = reentrantInput
            reentrantInput = ByteBuffer()
            consume(context: context, input: &queued)
        }
        isDecoding = false

        if let wasActive = inputClosedWhileDecoding {
            inputClosedWhileDecoding = nil
            handleInputClosed(context: context, wasActive: wasActive)
        }
    }

    /// Passes the end of the read batch on.
    public func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    /// Decodes what is left (``ByteToMessageDecoder/decodeLast(buffer:seenEOF:)``), reports undecoded
    /// bytes, and passes the event on.
    public func channelInactive(context: ChannelHandlerContext) {
        if isDecoding {
            // The channel closed from inside a message we fired: the close came from this side (the
            // transport reports the peer's close only between reads), so the rest of this batch is
            // not wanted. Stop; the outer decode loop sees the state and returns.
            if state == .decoding { state = .finished }
        } else {
            finishInput(context: context, closeOnError: false)
        }
        context.fireChannelInactive()
    }

    /// On ``ChannelEvent/inputClosed``, decodes what is left like `channelInactive` does, then
    /// passes the event on (unless the channel closed meanwhile, leftover bytes for instance: the
    /// later stages have then seen `channelInactive`, which says more). Passes other events on.
    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if isDecoding {
            // Bytes of the current batch arrived before the end of input: decode them first, then
            // handle the end and pass the event on (see `channelRead`).
            inputClosedWhileDecoding = context.channel.isActive
            return
        }
        handleInputClosed(context: context, wasActive: context.channel.isActive)
    }

    private func handleInputClosed(context: ChannelHandlerContext, wasActive: Bool) {
        finishInput(context: context, closeOnError: true)
        if !wasActive || context.channel.isActive {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        }
    }

    /// Drops buffered bytes (see the type's documentation) and stops decoding.
    public func handlerRemoved(context: ChannelHandlerContext) {
        if state == .decoding { state = .finished }
        cumulation = ByteBuffer()
        reentrantInput = ByteBuffer()
    }

    // MARK: Decoding

    /// Decodes `input` together with what is buffered, leaving undecoded bytes in `cumulation`.
    private func consume(context: ChannelHandlerContext, input: inout ByteBuffer) {
        while state == .decoding, !context.isRemoved {
            if cumulation.readableBytes == 0 {
                // Nothing buffered: decode in place, so messages can be slices of the transport's buffer.
                guard decodeLoop(context: context, buffer: &input) else { return }
                let leftover = input.readableBytes
                guard leftover > 0 else { return }
                guard leftover <= maximumBufferSize else {
                    fail(context: context, error: ByteToMessageDecoderError.bufferLimitExceeded(limit: maximumBufferSize))
                    return
                }
                prepareEmptyCumulation()
                cumulation.writeBuffer(&input)
                return
            }

            guard input.readableBytes > 0 else { return }
            // Append only what fits under the limit, decode, and go round again: the cumulation never
            // holds more than `maximumBufferSize` bytes, and a decoder that needs no more than that
            // always gets to see its message whole.
            let room = maximumBufferSize - cumulation.readableBytes
            guard room > 0 else {
                fail(context: context, error: ByteToMessageDecoderError.bufferLimitExceeded(limit: maximumBufferSize))
                return
            }
            let take = min(room, input.readableBytes)
            compactCumulation(beforeAppending: take)
            if let chunk = input.readSlice(length: take) { cumulation.writeImmutableBuffer(chunk) }

            // Decode from a local: a re-entrant call must not see (or write into) the buffer mid-loop,
            // and the handler's stored property must not be under an inout access while messages fire.
            var buffer = cumulation
            cumulation = ByteBuffer()
            let keepGoing = decodeLoop(context: context, buffer: &buffer)
            guard keepGoing, state == .decoding else { return }
            cumulation = buffer
        }
    }

    /// Calls `decode` until it needs more bytes, firing each message. Returns whether decoding may
    /// go on (false after an error, or once the handler was removed or the input finished).
    @inline(__always)
    private func decodeLoop(context: ChannelHandlerContext, buffer: inout ByteBuffer) -> Bool {
        while true {
            let message: Decoder.InboundOut
            do {
                // Bound straight from the call's result, which the binding takes over: unwrapping a
                // stored optional would copy the message (a retain and a release per message).
                guard let decoded = try decoder.decode(buffer: &buffer) else { return true }
                message = decoded
            } catch {
                fail(context: context, error: error)
                return false
            }
            context.fireChannelRead(message)
            guard state == .decoding, !context.isRemoved else { return false }
        }
    }

    /// Runs `decodeLast` on what is buffered, fires its messages and reports undecoded bytes.
    private func finishInput(context: ChannelHandlerContext, closeOnError: Bool) {
        guard state == .decoding, !context.isRemoved else { return }
        isDecoding = true
        defer { isDecoding = false }
        var buffer = cumulation
        cumulation = ByteBuffer()
        while state == .decoding, !context.isRemoved {
            let message: Decoder.InboundOut?
            do {
                message = try decoder.decodeLast(buffer: &buffer, seenEOF: true)
            } catch {
                fail(context: context, error: error, close: closeOnError)
                break
            }
            guard let message else { break }
            context.fireChannelRead(message)
        }
        // Input after the end of input is not decoded.
        reentrantInput = ByteBuffer()
        guard state == .decoding else { return }
        state = .finished
        if buffer.readableBytes > 0 {
            fail(context: context, error: ByteToMessageDecoderError.leftoverDataAtEOF(bytes: buffer.readableBytes), close: closeOnError)
        }
    }

    /// Stops decoding for good, releases the buffers, fires `error` and (unless the channel is
    /// already closing) closes the connection: the stream cannot be resynchronised.
    private func fail(context: ChannelHandlerContext, error: any Error, close: Bool = true) {
        state = .failed
        cumulation = ByteBuffer()
        reentrantInput = ByteBuffer()
        context.fireErrorCaught(error)
        if close { context.close() }
    }

    // MARK: Buffer management

    /// Readies the (empty) cumulation for writing, keeping its memory when nobody else uses it.
    ///
    /// When the messages of the last batch were slices of the cumulation and the application has
    /// let go of them, the storage is unique again and `clear()` keeps it: no allocation. If a slice
    /// is still held, the handler lets the storage go (to the slice) instead of having `clear()`
    /// allocate a same-sized copy that may be far larger than what is about to be written.
    private func prepareEmptyCumulation() {
        if cumulation.isStorageUniquelyReferenced {
            cumulation.clear()
        } else {
            cumulation = ByteBuffer()
        }
    }

    /// Moves the undecoded bytes to the front when the consumed prefix is large, so the buffer is
    /// reused instead of growing.
    ///
    /// Compacts when the append would otherwise grow the storage, or when at least half of the
    /// capacity is consumed prefix (the bytes moved are then fewer than the bytes reclaimed, so the
    /// cost is amortised over the messages decoded).
    private func compactCumulation(beforeAppending count: Int) {
        let consumed = cumulation.readerIndex
        guard consumed > 0 else { return }
        if cumulation.writableBytes < count || consumed >= cumulation.capacity / 2 {
            cumulation.discardReadBytes()
        }
    }
}
