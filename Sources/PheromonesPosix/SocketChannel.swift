import Glibc
import Logging
import PheromonesCore
import Synchronization

/// A TCP connection on an ``EpollEventLoop``: the transport under a pipeline.
///
/// How bytes travel:
/// - **In.** When epoll reports the socket readable, the channel `read(2)`s into its loop's shared
///   receive buffer, up to ``SocketOptions/maxReadsPerWakeup`` times (fairness), fires
///   `channelRead` for each read and `channelReadComplete` after the batch. The read size adapts
///   (2 KiB to start, doubling when a read fills it, halving after two small reads).
/// - **Out.** `write` queues a buffer; `flush` hands the queued buffers to one `writev`. Whatever the
///   kernel does not take waits for `EPOLLOUT`, which is switched on only while bytes wait. Write
///   promises complete in order. Above the high water mark the channel turns unwritable and fires
///   `channelWritabilityChanged`; below the low one, writable again.
/// - **Backpressure.** With auto-read on, the channel asks the pipeline for the next read (an
///   outbound `read()`) after every batch; a handler that holds that request back stops the
///   channel reading, and the kernel's buffers then push back on the peer.
///
/// Closing happens exactly once, through `ChannelLifecycle`: an I/O error fires `errorCaught` once
/// and closes; the channel is inactive, and every write fails, from the moment it decides to close.
/// The channel stays alive while anything refers to it (its registration, its pipeline until the
/// close has finished, a context a handler kept, a reference the application holds).
///
/// All state is confined to the loop; the `Channel` members that other threads may call hop there.
// Unchecked: everything mutable is touched only on `loop`'s thread (asserted in each entry point),
// except `activeFlag`/`writableFlag` (atomics), `addressStorage` (under `addressLock`) and
// `closeFutureState` (under `closeFutureLock`), which other threads read.
public final class SocketChannel: Channel, ChannelCore, Selectable, @unchecked Sendable {
    /// The loop that owns the channel.
    public let loop: EpollEventLoop
    /// The listener that accepted this channel, if any.
    public let parent: (any Channel)?
    // `@exclusivity(unchecked)`: loop-confined hot state. Only the loop's thread touches it, and no access
    // spans a call that could re-enter, so the runtime check (a thread-local lookup per access) buys nothing.
    @exclusivity(unchecked) private var pipelineStorage: ChannelPipeline!
    /// The descriptor, the registration and the stage of life (see ``ChannelLifecycle``).
    @exclusivity(unchecked) private var lifecycle: ChannelLifecycle
    /// Shared with the other channels of the same bootstrap: one allocation per server, not per connection.
    private let settings: SharedSocketOptions
    private var options: SocketOptions { settings.value }

    @exclusivity(unchecked) private var pendingWrites = PendingWrites()
    // The one-byte fields together (after the write queue, whose last field is one byte too): the
    // channel is most of an idle connection's memory, and spread between wider fields each would
    // cost a word.
    @exclusivity(unchecked) private var interest: Interest = []
    @exclusivity(unchecked) private var readPending = false
    @exclusivity(unchecked) private var inputClosed = false
    @exclusivity(unchecked) private var outputClosed = false
    @exclusivity(unchecked) private var isFlushing = false
    @exclusivity(unchecked) private var writable = true
    /// The next read's size is `1 << readSizeShift` bytes (see ``adaptReadSize(lastRead:)``).
    @exclusivity(unchecked) private var readSizeShift = UInt8(11)
    /// Reads in a row that filled less than half of the read size.
    @exclusivity(unchecked) private var smallReads = UInt8(0)
    private let activeFlag = Atomic<Bool>(false)
    private let writableFlag = Atomic<Bool>(true)
    /// Guards `addressStorage`, which other threads read: an inline lock word, not a separate
    /// allocation per connection.
    private let addressLock = AtomicLock()
    /// Guards `closeFutureState`, which any thread may ask for.
    private let closeFutureLock = AtomicLock()

    @exclusivity(unchecked) private var shutdownOutputWhenFlushed: Promise<Void>??
    @exclusivity(unchecked) private var completedWrites: [Promise<Void>] = []
    /// How many of `completedWrites` have been succeeded: a promise callback may close the channel,
    /// and the close must first succeed the rest (they were sent) before it fails the queued ones.
    @exclusivity(unchecked) private var completedWritesReported = 0

    /// Only while a client connect is under way (accepted channels never need it).
    private var connecting: ConnectAttempt?

    // `@exclusivity(unchecked)`: threads take turns through `addressLock`.
    @exclusivity(unchecked) private var addressStorage: (local: SocketAddress?, remote: SocketAddress?) = (nil, nil)
    // `@exclusivity(unchecked)`: threads take turns through `closeFutureLock`.
    @exclusivity(unchecked) private var closeFutureState = CloseFutureState.notAsked

    /// Reads are 64 bytes to 64 KiB.
    private static let minimumReadSizeShift = UInt8(6)
    private static let maximumReadSizeShift = UInt8(16)
    private var readSize: Int { 1 << Int(readSizeShift) }
    private static let writeSpinCount = 16

    init(fd: CInt, loop: EpollEventLoop, options: SharedSocketOptions, parent: (any Channel)?) {
        self.lifecycle = ChannelLifecycle(fd: fd)
        self.loop = loop
        self.settings = options
        self.parent = parent
        pipelineStorage = ChannelPipeline(channel: self, eventLoop: loop)
    }

    deinit {
        // Not reached before the close in practice: until the close has finished, the pipeline holds the channel.
        if lifecycle.state != .closed { try? loop.posix.close(lifecycle.fd) }
    }

    /// The socket's descriptor (for tests that interfere with the socket behind the channel's back).
    package var fd: CInt { lifecycle.fd }

    // MARK: Channel

    public var pipeline: ChannelPipeline { pipelineStorage }
    public var eventLoop: any EventLoop { loop }
    /// Made when first asked for (see `CloseFutureState`).
    public var closeFuture: Future<Void> {
        closeFutureLock.lock()
        defer { closeFutureLock.unlock() }
        switch closeFutureState {
        case .asked(let promise):
            return promise.futureResult
        case .closed:
            return loop.makeSucceededFuture(())
        case .notAsked:
            let promise = loop.makePromise(of: Void.self)
            closeFutureState = .asked(promise)
            return promise.futureResult
        }
    }

    /// Completes `closeFuture` if anyone asked for it, and makes later requests find it completed.
    private func completeCloseFuture() {
        closeFutureLock.lock()
        let state = closeFutureState
        closeFutureState = .closed
        closeFutureLock.unlock()
        if case .asked(let promise) = state { promise.succeed(()) }
    }
    public var isActive: Bool { activeFlag.load(ordering: .relaxed) }
    public var isWritable: Bool { writableFlag.load(ordering: .relaxed) }
    public var bufferedOutboundBytes: Int {
        loop.assertInEventLoop()
        return pendingWrites.queuedBytes
    }
    public var localAddress: SocketAddress? { withAddresses { $0.local } }
    public var remoteAddress: SocketAddress? { withAddresses { $0.remote } }

    private func withAddresses<Result>(_ body: (inout (local: SocketAddress?, remote: SocketAddress?)) -> Result) -> Result {
        addressLock.lock()
        defer { addressLock.unlock() }
        return body(&addressStorage)
    }

    // MARK: Lifecycle (loop thread)

    /// Registers the channel with its loop and fires `channelRegistered`.
    ///
    /// A `connected` (accepted) socket enters the loop's poller now; a client's enters it when it
    /// starts connecting, because epoll reports an unconnected TCP socket as hung up (`EPOLLHUP`) on
    /// every wait, which would spin the loop while the connect has not been issued.
    ///
    /// With auto-read, an accepted socket enters the poller already waiting to read: it asks for
    /// that when it becomes active, on this same turn, before the loop polls. One `epoll_ctl(ADD)`
    /// then serves, not an ADD and a MOD; should a handler hold the read back, the interest is
    /// changed before the loop sleeps, as any other change.
    func register(connected: Bool) throws(IOError) {
        loop.assertInEventLoop()
        guard lifecycle.register() else { return }
        if connected { try enterPoller(waitingFor: options.autoRead ? .readable : []) }
        pipeline.fireChannelRegistered()
    }

    /// Adds the socket to the loop's poller, waiting for `initial`.
    private func enterPoller(waitingFor initial: Interest) throws(IOError) {
        try lifecycle.enterPoller(self, loop: loop, interest: initial)
        interest = initial
    }

    /// Marks an accepted or connected socket active: records addresses, fires `channelActive` and
    /// starts reading if auto-read is on. Does nothing if the channel has closed meanwhile.
    ///
    /// `knownLocal` and `knownRemote` are the addresses when the caller already has them (the
    /// listening address, the peer's from `accept4`); the others are asked of the kernel. A client's
    /// peer is the address it dialed, unless that was a wildcard (which reaches this host).
    func becomeActive(knownLocal: SocketAddress? = nil, knownRemote: SocketAddress? = nil, dialed target: SocketAddress? = nil) {
        guard lifecycle.activate() else { return }
        loop.metrics?.active.increment()
        // Drop the write interest a connect waited with: `flush0` reads it as "the socket is full",
        // and would hold back what `channelActive` sends until the next turn.
        updateInterest()
        activeFlag.store(true, ordering: .relaxed)
        let local = knownLocal ?? (try? loop.posix.localAddress(fd))
        let dialed = target.flatMap { $0.isSpecificHost ? $0 : nil }
        let remote = knownRemote ?? dialed ?? (try? loop.posix.remoteAddress(fd)) ?? target
        withAddresses { $0 = (local, remote) }
        pipeline.fireChannelActive()
        if options.autoRead, lifecycle.state == .active { pipeline.read() }
    }

    // MARK: Readiness

    package func handleReadiness(_ events: UInt32) {
        switch lifecycle.state {
        case .active:
            if events.hasInput || events.hasHangUpOrError {
                if readPending && !inputClosed {
                    readFromSocket()
                } else if events.hasHangUpOrError {
                    closeAfterHangUp()
                }
            }
            if lifecycle.state == .active, events.hasOutput { flushNow(deferringFailure: false) }
        case .connecting:
            if events.hasOutput || events.hasHangUpOrError { finishConnect() }
        case .fresh, .registered:
            // Not connected, so not in the poller (see `register(connected:)`). Should a hang-up or an
            // error be reported anyway, level-triggered epoll would report it on every wait: end the
            // channel rather than spin the loop.
            if events.hasHangUpOrError {
                let code = (try? loop.posix.socketError(fd)).flatMap { $0 == 0 ? nil : $0 } ?? ENOTCONN
                fail(IOError(errnoCode: code, function: "epoll_wait"))
            }
        case .closing, .closed:
            // A close is under way (it finishes on this turn or the next) or done.
            break
        }
    }

    package func closeForShutdown() { close0(mode: .all, promise: nil) }

    package func registrationFailed(_ error: IOError) { fail(error) }

    // MARK: Reading

    private func readFromSocket() {
        var readAnything = false
        for _ in 0..<options.maxReadsPerWakeup {
            var buffer = takeReceiveBuffer()
            let size = readSize
            let attempt = buffer.withUnsafeMutableWritableBytes { bytes in
                Result { () throws(IOError) in
                    try loop.posix.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: bytes.prefix(size)))
                }
            }
            let result: IOResult<Int>
            switch attempt {
            case .success(let value):
                result = value
            case .failure(let error):
                loop.receiveBuffer = buffer
                if readAnything { pipeline.fireChannelReadComplete() }
                fail(error.errnoCode == ECONNRESET ? ChannelError.connectionReset : error)
                return
            }
            guard case .processed(let count) = result else {
                loop.receiveBuffer = buffer
                break
            }
            guard count > 0 else {
                loop.receiveBuffer = buffer
                if readAnything { pipeline.fireChannelReadComplete() }
                endOfInput()
                return
            }
            buffer.moveWriterIndex(forwardBy: count)
            loop.metrics?.bytesReceived.increment(by: count)
            // The request for input is served only once input arrives: a wake-up that finds nothing
            // to read (EAGAIN) must not use it up, or a channel without auto-read would stall.
            readPending = false
            readAnything = true
            let filled = count == readSize
            adaptReadSize(lastRead: count)
            pipeline.fireChannelRead(buffer)
            loop.receiveBuffer = buffer
            // A short read means the socket is drained: skip the read that would only say EAGAIN.
            if lifecycle.state != .active || !filled { break }
        }
        guard lifecycle.state == .active else { return }
        if readAnything { pipeline.fireChannelReadComplete() }
        if options.autoRead, lifecycle.state == .active, !readPending { pipeline.read() }
        updateInterest()
    }

    /// The loop's shared receive buffer, emptied, with room for `readSize` bytes. If a handler kept
    /// the last one, this allocates a new one; otherwise it reuses the memory.
    @inline(__always)
    private func takeReceiveBuffer() -> ByteBuffer {
        var buffer = loop.receiveBuffer
        loop.receiveBuffer = ByteBuffer()
        if buffer.isStorageUniquelyReferenced {
            buffer.clear(minimumCapacity: readSize)
        } else {
            buffer = ByteBuffer(capacity: readSize)
        }
        return buffer
    }

    private func adaptReadSize(lastRead count: Int) {
        if count == readSize {
            readSizeShift = min(readSizeShift + 1, Self.maximumReadSizeShift)
            smallReads = 0
        } else if count < readSize / 2, readSizeShift > Self.minimumReadSizeShift {
            // Strictly less than half: a read that exactly fills the halved size would double it
            // again at once, and the size would oscillate, each fill costing a read(2) that can only
            // say EAGAIN (and a fresh receive buffer when a handler still holds the last one).
            smallReads += 1
            if smallReads >= 2 {
                readSizeShift -= 1
                smallReads = 0
            }
        } else {
            smallReads = 0
        }
    }

    private func endOfInput() {
        inputClosed = true
        if options.allowRemoteHalfClosure && !outputClosed {
            updateInterest()
            pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        } else {
            close0(mode: .all, promise: nil)
        }
    }

    private func closeAfterHangUp() {
        if let code = try? loop.posix.socketError(fd), code != 0 {
            fail(code == ECONNRESET ? ChannelError.connectionReset : IOError(errnoCode: code, function: "socket"))
        } else if !inputClosed {
            // Both directions are down (the peer's end of stream arrived and our output is shut), but
            // bytes before that end of stream may still wait in the kernel, unread because the pipeline
            // holds its reads back. The peer can send no more, so read them, up to the end of stream
            // (which closes the channel), instead of dropping them, as SwiftNIO does. Without an error
            // a hang-up always leaves something to read (bytes or the end), so this cannot spin.
            readFromSocket()
        } else {
            close0(mode: .all, promise: nil)
        }
    }

    /// Closes the channel because of `error`, which reaches `errorCaught` first; does nothing if the
    /// channel is already closing (one failure reaches `errorCaught` once).
    ///
    /// The channel is inactive before `errorCaught` fires, so that what a handler does there (write,
    /// flush, close) cannot fail the channel again: writes fail at once, flushes do nothing, and a
    /// close completes when this one does.
    private func fail(_ error: any Error) {
        close(error: error, promise: nil)
    }

    /// Decides now to close because of `error`, and closes on the loop's next turn (firing
    /// `errorCaught` then): for a failure met inside an operation a handler started (a flush).
    ///
    /// That handler may belong to another channel that is reacting to its own failure (a chat room
    /// broadcasting from `channelInactive` to members whose peers are gone too). Closing right here
    /// would fire this channel's events inside that one's, and so on: as deep as there are failing
    /// channels. Deferred, every close starts from the loop, at a bounded depth. Meanwhile the
    /// channel is inactive and every operation on it fails, as during any close.
    private func failOnNextTurn(_ error: any Error) {
        guard case .close = lifecycle.beginClose(promise: nil) else { return }
        if activeFlag.exchange(false, ordering: .relaxed) { loop.metrics?.recordClose(error) }
        loop.execute { [self] in
            pipeline.fireErrorCaught(error)
            releaseAndFinishClose(promise: nil)
        }
    }

    // MARK: Writing

    /// Writes what is flushed, as far as the socket takes it. A write error closes the channel: on
    /// the next turn when `deferringFailure` (the flush came from the pipeline, see
    /// ``failOnNextTurn(_:)``), at once otherwise (the loop reported the socket writable).
    private func flushNow(deferringFailure: Bool) {
        guard !isFlushing, lifecycle.state == .active else { return }
        isFlushing = true
        defer { isFlushing = false }
        for _ in 0..<Self.writeSpinCount {
            guard pendingWrites.hasFlushed else { break }
            let outcome: PendingWrites.Outcome
            let queuedBefore = pendingWrites.queuedBytes
            do throws(IOError) {
                outcome = try pendingWrites.writeFlushed(
                    fd: fd, posix: loop.posix, iovecs: loop.iovecs, maxIovecs: EpollEventLoop.iovecCount, completed: &completedWrites)
                loop.metrics?.bytesSent.increment(by: queuedBefore - pendingWrites.queuedBytes)
            } catch {
                completeWrites()
                isFlushing = false
                let failure: any Error = error.errnoCode == ECONNRESET || error.errnoCode == EPIPE ? ChannelError.connectionReset : error
                if deferringFailure { failOnNextTurn(failure) } else { fail(failure) }
                return
            }
            completeWrites()
            guard lifecycle.state == .active else { return }
            if case .more = outcome { continue }
            if case .wroteAll = outcome { continue }
            break
        }
        pendingWrites.lendStorage(to: &loop.spareWriteQueue)
        updateWritability()
        if !pendingWrites.hasFlushed, let promise = shutdownOutputWhenFlushed {
            shutdownOutputWhenFlushed = nil
            shutdownOutput(promise: promise)
        }
        updateInterest()
    }

    /// Succeeds the promises of sent writes, in order. Re-entrant: a callback that closes the
    /// channel makes the close call this again, which reports the rest before anything fails.
    private func completeWrites() {
        guard !completedWrites.isEmpty else { return }
        while completedWritesReported < completedWrites.count {
            let promise = completedWrites[completedWritesReported]
            completedWritesReported += 1
            promise.succeed(())
        }
        completedWrites.removeAll(keepingCapacity: true)
        completedWritesReported = 0
    }

    private func updateWritability() {
        if writable, pendingWrites.queuedBytes > options.writeBufferWaterMark.high {
            writable = false
            writableFlag.store(false, ordering: .relaxed)
            pipeline.fireChannelWritabilityChanged()
        } else if !writable, pendingWrites.queuedBytes < options.writeBufferWaterMark.low {
            writable = true
            writableFlag.store(true, ordering: .relaxed)
            pipeline.fireChannelWritabilityChanged()
        }
    }

    private func shutdownOutput(promise: Promise<Void>?) {
        outputClosed = true
        do {
            try loop.posix.shutdown(fd, how: .write)
        } catch {
            promise?.fail(error)
            return
        }
        promise?.succeed(())
        pipeline.fireUserInboundEventTriggered(ChannelEvent.outputClosed)
        if inputClosed { close0(mode: .all, promise: nil) }
    }

    private func updateInterest() {
        guard let token = lifecycle.token, lifecycle.isOpen else { return }
        var wanted: Interest = []
        if readPending && !inputClosed { wanted.insert(.readable) }
        if lifecycle.state == .connecting || pendingWrites.hasFlushed { wanted.insert(.writable) }
        guard wanted != interest else { return }
        interest = wanted
        loop.setInterest(wanted, for: token)
    }

    // MARK: Connecting

    private func finishConnect() {
        guard lifecycle.state == .connecting, let attempt = connecting else { return }
        let code = (try? loop.posix.socketError(fd)) ?? EINVAL
        let (target, promise) = (attempt.target, attempt.finish())
        connecting = nil
        guard code == 0 else {
            let error = Self.connectError(code, target: target)
            close0(mode: .all, promise: nil)
            promise?.fail(error)
            return
        }
        becomeActive(dialed: target)
        updateInterest()
        promise?.succeed(())
    }

    private func connectTimedOut(after timeout: TimeAmount) {
        guard lifecycle.state == .connecting, let attempt = connecting else { return }
        let (target, promise) = (attempt.target, attempt.finish())
        connecting = nil
        close0(mode: .all, promise: nil)
        promise?.fail(ChannelError.connectTimeout(target, timeout))
    }

    static func connectError(_ code: CInt, target: SocketAddress) -> ChannelError {
        switch code {
        case ECONNREFUSED: return .connectionRefused(target)
        case ENETUNREACH, EHOSTUNREACH: return .unreachable(target)
        case ETIMEDOUT: return .connectTimeout(target, .zero)
        default: return .connectFailed(target, IOError(errnoCode: code, function: "connect(2)"))
        }
    }

    // MARK: ChannelCore

    public var acceptedOutboundType: Any.Type? { ByteBuffer.self }
    public var producedInboundType: Any.Type? { ByteBuffer.self }

    public func write0<Message>(_ data: Message, promise: Promise<Void>?) {
        guard Message.self == ByteBuffer.self else {
            promise?.fail(ChannelPipelineError.messageTypeMismatch("a socket channel sends ByteBuffer, not \(Message.self)"))
            return
        }
        writeByteBuffer0(unsafeBitCast(data, to: ByteBuffer.self), promise: promise)
    }

    public func writeByteBuffer0(_ data: ByteBuffer, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        guard !outputClosed, shutdownOutputWhenFlushed == nil else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        pendingWrites.append(data, promise: promise, borrowingFrom: &loop.spareWriteQueue)
        updateWritability()
    }

    public func flush0() {
        loop.assertInEventLoop()
        pendingWrites.markFlushed()
        // While waiting for EPOLLOUT, writing now would only say EAGAIN again.
        if !interest.contains(.writable) { flushNow(deferringFailure: true) }
    }

    public func read0() {
        loop.assertInEventLoop()
        guard !readPending, lifecycle.isOpen else { return }
        readPending = true
        updateInterest()
    }

    public func close0(mode: CloseMode, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen || mode == .all else {
            // The whole channel is closing (a half-close completes with it) or has closed.
            close(error: nil, promise: promise)
            return
        }
        switch mode {
        case .output:
            guard !outputClosed else { promise?.succeed(()); return }
            if pendingWrites.isEmpty {
                shutdownOutput(promise: promise)
            } else {
                pendingWrites.markFlushed()
                shutdownOutputWhenFlushed = .some(promise)
                flushNow(deferringFailure: true)
            }
        case .input:
            inputClosed = true
            try? loop.posix.shutdown(fd, how: .read)
            updateInterest()
            promise?.succeed(())
            pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        case .all:
            close(error: nil, promise: promise)
        }
    }

    /// Closes the channel, at the application's request (`error` nil) or because of `error`, which
    /// then reaches `errorCaught` once the channel is already inactive. Only the first request
    /// closes; one made during that close completes with it, one made later fails with
    /// ``ChannelError/alreadyClosed``.
    private func close(error: (any Error)?, promise: Promise<Void>?) {
        switch lifecycle.beginClose(promise: promise) {
        case .alreadyClosed:
            promise?.fail(ChannelError.alreadyClosed)
        case .joined:
            break
        case .close:
            if activeFlag.exchange(false, ordering: .relaxed) { loop.metrics?.recordClose(error) }
            if let error { pipeline.fireErrorCaught(error) }
            releaseAndFinishClose(promise: promise)
        }
    }

    /// The second half of a close: releases the socket, fails what waited on it, fires
    /// `channelInactive` and removes the handlers (``ChannelLifecycle/finish(_:promise:pipeline:completingCloseFuture:)``).
    /// The state is `closing` throughout, so the callbacks run here find every operation failing.
    private func releaseAndFinishClose(promise: Promise<Void>?) {
        lifecycle.releaseDescriptor(loop: loop)
        connecting?.finish()?.fail(ChannelError.ioOnClosedChannel)
        connecting = nil
        if case .some(let shutdownPromise) = shutdownOutputWhenFlushed { shutdownPromise?.fail(ChannelError.alreadyClosed) }
        shutdownOutputWhenFlushed = nil
        completeWrites()
        for pending in pendingWrites.removeAll() { pending.fail(ChannelError.closedBeforeWriteCompleted) }
        pendingWrites.lendStorage(to: &loop.spareWriteQueue)
        ChannelLifecycle.finish(lifecycle.finishClose(), promise: promise, pipeline: pipeline, completingCloseFuture: completeCloseFuture)
    }

    public func bind0(to address: SocketAddress, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        do {
            try loop.posix.bind(fd, to: address)
            promise?.succeed(())
        } catch {
            promise?.fail(error)
        }
    }

    public func connect0(to address: SocketAddress, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.state == .registered else {
            promise?.fail(lifecycle.isOpen ? ChannelError.alreadyConnected : ChannelError.ioOnClosedChannel)
            return
        }
        do throws(IOError) {
            let connectedAtOnce = try loop.posix.connect(fd, to: address)
            // Into the poller only now (see `register(connected:)`), after the connect is issued,
            // waiting for what the channel waits for next: writability, which says the connect
            // finished (one epoll_ctl, not an ADD and a MOD), or, connected already, nothing yet.
            if lifecycle.token == nil { try enterPoller(waitingFor: connectedAtOnce ? [] : .writable) }
            if connectedAtOnce {
                becomeActive(dialed: address)
                updateInterest()
                promise?.succeed(())
                return
            }
        } catch {
            close0(mode: .all, promise: nil)
            promise?.fail(Self.connectError(error.errnoCode, target: address))
            return
        }
        _ = lifecycle.beginConnecting()
        let timeout = options.connectTimeout
        connecting = ConnectAttempt(
            target: address, promise: promise, timeout: loop.scheduleTask(in: timeout) { [self] in connectTimedOut(after: timeout) })
        updateInterest()
    }

    public func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?) {
        promise?.fail(lifecycle.isOpen ? ChannelError.operationUnsupported : ChannelError.ioOnClosedChannel)
    }

    public func channelReadReachedTail<Message>(_ data: Message) {}

    public func errorCaughtReachedTail(_ error: any Error) {
        loop.logger.debug("an error reached the end of the pipeline unhandled", metadata: [
            "error": "\(error)", "remote": "\(remoteAddress.map { "\($0)" } ?? "?")",
        ])
    }

    public func userInboundEventReachedTail(_ event: Any) {}
}

/// A client connect under way: the address dialed, the caller's promise and the timer that fails it.
/// (Out of line: accepted connections, the many, never need it.)
private final class ConnectAttempt {
    let target: SocketAddress
    private var promise: Promise<Void>?
    private var timeout: Scheduled<Void>?

    init(target: SocketAddress, promise: Promise<Void>?, timeout: Scheduled<Void>) {
        self.target = target
        self.promise = promise
        self.timeout = timeout
    }

    /// Cancels the timer and hands back the promise, once.
    @discardableResult
    func finish() -> Promise<Void>? {
        timeout?.cancel()
        timeout = nil
        defer { promise = nil }
        return promise
    }
}

extension SocketAddress {
    /// Whether the host is one address, not a wildcard (`0.0.0.0`, `::`), and carries no IPv6
    /// scope: then a socket bound or connected to it has exactly this address at its end, and the
    /// kernel need not be asked (`getsockname`, `getpeername`).
    var isSpecificHost: Bool {
        switch self {
        case .v4(let address): return address.address != 0
        case .v6(let address): return (address.high != 0 || address.low != 0) && address.scopeID == 0
        case .unix: return true
        }
    }
}

/// Where a connection's `closeFuture` is: made only when someone asks for it. Most accepted
/// connections are never asked (a server seldom waits on each), and a future would be about 110
/// bytes of every idle connection.
private enum CloseFutureState {
    case notAsked
    /// Asked for before the close finished: completed when it does.
    case asked(Promise<Void>)
    /// The close has finished: a request gets a future that has succeeded.
    case closed
}

extension SocketChannel: SocketOptionProvider, SocketOptionTarget {
    public func setSocketOption<Value>(_ option: SocketOption<Value>, to value: Value) -> Future<Void> {
        setOnSocket(option, to: value)
    }

    public func socketOption<Value>(_ option: SocketOption<Value>) -> Future<Value> {
        readFromSocket(option)
    }

    var openDescriptor: CInt? { lifecycle.isOpen ? lifecycle.fd : nil }
}
