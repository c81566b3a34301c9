import Glibc
import Pheromones
import PheromonesP2P
import XCTest

/// A peer that sends faster than a node can take it must be held back by TCP, not queued in the
/// node: by the protocol stage's bound on unanswered messages when the protocol is slow, and by
/// back pressure when the peer does not read its answers. Meanwhile other peers are served.
final class FlowControlTests: XCTestCase {
    /// Far more than the kernel's buffers hold in both directions (a few MiB on loopback): a peer
    /// that gets this much in was never held back.
    private static let floodLimit = 64 << 20

    func testAPeerFloodingAStuckAsyncProtocolIsHeldBackAtTheUnansweredBoundOnBothWires() async throws {
        for wire in [WireFormat.json, .native] {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let gate = Gate(loop: group.next())
            let arrivals = Recorder<String>()
            let (node, address) = try await startGatedNode(
                "stuck", .persistent, wire, gating: "getreq", gate: gate, arrivals: arrivals, group: group
            ) { configuration in
                configuration.maximumUnansweredMessages = 64
                configuration.security = .insecure  // the flooder writes plaintext frames
            }

            let flooder = try FloodingPeer(port: address.port, preamble: try Self.preamble(on: wire), message: try Self.request(on: wire))
            let sent = try await within(20, on: node.eventLoop, "the flooder to stall") { flooder.sendUntilStalled(limit: Self.floodLimit) }
            XCTAssertLessThan(sent, Self.floodLimit, "\(wire): the node read everything the peer sent into its queue")
            XCTAssertTrue(flooder.isOpen, "\(wire): the node closed the connection instead of holding it back")
            XCTAssertEqual(arrivals.all, ["getreq"], "\(wire): the protocol is stuck on the first message")

            // Once the protocol catches up, the node reads again.
            gate.open()
            let more = try await within(20, on: node.eventLoop, "the flooder to send again") { flooder.sendUntilStalled(limit: 1 << 20) }
            XCTAssertGreaterThan(more, 0, "\(wire): the node did not read again once the protocol had caught up")
            flooder.close()
            await node.shutdown()
            try await group.shutdownGracefully()
        }
    }

    func testAPeerThatNeverReadsItsAnswersIsHeldBackWhileAnotherPeerConverses() async throws {
        for wire in [WireFormat.json, .native] {
            let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let yoghurt = try await ExampleNode.start("yoghurt", .persistent, wire, group: group)
            let luda = try await ExampleNode.start("luda", .persistent, wire, group: group)

            let flooder = try FloodingPeer(
                port: yoghurt.address.port, preamble: try Self.preamble(on: wire), message: try Self.request(on: wire), receiveBufferSize: 64 << 10)
            let sent = try await within(20, on: yoghurt.node.eventLoop, "the flooder to stall") { flooder.sendUntilStalled(limit: Self.floodLimit) }
            XCTAssertLessThan(sent, Self.floodLimit, "\(wire): the node kept reading a peer that reads none of its answers")
            if wire == .json {
                XCTAssertTrue(flooder.isOpen, "the node closed the connection instead of holding it back")
            }
            // On the native wire every answer awaits the peer's answer in turn, and a peer that leaves
            // more than `PersistentStage.maximumPendingMessages` of them unanswered is disconnected: also bounded.

            try await luda.node.add(peer: "yoghurt", address: yoghurt.address)
            let summary = try await within(10, on: luda.node.eventLoop) { try await luda.node.converse(with: "yoghurt", starting: luda.hello) }
            XCTAssertEqual(summary.transcript, exampleTranscript, "\(wire): another peer is served meanwhile")

            flooder.close()
            await luda.node.shutdown()
            await yoghurt.node.shutdown()
            try await group.shutdownGracefully()
        }
    }

    func testMessagesToAPeerThatStopsReadingAreRefusedOnceItsQueueIsFullAndTheConnectionStays() async throws {
        let (refused, events) = try await floodAPeerThatNeverReads(policy: .dropMessage)
        XCTAssertGreaterThanOrEqual(refused, 100, "most of what did not fit was refused")
        XCTAssertFalse(events.contains { if case .connectionClosed = $0 { true } else { false } }, "the peer stays connected")
        XCTAssertTrue(events.contains { if case .slowPeerDropped(_, .dropMessage) = $0 { true } else { false } })
    }

    func testAPeerThatStopsReadingIsDisconnectedOnceItsQueueIsFullUnderTheDisconnectPolicy() async throws {
        let (refused, events) = try await floodAPeerThatNeverReads(policy: .disconnect)
        XCTAssertGreaterThanOrEqual(refused, 1)
        XCTAssertTrue(events.contains { if case .connectionClosed = $0 { true } else { false } }, "the slow peer is cut off")
        XCTAssertTrue(events.contains { if case .slowPeerDropped(_, .disconnect) = $0 { true } else { false } })
    }

    /// Dispatches 400 messages of 64 KiB to a persistent JSON-wire peer that never reads (a listener
    /// that never accepts: the kernel takes a few MiB, then nothing), with a 256 KiB queue bound;
    /// returns how many were refused with `peerTooSlow` once at least one was, and the node's events.
    private func floodAPeerThatNeverReads(policy: SlowPeerPolicy) async throws -> (refused: Int, events: [NodeEvent]) {
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try SilentListener()
        let events = Recorder<NodeEvent>()
        var configuration = Node.Configuration(
            name: "sender", wire: .json, logger: testLogger("p2p.sender"), observer: { events.append($0) })
        configuration.maximumQueuedBytesPerPeer = 256 << 10
        configuration.slowPeerPolicy = policy
        let node = try Node(configuration: configuration, protocol: ExampleProtocol(), group: group)
        try await node.add(peer: "silent", address: listener.address)

        let outcomes = Recorder<String>()
        let payload = ByteBuffer(bytes: [UInt8](repeating: 0x61, count: 64 << 10))
        let senders = Task {
            await withTaskGroup(of: Void.self) { tasks in
                for _ in 0..<400 {
                    tasks.addTask {
                        do {
                            _ = try await node.dispatch(to: "silent", Envelope(name: "sender", operation: "getreq", data: payload))
                            outcomes.append("sent")
                        } catch P2PError.peerTooSlow {
                            outcomes.append("refused")
                        } catch {
                            outcomes.append("failed")
                        }
                    }
                }
            }
        }
        // What was queued before the bound waits for a peer that never reads; the refusals come at once.
        try await outcomes.wait("refusals", within: 20, on: node.eventLoop) { $0.filter { $0 == "refused" }.count >= (policy == .dropMessage ? 100 : 1) }
        let refused = outcomes.all.filter { $0 == "refused" }.count
        let seen = events.all
        await node.shutdown()
        await senders.value
        listener.close()
        try await group.shutdownGracefully()
        return (refused, seen)
    }

    /// One `getreq` as the wire frames it: a Go-style JSON object, or a native frame.
    private static func request(on wire: WireFormat) throws -> [UInt8] {
        switch wire {
        case .json: Array(goJSON(name: "flood", operation: "getreq").readableBytesView)
        case .native: try nativeFrame(Envelope(name: "flood", operation: "getreq"))
        }
    }

    /// What the flooder says first: on the native wire, its hello.
    private static func preamble(on wire: WireFormat) throws -> [UInt8] {
        switch wire {
        case .json: []
        case .native: try nativeFrame(ControlMessage.hello(.init(name: "flood", generation: 0, listeningAddress: nil)))
        }
    }

    private static func nativeFrame(_ envelope: Envelope) throws -> [UInt8] {
        var encoder = NativeEnvelopeFrameEncoder()
        var out = ByteBuffer()
        try encoder.encode(data: envelope, out: &out)
        return Array(out.readableBytesView)
    }
}

/// A raw TCP client that says its preamble, then pipelines one message over and over and never reads.
private final class FloodingPeer: Sendable {
    private let fd: CInt
    private let message: [UInt8]

    init(port: Int, preamble: [UInt8], message: [UInt8], receiveBufferSize: Int? = nil) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, function: "socket") }
        self.fd = fd
        self.message = message
        if var size = receiveBufferSize.map(CInt.init) {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw IOError(errnoCode: errno, function: "connect") }
        // Blocking, for the few bytes of the preamble; non-blocking from then on.
        let said = preamble.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard said == preamble.count else { throw IOError(errnoCode: errno, function: "send") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// Sends copies of the message until `limit` bytes are sent or the socket has taken nothing for
    /// half a second (the node stopped reading); returns the bytes sent.
    func sendUntilStalled(limit: Int) -> Int {
        let batch = Array(repeating: message, count: max(1, (64 << 10) / max(1, message.count))).flatMap { $0 }
        var sent = 0
        var offset = 0
        while sent < limit {
            var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&poller, 1, 500) == 1 else { break }
            let written = batch.withUnsafeBytes { bytes in
                send(fd, bytes.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EAGAIN || errno == EINTR { continue }
                break
            }
            sent += written
            offset = (offset + written) % batch.count
        }
        return sent
    }

    /// Whether the connection is still up: no reset, error or end of stream from the node.
    var isOpen: Bool {
        // POLLRDHUP (the peer's end of stream): Linux's 0x2000, which Glibc's module does not import.
        let readHangUp: Int16 = 0x2000
        var poller = pollfd(fd: fd, events: readHangUp, revents: 0)
        guard poll(&poller, 1, 0) >= 0 else { return false }
        return poller.revents & (readHangUp | Int16(POLLHUP) | Int16(POLLERR)) == 0
    }

    func close() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        _ = Glibc.close(fd)
    }
}
