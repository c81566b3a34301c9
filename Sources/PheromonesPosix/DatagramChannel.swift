import Glibc
import Logging
import PheromonesCore
import Synchronization

/// A UDP socket on an ``EpollEventLoop``: the transport under a datagram pipeline.
///
/// Made by a ``DatagramBootstrap``, bound (``DatagramBootstrap/bind(to:)``) or connected to one
/// peer (``DatagramBootstrap/connect(to:from:)``), and active from then on until it closes.
///
/// How datagrams travel:
/// - **In.** When epoll reports the socket readable, one `recvmmsg` receives up to
///   ``DatagramOptions/batchSize`` datagrams, each into its own slot of the loop's shared receive
///   slab (``DatagramOptions/maximumDatagramSize`` bytes a slot), up to
///   ``DatagramOptions/maxReadsPerWakeup`` calls per wake-up. Each datagram reaches `channelRead`
///   as an `AddressedEnvelope<ByteBuffer>` whose buffer is a slice of the slab (no copy, no
///   allocation), then `channelReadComplete` follows the batch. If no handler kept a slice, the
///   next batch reuses the slab; a handler that keeps one (until its write is sent, say) makes the
///   next batch allocate a fresh slab (`batchSize` × `maximumDatagramSize` bytes, 64 KiB by
///   default) and the old one is freed with its last slice.
/// - **Truncation.** A datagram larger than its slot arrives cut (`MSG_TRUNC`): it is dropped and
///   counted in ``truncatedDatagrams``, never delivered as if whole.
/// - **Out.** `write` queues an `AddressedEnvelope<ByteBuffer>` (or, on a connected channel, a
///   plain `ByteBuffer` for the peer); `flush` hands the queued datagrams to `sendmmsg`, a batch
///   per call. What the kernel does not take (`EAGAIN`) waits for `EPOLLOUT`; a datagram it
///   refuses (`EMSGSIZE`, `ECONNREFUSED`, unreachable) fails its own write's promise with
///   ``DatagramError/sendFailed(_:target:)`` (or reaches `errorCaught` when the write had no
///   promise), and the channel goes on. Promises complete in write order. The queue is bounded
///   (``DatagramOptions/maximumQueuedBytes``); above the high water mark the channel turns
///   unwritable.
/// - **Errors of earlier traffic** (an ICMP port unreachable after a datagram to a closed port,
///   reported by the socket as pending `ECONNREFUSED`) reach `errorCaught` as
///   ``DatagramError/receiveFailed(_:)``; the channel goes on.
///
/// Closing happens exactly once, through `ChannelLifecycle`. All state is confined to the loop;
/// the `Channel` members that other threads may call hop there.
// Unchecked: everything mutable is touched only on `loop`'s thread (asserted in each entry point),
// except `activeFlag`, `writableFlag`, `truncatedCount` (atomics) and `addressStorage` (under
// `addressLock`), which other threads read; `closePromise` is itself thread-safe.
public final class DatagramChannel: Channel, ChannelCore, Selectable, @unchecked Sendable {
    /// The loop that owns the channel.
    public let loop: EpollEventLoop
    private var pipelineStorage: ChannelPipeline!
    /// The descriptor, the registration and the stage of life (see `ChannelLifecycle`).
    private var lifecycle: ChannelLifecycle
    private let options: DatagramOptions
    private let closePromise: Promise<Void>
    private let receiveVectors: DatagramVectors
    private let sendVectors: DatagramVectors
    private var pendingWrites = DatagramPendingWrites()
    private var completions: [DatagramWriteCompletion] = []
    /// How many of `completions` have been reported: a promise callback may close the channel,
    /// and the close must report the rest before it fails the queued ones.
    private var completionsReported = 0
    private var interest: Interest = []
    private var readPending = false
    private var isFlushing = false
    private var writable = true
    /// Whether sends use `UDP_SEGMENT` (asked for, found in the kernel, not refused yet).
    private var segmentation = false
    /// Whether the kernel may coalesce received datagrams (`UDP_GRO` was accepted).
    private var receiveOffload = false
    /// Bytes per receive slot.
    private var slotSize: Int
    /// Whether plain `ByteBuffer` writes are accepted (the bootstrap connected the channel): then
    /// the pipeline's head takes any message, and ``write0(_:promise:)`` sorts them out.
    private let acceptsPlainBuffers: Bool
    /// The peer of a connected channel.
    private var connectedPeer: SocketAddress?
    private let activeFlag = Atomic<Bool>(false)
    private let writableFlag = Atomic<Bool>(true)
    private let truncatedCount = Atomic<Int>(0)
    /// Guards `addressStorage`, which other threads read.
    private let addressLock = AtomicLock()
    // `@exclusivity(unchecked)`: threads take turns through `addressLock`.
    @exclusivity(unchecked) private var addressStorage: (local: SocketAddress?, remote: SocketAddress?) = (nil, nil)

    private static let writeSpinCount = 16
    /// A GRO slot holds the largest coalesced read the kernel makes.
    private static let receiveOffloadSlotSize = 65_536

    init(fd: CInt, loop: EpollEventLoop, options: DatagramOptions, acceptsPlainBuffers: Bool) {
        self.lifecycle = ChannelLifecycle(fd: fd)
        self.loop = loop
        self.options = options
        self.acceptsPlainBuffers = acceptsPlainBuffers
        slotSize = options.effectiveDatagramSize
        receiveVectors = DatagramVectors(capacity: options.effectiveBatchSize)
        sendVectors = DatagramVectors(capacity: options.effectiveBatchSize)
        closePromise = loop.makePromise(of: Void.self)
        pipelineStorage = ChannelPipeline(channel: self, eventLoop: loop)
    }

    deinit {
        // Not reached before the close in practice: until the close has finished, the pipeline holds the channel.
        if lifecycle.state != .closed { try? loop.posix.close(lifecycle.fd) }
    }

    /// The socket's descriptor (for tests).
    package var fd: CInt { lifecycle.fd }

    // MARK: Channel

    public var pipeline: ChannelPipeline { pipelineStorage }
    public var eventLoop: any EventLoop { loop }
    public var closeFuture: Future<Void> { closePromise.futureResult }
    public var isActive: Bool { activeFlag.load(ordering: .relaxed) }
    public var isWritable: Bool { writableFlag.load(ordering: .relaxed) }
    public var bufferedOutboundBytes: Int {
        loop.assertInEventLoop()
        return pendingWrites.queuedBytes
    }
    public var localAddress: SocketAddress? { withAddresses { $0.local } }
    /// The connected peer; nil for a channel that is only bound.
    public var remoteAddress: SocketAddress? { withAddresses { $0.remote } }
    /// Nil: a datagram channel has no listener.
    public var parent: (any Channel)? { nil }

    /// How many datagrams arrived larger than ``DatagramOptions/maximumDatagramSize`` and were dropped.
    public var truncatedDatagrams: Int { truncatedCount.load(ordering: .relaxed) }

    /// Whether sends are segmented by the kernel (`UDP_SEGMENT`): asked for in the options, found in
    /// the kernel, and not refused since. Call on the channel's loop.
    public var isSegmentationOffloadActive: Bool {
        loop.assertInEventLoop()
        return segmentation
    }

    /// Whether the kernel may coalesce received datagrams (`UDP_GRO`): asked for in the options and
    /// accepted by the kernel. Call on the channel's loop.
    public var isReceiveOffloadActive: Bool {
        loop.assertInEventLoop()
        return receiveOffload
    }

    private func withAddresses<Result>(_ body: (inout (local: SocketAddress?, remote: SocketAddress?)) -> Result) -> Result {
        addressLock.lock()
        defer { addressLock.unlock() }
        return body(&addressStorage)
    }

    // MARK: Lifecycle (loop thread)

    /// Turns on the offloads the options ask for and the kernel has; those it refuses stay off,
    /// silently (logged at debug level).
    func enableOffloads() {
        loop.assertInEventLoop()
        if options.segmentationOffload {
            // Reading the option succeeds only where the kernel knows UDP_SEGMENT (Linux 4.18).
            segmentation = (try? loop.posix.getOption(fd, level: Posix.SOL_UDP, name: Posix.UDP_SEGMENT)) != nil
            if !segmentation { loop.logger.debug("UDP_SEGMENT is not available: sending datagrams one by one") }
        }
        if options.receiveOffload {
            do {
                try loop.posix.setOption(fd, level: Posix.SOL_UDP, name: Posix.UDP_GRO, value: 1)
                receiveOffload = true
                slotSize = Self.receiveOffloadSlotSize
            } catch {
                loop.logger.debug("UDP_GRO is not available: receiving datagrams one by one", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Registers the channel with its loop (waiting for nothing yet) and fires `channelRegistered`.
    func register() throws(IOError) {
        loop.assertInEventLoop()
        guard lifecycle.register() else { return }
        try lifecycle.enterPoller(self, loop: loop, interest: [])
        interest = []
        pipeline.fireChannelRegistered()
    }

    /// Marks the bound (or connected) socket active: records its addresses, fires `channelActive`
    /// and starts reading if auto-read is on. Does nothing if the channel closed meanwhile.
    func becomeActive() {
        guard lifecycle.activate() else { return }
        activeFlag.store(true, ordering: .relaxed)
        let local = try? loop.posix.localAddress(fd)
        let peer = connectedPeer
        withAddresses { $0 = (local, peer) }
        pipeline.fireChannelActive()
        if options.autoRead, lifecycle.state == .active { pipeline.read() }
    }

    // MARK: Readiness

    package func handleReadiness(_ events: UInt32) {
        guard lifecycle.state == .active else { return }
        if events.hasInput || events.hasHangUpOrError {
            if readPending {
                readFromSocket()
            } else if events.hasHangUpOrError {
                reportPendingError()
            }
        }
        if lifecycle.state == .active, events.hasOutput { flushNow() }
    }

    package func closeForShutdown() { close(error: nil, promise: nil) }

    package func registrationFailed(_ error: IOError) { close(error: error, promise: nil) }

    /// Reads and so clears the socket's pending error (level-triggered epoll would report it on
    /// every wait otherwise), and passes it on; the channel goes on.
    private func reportPendingError() {
        guard let code = try? loop.posix.socketError(fd), code != 0 else { return }
        pipeline.fireErrorCaught(DatagramError.receiveFailed(IOError(errnoCode: code, function: "recvmmsg(2)")))
    }

    // MARK: Reading

    private func readFromSocket() {
        var readAnything = false
        let batch = receiveVectors.capacity
        let slot = slotSize
        reading: for _ in 0..<max(options.maxReadsPerWakeup, 1) {
            var slab = takeSlab(capacity: batch * slot)
            let attempt = slab.withUnsafeMutableWritableBytes { bytes -> Result<IOResult<Int>, IOError> in
                guard let base = bytes.baseAddress else { return .success(.wouldBlock) }
                for index in 0..<batch {
                    receiveVectors.prepareReceive(index, into: base + index * slot, size: slot, wantsControl: receiveOffload)
                }
                return Result { () throws(IOError) in try loop.posix.receiveMessages(fd, receiveVectors.messages, count: batch) }
            }
            let received: Int
            switch attempt {
            case .success(.processed(let count)):
                received = count
            case .success(.wouldBlock):
                loop.datagramSlab = slab
                break reading
            case .failure(let error):
                loop.datagramSlab = slab
                if Self.reportsEarlierTraffic(error) {
                    // The call consumed the error; the datagrams behind it are still there.
                    pipeline.fireErrorCaught(DatagramError.receiveFailed(error))
                    if lifecycle.state != .active { return }
                    continue reading
                }
                if readAnything { pipeline.fireChannelReadComplete() }
                close(error: error, promise: nil)
                return
            }
            slab.moveWriterIndex(to: received * slot)
            if received > 0 {
                // The request for input is served only once input arrives (see SocketChannel).
                readPending = false
                readAnything = true
            }
            deliver(received, from: slab, slot: slot)
            loop.datagramSlab = slab
            if lifecycle.state != .active || received < batch { break }
        }
        guard lifecycle.state == .active else { return }
        if readAnything { pipeline.fireChannelReadComplete() }
        if options.autoRead, lifecycle.state == .active, !readPending { pipeline.read() }
        updateInterest()
    }

    /// Fires `channelRead` for each of the `count` datagrams just received into `slab`: slices of
    /// it, a GRO read cut back into its datagrams, a truncated one dropped and counted.
    private func deliver(_ count: Int, from slab: ByteBuffer, slot: Int) {
        for index in 0..<count {
            guard lifecycle.state == .active else { return }
            let message = receiveVectors.messages[index]
            if message.header.msg_flags & CInt(MSG_TRUNC) != 0 {
                truncatedCount.wrappingAdd(1, ordering: .relaxed)
                continue
            }
            guard let sender = receiveVectors.sender(of: index) ?? connectedPeer else { continue }
            let length = min(Int(message.length), slot)
            let start = index * slot
            if receiveOffload, let segment = receiveVectors.receivedSegmentSize(of: index), segment < length {
                var offset = 0
                while offset < length, lifecycle.state == .active {
                    let size = min(segment, length - offset)
                    if let data = slab.getSlice(at: start + offset, length: size) {
                        pipeline.fireChannelRead(AddressedEnvelope(remoteAddress: sender, data: data))
                    }
                    offset += size
                }
            } else if let data = slab.getSlice(at: start, length: length) {
                pipeline.fireChannelRead(AddressedEnvelope(remoteAddress: sender, data: data))
            }
        }
    }

    /// The loop's shared slab, emptied, with room for `capacity` bytes. If a handler kept a slice of
    /// the last one, this allocates a new one; otherwise it reuses the memory.
    @inline(__always)
    private func takeSlab(capacity: Int) -> ByteBuffer {
        var slab = loop.datagramSlab
        loop.datagramSlab = ByteBuffer()
        if slab.isStorageUniquelyReferenced {
            slab.clear(minimumCapacity: capacity)
        } else {
            slab = ByteBuffer(capacity: capacity)
        }
        return slab
    }

    /// Whether a receive error reports earlier traffic (an ICMP error for a datagram sent before)
    /// rather than a broken socket: then the channel goes on.
    private static func reportsEarlierTraffic(_ error: IOError) -> Bool {
        switch error.errnoCode {
        case ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, ENETDOWN, EMSGSIZE, EPROTO, ENOPROTOOPT, ETIMEDOUT:
            return true
        default:
            return false
        }
    }

    // MARK: Writing

    /// Sends what is flushed, as far as the socket takes it, a batch per `sendmmsg`.
    private func flushNow() {
        guard !isFlushing, lifecycle.state == .active else { return }
        isFlushing = true
        defer { isFlushing = false }
        for _ in 0..<Self.writeSpinCount {
            guard pendingWrites.hasFlushed else { break }
            let outcome = pendingWrites.sendFlushed(
                fd: fd, posix: loop.posix, vectors: sendVectors, iovecs: loop.iovecs, maxIovecs: EpollEventLoop.iovecCount,
                segmentation: &segmentation, completions: &completions)
            completeWrites()
            guard lifecycle.state == .active else { return }
            if case .wouldBlock = outcome { break }
        }
        updateWritability()
        updateInterest()
    }

    /// Completes the promises of sent and refused datagrams, in order. Re-entrant: a callback that
    /// closes the channel makes the close call this again, which reports the rest first.
    private func completeWrites() {
        guard !completions.isEmpty else { return }
        while completionsReported < completions.count {
            let completion = completions[completionsReported]
            completionsReported += 1
            switch completion {
            case .sent(let promise): promise.succeed(())
            case .failed(let promise, let error): promise.fail(error)
            case .dropped(let error): pipeline.fireErrorCaught(error)
            }
        }
        completions.removeAll(keepingCapacity: true)
        completionsReported = 0
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

    private func updateInterest() {
        guard let token = lifecycle.token, lifecycle.isOpen else { return }
        var wanted: Interest = []
        if readPending { wanted.insert(.readable) }
        if pendingWrites.hasFlushed { wanted.insert(.writable) }
        guard wanted != interest else { return }
        interest = wanted
        loop.setInterest(wanted, for: token)
    }

    /// Queues one datagram for `target` (nil: the connected peer).
    private func enqueue(_ data: ByteBuffer, target: SocketAddress?, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        guard target != nil || connectedPeer != nil else {
            promise?.fail(DatagramError.notConnected)
            return
        }
        guard pendingWrites.queuedBytes + data.readableBytes <= options.maximumQueuedBytes else {
            promise?.fail(DatagramError.writeQueueFull(limit: options.maximumQueuedBytes))
            return
        }
        pendingWrites.append(data, target: target, promise: promise)
        updateWritability()
    }

    // MARK: ChannelCore

    /// `AddressedEnvelope<ByteBuffer>`; on a channel the bootstrap connected, any message (the
    /// channel takes envelopes and plain `ByteBuffer`s, and fails anything else's promise).
    public var acceptedOutboundType: Any.Type? { acceptsPlainBuffers ? nil : AddressedEnvelope<ByteBuffer>.self }
    /// `AddressedEnvelope<ByteBuffer>`.
    public var producedInboundType: Any.Type? { AddressedEnvelope<ByteBuffer>.self }

    public func write0<Message>(_ data: Message, promise: Promise<Void>?) {
        if Message.self == AddressedEnvelope<ByteBuffer>.self {
            let envelope = unsafeBitCast(data, to: AddressedEnvelope<ByteBuffer>.self)
            enqueue(envelope.data, target: envelope.remoteAddress, promise: promise)
        } else if Message.self == ByteBuffer.self {
            enqueue(unsafeBitCast(data, to: ByteBuffer.self), target: nil, promise: promise)
        } else if let envelope = data as? AddressedEnvelope<ByteBuffer> {
            enqueue(envelope.data, target: envelope.remoteAddress, promise: promise)
        } else if let buffer = data as? ByteBuffer {
            enqueue(buffer, target: nil, promise: promise)
        } else {
            promise?.fail(ChannelPipelineError.messageTypeMismatch(
                "a datagram channel sends AddressedEnvelope<ByteBuffer> (or ByteBuffer when connected), not \(Message.self)"))
        }
    }

    public func writeByteBuffer0(_ data: ByteBuffer, promise: Promise<Void>?) {
        enqueue(data, target: nil, promise: promise)
    }

    public func flush0() {
        loop.assertInEventLoop()
        pendingWrites.markFlushed()
        // While waiting for EPOLLOUT, sending now would only say EAGAIN again.
        if !interest.contains(.writable) { flushNow() }
    }

    public func read0() {
        loop.assertInEventLoop()
        guard !readPending, lifecycle.isOpen else { return }
        readPending = true
        updateInterest()
    }

    /// Closes the channel; a datagram socket has no halves to close (`.input`, `.output` fail with
    /// `ChannelError.operationUnsupported`).
    public func close0(mode: CloseMode, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard mode == .all else {
            promise?.fail(lifecycle.isOpen ? ChannelError.operationUnsupported : ChannelError.alreadyClosed)
            return
        }
        close(error: nil, promise: promise)
    }

    /// Closes the channel, at the application's request (`error` nil) or because of `error`, which
    /// then reaches `errorCaught` once the channel is already inactive. Only the first request closes.
    private func close(error: (any Error)?, promise: Promise<Void>?) {
        switch lifecycle.beginClose(promise: promise) {
        case .alreadyClosed:
            promise?.fail(ChannelError.alreadyClosed)
        case .joined:
            break
        case .close:
            activeFlag.store(false, ordering: .relaxed)
            if let error { pipeline.fireErrorCaught(error) }
            lifecycle.releaseDescriptor(loop: loop)
            completeWrites()
            for pending in pendingWrites.removeAll() { pending.fail(ChannelError.closedBeforeWriteCompleted) }
            ChannelLifecycle.finish(lifecycle.finishClose(), promise: promise, pipeline: pipeline) { closePromise.succeed(()) }
        }
    }

    /// Binds the socket (a bootstrap binds before the channel is handed out; this is for a
    /// channel whose initializer binds it elsewhere).
    public func bind0(to address: SocketAddress, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        do {
            try loop.posix.bind(fd, to: address)
            withAddresses { $0.local = try? loop.posix.localAddress(fd) }
            promise?.succeed(())
        } catch {
            promise?.fail(error)
        }
    }

    /// Connects the socket to `address`: from then on the kernel delivers only that peer's
    /// datagrams, and a plain `ByteBuffer` write goes to it. Immediate (UDP has no handshake).
    public func connect0(to address: SocketAddress, promise: Promise<Void>?) {
        loop.assertInEventLoop()
        guard lifecycle.isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        do {
            _ = try loop.posix.connect(fd, to: address)
        } catch {
            promise?.fail(SocketChannel.connectError(error.errnoCode, target: address))
            return
        }
        connectedPeer = address
        withAddresses { $0 = ((try? loop.posix.localAddress(fd)) ?? $0.local, address) }
        if lifecycle.state == .registered { becomeActive() }
        promise?.succeed(())
    }

    public func triggerUserOutboundEvent0(_ event: Any, promise: Promise<Void>?) {
        promise?.fail(lifecycle.isOpen ? ChannelError.operationUnsupported : ChannelError.ioOnClosedChannel)
    }

    public func channelReadReachedTail<Message>(_ data: Message) {}

    public func errorCaughtReachedTail(_ error: any Error) {
        loop.logger.debug("an error reached the end of a datagram pipeline unhandled", metadata: [
            "error": "\(error)", "local": "\(localAddress.map { "\($0)" } ?? "?")",
        ])
    }

    public func userInboundEventReachedTail(_ event: Any) {}
}

extension DatagramChannel: SocketOptionProvider, SocketOptionTarget {
    public func setSocketOption<Value>(_ option: SocketOption<Value>, to value: Value) -> Future<Void> {
        setOnSocket(option, to: value)
    }

    public func socketOption<Value>(_ option: SocketOption<Value>) -> Future<Value> {
        readFromSocket(option)
    }

    var openDescriptor: CInt? { lifecycle.isOpen ? lifecycle.fd : nil }
}
