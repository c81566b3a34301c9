import Crypto
import DequeModule
import Pheromones

/// Noise as a pipeline stage: `Noise_XX_25519_ChaChaPoly_SHA256` with peer identities.
/// Ciphertext from the network in, plaintext to the next stage out, and the other way for writes
/// (`ByteBuffer` ⇄ `ByteBuffer`).
///
/// Put it first, next to the socket:
/// ```swift
/// let noise = try NoiseConfiguration(identity: try IdentityFile.load(from: "node.identity"))
/// ServerBootstrap(group: group).childChannelInitializer { channel in
///     try channel.pipeline.addHandlers([NoiseHandler(responderWith: noise), EchoHandler()])
/// }
/// ```
///
/// - Every Noise message travels with a 2-byte big-endian length before it, as in libp2p's noise
///   spec; a message is at most 65,535 bytes (a transport message carries 65,519 bytes of plaintext).
/// - The handshake starts when the channel becomes active (or when the stage is added to an active
///   channel) and must complete within ``NoiseConfiguration/handshakeTimeout``. When it does, the
///   stage fires ``NoiseEvent/handshakeCompleted(_:)`` with the peer's proven ``PeerID``, and drops
///   its handshake state. Writes made before then wait (up to
///   ``NoiseConfiguration/maximumQueuedBytes``) and go out once it is done.
/// - Plaintext written between two flushes is packed into as few transport messages as fit, and
///   the ciphertext of one flush goes out as one write.
/// - Received bytes are held only while they are a message's beginning: at most one message.
/// - Every failure is a ``NoiseError`` fired through `errorCaught`, after which the stage closes
///   the connection; nothing a peer sends can do more than close its own connection. A message
///   that does not decrypt is never skipped.
public final class NoiseHandler: ChannelDuplexHandler {
    /// Ciphertext.
    public typealias InboundIn = ByteBuffer
    /// Plaintext.
    public typealias InboundOut = ByteBuffer
    /// Plaintext.
    public typealias OutboundIn = ByteBuffer
    /// Ciphertext.
    public typealias OutboundOut = ByteBuffer

    /// The largest plaintext of one transport message (65,535 minus the 16-byte tag).
    public static let maximumPlaintextLength = HandshakeState.maximumMessageLength - CipherState.tagLength
    /// What framing and the tag add to a transport message's plaintext.
    private static let messageOverhead = NoiseFrameReader.headerLength + CipherState.tagLength
    /// The largest handshake message accepted (ours are 32, 193 and 161 bytes long).
    public static let maximumHandshakeMessageLength = 1024

    private enum State {
        /// Added, the channel not active yet.
        case idle
        case handshaking
        case active
        /// Failed or closed: nothing more goes in or out.
        case closed
    }

    private let configuration: NoiseConfiguration
    private let role: HandshakeState.Role
    private var state = State.idle
    /// Set while handshaking only: dropped (ephemeral keys and all) once it completes.
    private var handshake: HandshakeState?
    /// Set once the handshake has completed.
    private var sendCipher: CipherState?
    private var receiveCipher: CipherState?
    private var frames = NoiseFrameReader()
    private var pendingWrites: Deque<(data: ByteBuffer, promise: Promise<Void>?)> = []
    private var pendingBytes = 0
    private var flushPending = false
    private var handshakeTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    /// The ephemeral key of the next handshake, for known-answer tests (default: a fresh one).
    package var ephemeralKeyForTesting: Curve25519.KeyAgreement.PrivateKey?

    /// The side that dials: it sends the first handshake message.
    public init(initiatorWith configuration: NoiseConfiguration) {
        self.configuration = configuration
        self.role = .initiator
    }

    /// The side that accepts: it answers the first handshake message.
    public init(responderWith configuration: NoiseConfiguration) {
        self.configuration = configuration
        self.role = .responder
    }

    /// How many received bytes are held, waiting for the rest of their message.
    package var bufferedInboundBytes: Int { frames.bufferedBytes }

    /// Whether the handshake state is still held.
    package var holdsHandshakeState: Bool { handshake != nil }

    /// Moves the transport nonces (tests of nonce exhaustion): nil leaves one as it is.
    package func setNoncesForTesting(send: UInt64?, receive: UInt64?) {
        if let send { sendCipher?.nonce = send }
        if let receive { receiveCipher?.nonce = receive }
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
        let previous = state
        if previous == .handshaking || previous == .active { closeState() }
        failPendingWrites(ChannelError.ioOnClosedChannel)
        if previous == .handshaking {
            context.fireErrorCaught(NoiseError.closedDuringHandshake)
        } else if previous == .active, frames.bufferedBytes > 0 {
            context.fireErrorCaught(NoiseError.truncatedMessage)
        }
        frames.reset()
        context.fireChannelInactive()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch state {
        case .handshaking:
            fail(.closedDuringHandshake, context: context)
        case .active where frames.bufferedBytes > 0:
            fail(.truncatedMessage, context: context)
        case .active, .idle, .closed:
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func startHandshake(context: ChannelHandlerContext) {
        guard state == .idle else { return }
        state = .handshaking
        var handshake = HandshakeState(
            role: role, prologue: NoiseConfiguration.prologue, staticKey: configuration.staticKey,
            ephemeralKey: ephemeralKeyForTesting ?? .init())
        ephemeralKeyForTesting = nil
        startHandshakeTimer(context: context)
        guard role == .initiator else {
            self.handshake = handshake
            return
        }
        do {
            let first = try handshake.writeMessage(payload: [])
            self.handshake = handshake
            var output = ByteBuffer()
            Self.frame(first, into: &output)
            context.writeAndFlush(output, promise: nil)
        } catch {
            fail(error, context: context)
        }
    }

    private func startHandshakeTimer(context: ChannelHandlerContext) {
        guard configuration.handshakeTimeout > .zero else { return }
        // The timer holds the stage weakly, and not its context (which holds the pipeline, which
        // holds the stage): a connection dropped mid-handshake is freed at once, not when its
        // timer would have fired.
        let bound = LoopBound(WeakReference(self), eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: configuration.handshakeTimeout) {
            guard let handler = bound.value.object else { return }
            handler.handshakeTimer = nil
            guard handler.state == .handshaking, let context = handler.context else { return }
            handler.fail(.handshakeTimedOut, context: context)
        }
    }

    private func cancelHandshakeTimer() {
        handshakeTimer?.cancel()
        handshakeTimer = nil
    }

    // MARK: Inbound

    public func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        var input = data
        while state == .handshaking || state == .active {
            let limit = state == .handshaking ? Self.maximumHandshakeMessageLength : HandshakeState.maximumMessageLength
            do {
                guard let message = try frames.next(from: &input, maximumLength: limit) else { return }
                if state == .handshaking {
                    try readHandshakeMessage(message, context: context)
                } else {
                    try readTransportMessage(message, context: context)
                }
            } catch {
                return fail(error, context: context)
            }
        }
    }

    /// Reads one handshake message, answers it, and completes the handshake after the last.
    private func readHandshakeMessage(_ message: ByteBuffer, context: ChannelHandlerContext) throws(NoiseError) {
        guard var handshake else { throw .invalidHandshakeState("no handshake in progress") }
        let payload = try handshake.readMessage(Array(message.readableBytesView))
        var output = ByteBuffer()
        switch handshake.messageIndex {
        case 1:
            // Responder, message 1 read: message 1 carries no payload in this protocol.
            guard payload.isEmpty else { throw .malformedHandshakeMessage("message 1 carries a \(payload.count)-byte payload; it must be empty") }
            Self.frame(try handshake.writeMessage(payload: configuration.payload), into: &output)
            self.handshake = handshake
        case 2:
            // Initiator, message 2 read: the responder is authenticated before anything of ours
            // (our identity) goes out.
            let remote = try authenticate(payload, handshake: handshake)
            Self.frame(try handshake.writeMessage(payload: configuration.payload), into: &output)
            try complete(handshake, remote: remote, output: &output, context: context)
        default:
            let remote = try authenticate(payload, handshake: handshake)
            try complete(handshake, remote: remote, output: &output, context: context)
        }
        if output.readableBytes > 0, state != .closed { context.writeAndFlush(output, promise: nil) }
    }

    /// The peer's proven identity: its payload parsed, its signature of the static key the
    /// handshake has just proved it holds checked, and its peer id the expected one, if any.
    private func authenticate(_ payload: [UInt8], handshake: HandshakeState) throws(NoiseError) -> HandshakePayload {
        let parsed = try HandshakePayload(decoding: payload)
        guard let staticKey = handshake.remoteStaticKey else { throw .invalidHandshakeState("no remote static key") }
        try parsed.verify(staticKey: staticKey)
        let peerID = parsed.peerID
        if let expected = configuration.expectedPeer, expected != peerID {
            throw .unexpectedPeer(expected: expected, actual: peerID)
        }
        return parsed
    }

    /// Switches to the transport ciphers, drops the handshake state, tells the next stages, and
    /// encrypts what was written meanwhile into `output` (after the last handshake message).
    private func complete(_ handshake: HandshakeState, remote: HandshakePayload, output: inout ByteBuffer, context: ChannelHandlerContext) throws(NoiseError) {
        (sendCipher, receiveCipher) = try handshake.split()
        let result = NoiseHandshakeResult(remotePeerID: remote.peerID, remoteIdentityKey: remote.identityKey, handshakeHash: handshake.handshakeHash)
        self.handshake = nil
        state = .active
        cancelHandshakeTimer()
        context.fireUserInboundEventTriggered(NoiseEvent.handshakeCompleted(result))
        guard state == .active, flushPending else { return }
        encryptPendingWrites(into: output, context: context)
        output.clear()
    }

    /// Decrypts one transport message into a lent buffer and passes it on once its tag has
    /// been checked: the next stage never sees a byte of a message that does not authenticate.
    private func readTransportMessage(_ message: ByteBuffer, context: ChannelHandlerContext) throws(NoiseError) {
        guard receiveCipher != nil else { throw .invalidHandshakeState("no transport cipher") }
        // Lent by the loop's thread, and back on its shelf once the next stage is done with it:
        // decrypting allocates nothing, and an idle connection holds no buffer.
        var plaintext = ScratchBuffers.take(minimumCapacity: message.readableBytes)
        defer { ScratchBuffers.give(plaintext) }
        try withNoiseBytes(of: message) { bytes throws(NoiseError) in
            try receiveCipher?.open(bytes, appendingTo: &plaintext)
        }
        guard plaintext.readableBytes > 0 else { return }
        context.fireChannelRead(plaintext)
    }

    // MARK: Outbound

    public func write(context: ChannelHandlerContext, data: ByteBuffer, promise: Promise<Void>?) {
        guard state != .closed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        if state != .active, data.readableBytes > configuration.maximumQueuedBytes - pendingBytes {
            promise?.fail(NoiseError.writeQueueFull(limit: configuration.maximumQueuedBytes))
            return
        }
        pendingBytes += data.readableBytes
        pendingWrites.append((data, promise))
    }

    public func flush(context: ChannelHandlerContext) {
        flushPending = true
        guard state == .active else { return }
        encryptPendingWrites(into: ByteBuffer(), context: context)
    }

    /// Encrypts what was written into transport messages, packing small writes together and
    /// splitting large ones, and writes `prefix` and the ciphertext as one buffer; the writes'
    /// promises complete with that buffer's write.
    private func encryptPendingWrites(into prefix: ByteBuffer, context: ChannelHandlerContext) {
        flushPending = false
        guard !pendingWrites.isEmpty else {
            if prefix.readableBytes > 0 { context.writeAndFlush(prefix, promise: nil) }
            return
        }
        // Lent by the loop's thread (see ``ScratchBuffers``): once the channel has written and
        // released it, the next flush reuses it, so sealing allocates nothing. The plaintext is
        // copied into it once and encrypted there, in place.
        var output = ScratchBuffers.take(
            minimumCapacity: prefix.readableBytes + pendingBytes + (pendingBytes / Self.maximumPlaintextLength + 1) * Self.messageOverhead)
        defer { ScratchBuffers.give(output) }
        output.writeImmutableBuffer(prefix)
        var promises: [Promise<Void>] = []
        do {
            var messageStart: Int?
            while let (data, promise) = pendingWrites.popFirst() {
                if let promise { promises.append(promise) }
                var data = data
                while data.readableBytes > 0 {
                    let start = messageStart ?? startMessage(in: &output)
                    let room = Self.maximumPlaintextLength - (output.writerIndex - start)
                    guard var piece = data.readSlice(length: min(room, data.readableBytes)) else { break }
                    output.writeBuffer(&piece)
                    messageStart = start
                    if output.writerIndex - start == Self.maximumPlaintextLength {
                        try sealMessage(in: &output, from: start)
                        messageStart = nil
                    }
                }
            }
            if let start = messageStart { try sealMessage(in: &output, from: start) }
        } catch {
            for promise in promises { promise.fail(error) }
            return fail(error, context: context)
        }
        pendingBytes = 0
        context.writeAndFlush(output, promise: Self.combined(promises, on: context.eventLoop))
    }

    /// Writes the 2-byte header of a transport message (its length is set once sealed); returns
    /// where the message's plaintext starts.
    private func startMessage(in output: inout ByteBuffer) -> Int {
        output.writeInteger(UInt16(0))
        return output.writerIndex
    }

    /// Encrypts the plaintext written into `output` from `start` in place, appends its tag, and sets
    /// its header's length.
    private func sealMessage(in output: inout ByteBuffer, from start: Int) throws(NoiseError) {
        guard sendCipher != nil else { throw .invalidHandshakeState("no transport cipher") }
        try sendCipher?.sealInPlace(&output, from: start)
        let length = output.writerIndex - start
        output.setInteger(UInt16(truncatingIfNeeded: length), at: start - NoiseFrameReader.headerLength)
    }

    /// Appends `message` with its 2-byte big-endian length before it.
    private static func frame(_ message: [UInt8], into output: inout ByteBuffer) {
        output.writeInteger(UInt16(truncatingIfNeeded: message.count))
        output.writeBytes(message)
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
        pendingBytes = 0
        for write in failed { write.promise?.fail(error) }
    }

    // MARK: Closing

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        if mode == .all {
            closeState()
            failPendingWrites(ChannelError.ioOnClosedChannel)
        }
        context.close(mode: mode, promise: promise)
    }

    /// Nothing more goes in or out; the keys are dropped.
    private func closeState() {
        state = .closed
        cancelHandshakeTimer()
        handshake = nil
        sendCipher = nil
        receiveCipher = nil
    }

    /// Reports `error` and closes the connection.
    private func fail(_ error: NoiseError, context: ChannelHandlerContext) {
        guard state != .closed else { return }
        closeState()
        frames.reset()
        failPendingWrites(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}
