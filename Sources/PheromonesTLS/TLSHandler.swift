import COpenSSL
import DequeModule
import Pheromones

/// TLS as a pipeline stage: ciphertext from the network in, plaintext to the next stage out, and
/// the other way for writes (`ByteBuffer` ⇄ `ByteBuffer`), over OpenSSL with memory BIOs.
///
/// Put it first, next to the socket:
/// ```swift
/// let context = try TLSContext(configuration: .makeServerConfiguration(identity: identity))
/// ServerBootstrap(group: group).childChannelInitializer { channel in
///     try channel.pipeline.addHandlers([TLSHandler(serverWith: context), EchoHandler()])
/// }
/// ```
///
/// - The handshake starts when the channel becomes active (or when the stage is added to an active
///   channel) and is driven by the bytes that arrive; it must finish within
///   ``TLSConfiguration/handshakeTimeout``. When it does, the stage fires
///   ``TLSEvent/handshakeCompleted(_:)``. Writes made before then wait, and go out once it is done.
/// - Plaintext written between two flushes is packed into as few records as fit (16 KiB each), and
///   the ciphertext of one flush goes out as one write.
/// - Closing sends `close_notify` first (`close(mode: .output)` too: TLS 1.3 half-closure, after
///   the writes queued before it, flushed or not). A peer's
///   `close_notify` ends the input: the stage answers with its own and closes, or, with
///   `allowRemoteHalfClosure`, fires `ChannelEvent.inputClosed` and lets the stages after it decide.
///   A peer that ends the stream without one is reported as ``TLSError/uncleanShutdown``: what it
///   sent may have been cut short.
/// - Every failure is a ``TLSError`` fired through `errorCaught`, after which the stage closes the
///   connection; nothing a peer sends can do more than close its own connection.
public final class TLSHandler: ChannelDuplexHandler {
    /// Ciphertext.
    public typealias InboundIn = ByteBuffer
    /// Plaintext.
    public typealias InboundOut = ByteBuffer
    /// Plaintext.
    public typealias OutboundIn = ByteBuffer
    /// Ciphertext.
    public typealias OutboundOut = ByteBuffer

    /// The largest plaintext a TLS record carries.
    static let maximumRecordPlaintext = 16_384

    private enum State {
        /// Added, the channel not active yet.
        case idle
        case handshaking
        case active
        /// Failed or closed: nothing more goes in or out.
        case closed
    }

    private let tlsContext: TLSContext
    private let ssl: OpaquePointer
    private let networkInput: OpaquePointer
    private let networkOutput: OpaquePointer
    private let allowRemoteHalfClosure: Bool
    private var state = State.idle
    private var pendingWrites: Deque<(data: ByteBuffer, promise: Promise<Void>?)> = []
    private var flushPending = false
    private var sentCloseNotify = false
    private var receivedCloseNotify = false
    /// Whether this side asked to close (an end of stream after that is no surprise).
    private var closeRequested = false
    private var handshakeTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    /// The promises of the writes one flush encrypts (kept, emptied, for the next flush).
    private var flushPromises: [Promise<Void>] = []

    /// A client stage. `serverHostname` is sent as SNI (unless it is an IP address) and is what
    /// the server's certificate must name; sessions are resumed per `serverHostname` (or
    /// `sessionKey`, when given: the host and port, say, when one name serves several ports).
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when the connection cannot be set up.
    public init(clientWith context: TLSContext, serverHostname: String?, sessionKey: String? = nil, allowRemoteHalfClosure: Bool = false) throws(TLSError) {
        let key = context.configuration.sessionResumption ? (sessionKey ?? serverHostname) : nil
        (ssl, networkInput, networkOutput) = try context.makeConnection(role: .client(serverName: serverHostname, sessionKey: key))
        self.tlsContext = context
        self.allowRemoteHalfClosure = allowRemoteHalfClosure
    }

    /// A server stage.
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when the connection cannot be set up.
    public init(serverWith context: TLSContext, allowRemoteHalfClosure: Bool = false) throws(TLSError) {
        (ssl, networkInput, networkOutput) = try context.makeConnection(role: .server)
        self.tlsContext = context
        self.allowRemoteHalfClosure = allowRemoteHalfClosure
    }

    deinit {
        TLSContext.releaseSessionKey(of: ssl)
        SSL_free(ssl)
    }

    // MARK: Lifecycle

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startHandshake(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelHandshakeTimer()
        failPendingWrites(ChannelError.ioOnClosedChannel)
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        startHandshake(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelHandshakeTimer()
        let wasHandshaking = state == .handshaking
        let wasActive = state == .active
        state = .closed
        failPendingWrites(ChannelError.ioOnClosedChannel)
        if wasHandshaking {
            context.fireErrorCaught(TLSError.handshakeFailed("the connection closed during the handshake"))
        } else if wasActive, !receivedCloseNotify, !closeRequested {
            context.fireErrorCaught(TLSError.uncleanShutdown)
        }
        context.fireChannelInactive()
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard state == .idle else { return }
        state = .handshaking
        if let timeout = tlsContext.configuration.handshakeTimeout.positive {
            // The timer holds the stage weakly, and not its context (which holds the pipeline,
            // which holds the stage): a connection dropped mid-handshake is freed at once, not
            // when its timer would have fired.
            let bound = LoopBound(WeakReference(self), eventLoop: context.eventLoop)
            handshakeTimer = context.eventLoop.scheduleTask(in: timeout) {
                guard let handler = bound.value.object else { return }
                handler.handshakeTimer = nil
                guard handler.state == .handshaking, let context = handler.context else { return }
                handler.fail(.handshakeTimedOut, context: context)
            }
        }
        advanceHandshake(context: context)
        writeNetworkOutput(context: context)
    }

    private func cancelHandshakeTimer() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        guard state == .handshaking || state == .active else { return }
        guard feed(data) else {
            fail(.protocolError("cannot buffer the received bytes"), context: context)
            return
        }
        if state == .handshaking { advanceHandshake(context: context) }
        if state == .active { readPlaintext(context: context) }
        writeNetworkOutput(context: context)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .handshaking:
            fail(.handshakeFailed("the peer ended the stream during the handshake"), context: context)
        case .active where !receivedCloseNotify:
            fail(.uncleanShutdown, context: context)
        case .active, .idle, .closed:
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Hands `data` to OpenSSL's input BIO; false if it did not take it all.
    private func feed(_ data: ByteBuffer) -> Bool {
        data.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let chunk = min(bytes.count - offset, Int(Int32.max))
                let written = BIO_write(networkInput, bytes.baseAddress.map { $0 + offset }, Int32(chunk))
                guard written > 0 else { return false }
                offset += Int(written)
            }
            return true
        }
    }

    private func advanceHandshake(context: ChannelHandlerContext) {
        OpenSSLErrors.clear()
        let result = SSL_do_handshake(ssl)
        guard result != 1 else {
            handshakeCompleted(context: context)
            return
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return
        default:
            fail(handshakeError(), context: context)
        }
    }

    /// Why the handshake failed: the peer's certificate, or OpenSSL's reasons.
    private func handshakeError() -> TLSError {
        let verifyResult = SSL_get_verify_result(ssl)
        if verifyResult != X509_V_OK {
            OpenSSLErrors.clear()
            return .certificateVerificationFailed(CertificateVerificationFailure(verifyResult: verifyResult))
        }
        if ERR_GET_REASON(ERR_peek_error()) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE {
            OpenSSLErrors.clear()
            return .certificateVerificationFailed(.noCertificate)
        }
        return .handshakeFailed(OpenSSLErrors.drain(fallback: "the peer's messages are not a TLS handshake"))
    }

    private func handshakeCompleted(context: ChannelHandlerContext) {
        state = .active
        cancelHandshakeTimer()
        context.fireUserInboundEventTriggered(TLSEvent.handshakeCompleted(TLSHandshakeResult(ssl: ssl)))
        guard state == .active else { return }
        if flushPending { encryptPendingWrites(context: context) }
    }

    /// Delivers the plaintext OpenSSL can decrypt from what has arrived, in buffers of up to a
    /// record's worth.
    private func readPlaintext(context: ChannelHandlerContext) {
        while state == .active, !receivedCloseNotify {
            var plaintext = ScratchBuffers.take(minimumCapacity: Self.maximumRecordPlaintext)
            defer { ScratchBuffers.give(plaintext) }
            var outcome: Int32 = 1
            plaintext.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maximumRecordPlaintext) { region in
                var total = 0
                while total < region.count {
                    var read = 0
                    OpenSSLErrors.clear()
                    let result = SSL_read_ex(ssl, region.baseAddress.map { $0 + total }, region.count - total, &read)
                    guard result == 1 else {
                        outcome = SSL_get_error(ssl, result)
                        break
                    }
                    total += read
                }
                return total
            }
            if plaintext.readableBytes > 0 { context.fireChannelRead(plaintext) }
            switch outcome {
            case 1:
                continue
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                return
            case SSL_ERROR_ZERO_RETURN:
                peerSentCloseNotify(context: context)
                return
            default:
                fail(.protocolError(OpenSSLErrors.drain(fallback: "a record did not decrypt")), context: context)
                return
            }
        }
    }

    private func peerSentCloseNotify(context: ChannelHandlerContext) {
        receivedCloseNotify = true
        if allowRemoteHalfClosure {
            context.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        } else {
            close(context: context, mode: .all, promise: nil)
        }
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: ByteBuffer, promise: Promise<Void>?) {
        guard state != .closed, !sentCloseNotify else {
            promise?.fail(sentCloseNotify && state != .closed ? ChannelError.outputClosed : ChannelError.ioOnClosedChannel)
            return
        }
        pendingWrites.append((data, promise))
    }

    public func flush(context: ChannelHandlerContext) {
        flushPending = true
        if state == .active { encryptPendingWrites(context: context) }
    }

    /// Encrypts what was written, packing small writes into shared records, and writes the
    /// ciphertext as one buffer; the writes' promises complete with that buffer's write.
    private func encryptPendingWrites(context: ChannelHandlerContext) {
        flushPending = false
        guard !pendingWrites.isEmpty else { return }
        flushPromises.removeAll(keepingCapacity: true)
        guard pendingWrites.count > 1 else {
            // The common case, one write per flush: straight into OpenSSL, no staging.
            guard encryptOnlyPendingWrite() else { return failEncryption(context: context) }
            return writeNetworkOutput(context: context, completing: flushPromises)
        }
        var staging = ScratchBuffers.take(minimumCapacity: Self.maximumRecordPlaintext)
        defer { ScratchBuffers.give(staging) }
        while let (data, promise) = pendingWrites.popFirst() {
            if let promise { flushPromises.append(promise) }
            if staging.readableBytes + data.readableBytes > Self.maximumRecordPlaintext, staging.readableBytes > 0 {
                guard encrypt(staging) else { return failEncryption(context: context) }
                staging.clear()
            }
            if data.readableBytes >= Self.maximumRecordPlaintext {
                guard encrypt(data) else { return failEncryption(context: context) }
            } else {
                var data = data
                staging.writeBuffer(&data)
            }
        }
        if staging.readableBytes > 0, !encrypt(staging) { return failEncryption(context: context) }
        writeNetworkOutput(context: context, completing: flushPromises)
    }

    /// Encrypts the one pending write, and lets go of its buffer before the ciphertext is written:
    /// an echoed read's buffer is then the thread's alone again, for the ciphertext to reuse.
    private func encryptOnlyPendingWrite() -> Bool {
        guard let (data, promise) = pendingWrites.popFirst() else { return true }
        if let promise { flushPromises.append(promise) }
        return encrypt(data)
    }

    /// Hands `plaintext` to OpenSSL; false when it fails.
    private func encrypt(_ plaintext: ByteBuffer) -> Bool {
        plaintext.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                var written = 0
                OpenSSLErrors.clear()
                guard SSL_write_ex(ssl, bytes.baseAddress.map { $0 + offset }, bytes.count - offset, &written) == 1 else { return false }
                offset += written
            }
            return true
        }
    }

    private func failEncryption(context: ChannelHandlerContext) {
        let error = TLSError.protocolError(OpenSSLErrors.drain(fallback: "a write could not be encrypted"))
        for promise in flushPromises { promise.fail(error) }
        flushPromises.removeAll()
        fail(error, context: context)
    }

    /// Writes and flushes whatever ciphertext OpenSSL has produced (handshake messages, records,
    /// alerts, tickets), as one buffer; `promises` complete with its write.
    private func writeNetworkOutput(context: ChannelHandlerContext, completing promises: [Promise<Void>] = []) {
        let pending = Int(BIO_ctrl_pending(networkOutput))
        guard pending > 0 else {
            for promise in promises { promise.succeed(()) }
            return
        }
        var ciphertext = ScratchBuffers.take(minimumCapacity: pending)
        defer { ScratchBuffers.give(ciphertext) }
        ciphertext.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { region in
            let read = BIO_read(networkOutput, region.baseAddress, Int32(clamping: pending))
            return max(0, Int(read))
        }
        context.writeAndFlush(ciphertext, promise: Self.combined(promises, on: context.eventLoop))
    }

    /// One promise that completes all of `promises` (nil for none).
    private static func combined(_ promises: [Promise<Void>], on loop: any EventLoop) -> Promise<Void>? {
        guard promises.count > 1 else { return promises.first }
        let combined = loop.makePromise(of: Void.self)
        combined.futureResult.whenCompleteOnLoop { result in
            for promise in promises { promise.complete(result) }
        }
        return combined
    }

    private func failPendingWrites(_ error: any Error) {
        let failed = pendingWrites
        pendingWrites = []
        for write in failed { write.promise?.fail(error) }
    }

    // MARK: Closing

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        switch mode {
        case .input:
            context.close(mode: .input, promise: promise)
        case .output:
            guard state == .active, !sentCloseNotify else {
                context.close(mode: .output, promise: promise)
                return
            }
            // As a socket does, what was written before the half-close goes out first, flushed or
            // not: a stage that answers the peer's end of input and then closes its output (the
            // answers of the last read batch not flushed yet) must not lose them.
            encryptPendingWrites(context: context)
            sendCloseNotify(context: context) { context.close(mode: .output, promise: promise) }
        case .all:
            closeRequested = true
            failPendingWrites(ChannelError.ioOnClosedChannel)
            guard state == .active, !sentCloseNotify else {
                state = .closed
                context.close(mode: .all, promise: promise)
                return
            }
            sendCloseNotify(context: context) { context.close(mode: .all, promise: promise) }
        }
    }

    /// Sends `close_notify`, then runs `then` once it is written (or could not be).
    private func sendCloseNotify(context: ChannelHandlerContext, then: @escaping () -> Void) {
        sentCloseNotify = true
        OpenSSLErrors.clear()
        _ = SSL_shutdown(ssl)
        OpenSSLErrors.clear()
        let written = context.eventLoop.makePromise(of: Void.self)
        writeNetworkOutput(context: context, completing: [written])
        written.futureResult.whenCompleteOnLoop { _ in then() }
    }

    /// Reports `error`, sends what OpenSSL has to say about it (an alert), and closes.
    private func fail(_ error: TLSError, context: ChannelHandlerContext) {
        guard state != .closed else { return }
        state = .closed
        closeRequested = true
        cancelHandshakeTimer()
        failPendingWrites(error)
        context.fireErrorCaught(error)
        let alert = context.eventLoop.makePromise(of: Void.self)
        writeNetworkOutput(context: context, completing: [alert])
        alert.futureResult.whenCompleteOnLoop { _ in context.close(promise: nil) }
    }
}

extension TimeAmount {
    /// The amount, when it is above zero (a timeout of zero or less is none).
    var positive: TimeAmount? { self > .zero ? self : nil }
}
