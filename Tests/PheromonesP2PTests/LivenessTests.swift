import MetricsTestKit
import Pheromones
@testable import PheromonesP2P
import XCTest

/// A bare TCP client: writes the bytes the test gives it, records what arrives and when the node
/// closes the connection. It speaks no wire: it can stop anywhere in a message.
final class RawPeer: Sendable {
    let channel: SocketChannel
    let received: Recorder<ByteBuffer>
    let ended: Recorder<Void>

    private init(channel: SocketChannel, received: Recorder<ByteBuffer>, ended: Recorder<Void>) {
        self.channel = channel
        self.received = received
        self.ended = ended
    }

    static func connect(to address: SocketAddress, group: MultiThreadedEventLoopGroup) async throws -> RawPeer {
        let received = Recorder<ByteBuffer>()
        let ended = Recorder<Void>()
        let channel = try await within(10, on: group.next(), "a raw peer to connect") {
            try await ClientBootstrap(group: group)
                .channelInitializer { channel in try channel.pipeline.addHandler(ByteCollector(received: received, ended: ended)) }
                .connect(to: address).get()
        }
        return RawPeer(channel: channel, received: received, ended: ended)
    }

    func send(_ bytes: some Sequence<UInt8>) async throws {
        let channel = channel
        let buffer = ByteBuffer(bytes: Array(bytes))
        try await within(10, on: channel.eventLoop, "a raw write") { try await channel.writeAndFlush(buffer).get() }
    }

    /// Sends `bytes` one at a time, `pause` apart (timed by the channel's loop), until they are all
    /// sent or the node has closed the connection; returns how many went.
    func trickle(_ bytes: [UInt8], pause: TimeAmount) async throws -> Int {
        var sent = 0
        for byte in bytes {
            guard ended.all.isEmpty else { break }
            do { try await send([byte]) } catch { break }
            sent += 1
            try await channel.eventLoop.scheduleTask(in: pause) {}.futureResult.get()
        }
        return sent
    }

    /// Waits until the node has closed the connection.
    func waitForEnd(_ what: String, within seconds: Int64) async throws {
        try await ended.wait(what, within: seconds, on: channel.eventLoop) { !$0.isEmpty }
    }

    func close() async {
        try? await channel.close().get()
    }
}

private final class ByteCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let received: Recorder<ByteBuffer>
    private let ended: Recorder<Void>

    init(received: Recorder<ByteBuffer>, ended: Recorder<Void>) {
        self.received = received
        self.ended = ended
    }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { received.append(data) }

    func channelInactive(context: ChannelHandlerContext) {
        ended.append(())
        context.fireChannelInactive()
    }
}

/// The liveness timeouts over real sockets, with small timeouts: each closes what it must, in
/// about its own time, and the observer hears why.
final class LivenessTests: GroupTestCase {
    private static func timedOut(_ reason: ConnectionTimeout) -> @Sendable ([NodeEvent]) -> Bool {
        { events in events.contains { if case .connectionTimedOut(_, reason) = $0 { true } else { false } } }
    }

    // MARK: Slowloris

    func testANativeFrameHalfSentAfterTheHelloIsClosedByThePartialMessageTimeout() async throws {
        // Plaintext frames written byte by byte: the native wire's framer, outside Noise.
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.partialMessageTimeout = .milliseconds(300)
            $0.security = .insecure
        }
        let peer = try await RawPeer.connect(to: node.address, group: group)
        let hello = try nativeFrame(ControlMessage.hello(.init(name: "slow", generation: 1, listeningAddress: nil)))
        let request = try nativeRequest()
        let (_, elapsed) = try await timed {
            try await peer.send(Array(hello.readableBytesView) + request.prefix(request.count / 2))
            try await peer.waitForEnd("the node to close the half-sent frame's connection", within: 5)
        }
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(250))
        try await node.connections.wait("the timeout event", on: node.node.eventLoop, until: Self.timedOut(.partialMessage))
        XCTAssertEqual(node.handledOperations, [], "the protocol never saw the message")
        await peer.close()
        await node.node.shutdown()
    }

    func testAJSONObjectTricklingInIsClosedByThePartialMessageTimeoutBeforeItCompletes() async throws {
        let node = try await ExampleNode.start("node", .persistent, .json, group: group) { $0.partialMessageTimeout = .milliseconds(400) }
        let peer = try await RawPeer.connect(to: node.address, group: group)
        let object = jsonRequest()
        // One byte every 50 ms: the whole object would take over 3 s.
        let (sent, elapsed) = try await timed { try await peer.trickle(object, pause: .milliseconds(50)) }
        try await peer.waitForEnd("the node to close the trickling connection", within: 5)
        XCTAssertLessThan(sent, object.count, "closed before the object was complete")
        XCTAssertLessThan(elapsed, .milliseconds(2_000), "the trickle did not extend the deadline")
        try await node.connections.wait("the timeout event", on: node.node.eventLoop, until: Self.timedOut(.partialMessage))
        XCTAssertEqual(node.handledOperations, [])
        await peer.close()
        await node.node.shutdown()
    }

    // MARK: Handshake

    func testAPeerThatNeverSaysHelloIsClosedByTheHandshakeTimeoutPingsOrNot() async throws {
        // The dial timeout, which used to bound the hello, is long: the handshake timeout is what acts.
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.handshakeTimeout = .milliseconds(300)
            $0.dialTimeout = .seconds(30)
            $0.security = .insecure  // the pings are plaintext frames written by hand
        }
        for sendsPings in [false, true] {
            let peer = try await RawPeer.connect(to: node.address, group: group)
            if sendsPings {
                // A ping is answered, but it is not a hello.
                try await peer.send(try nativeFrame(Envelope(name: "mute", operation: "\u{0}ping")).readableBytesView)
            }
            let (_, elapsed) = try await timed { try await peer.waitForEnd("the node to close a connection without a hello", within: 5) }
            XCTAssertLessThan(elapsed, .seconds(3), "pings: \(sendsPings)")
            await peer.close()
        }
        try await node.connections.wait("two handshake timeouts", on: node.node.eventLoop) { events in
            events.filter { if case .connectionTimedOut(nil, .handshake) = $0 { true } else { false } }.count == 2
        }
        let statistics = await node.node.statistics
        XCTAssertEqual(statistics.handshakeTimeouts, 2)
        XCTAssertEqual(statistics.partialMessageTimeouts + statistics.keepaliveTimeouts, 0)
        await node.node.shutdown()
    }

    func testADialedPeerThatNeverSaysHelloFailsTheAddWithinTheHandshakeTimeout() async throws {
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.handshakeTimeout = .milliseconds(300)
            $0.dialTimeout = .seconds(30)
        }
        let mute = try SilentListener()  // the kernel accepts the connection; nothing ever answers
        defer { mute.close() }
        let (outcome, elapsed) = await timed { () -> Result<Void, any Error> in
            do {
                return .success(try await within(10, on: node.node.eventLoop) { try await node.node.add(peer: "mute", address: mute.address) })
            } catch {
                return .failure(error)
            }
        }
        assertFailure(outcome, is: .connectFailed(address: mute.address, reason: "the peer did not say hello in time"))
        XCTAssertLessThan(elapsed, .seconds(3))
        try await node.connections.wait("the timeout event", on: node.node.eventLoop, until: Self.timedOut(.handshake))
        await node.node.shutdown()
    }

    func testAShortServerConnectionWithoutARequestIsClosedByTheHandshakeTimeoutOnBothWires() async throws {
        for wire in WireFormat.allCases {
            // The reply timeout, which used to bound the request, is long.
            let node = try await ExampleNode.start("node", .short, wire, group: group) {
                $0.handshakeTimeout = .milliseconds(300)
                $0.replyTimeout = .seconds(30)
            }
            let peer = try await RawPeer.connect(to: node.address, group: group)
            let (_, elapsed) = try await timed { try await peer.waitForEnd("\(wire): the node to close a connection without a request", within: 5) }
            XCTAssertLessThan(elapsed, .seconds(3), "\(wire)")
            try await node.connections.wait("\(wire): the timeout event", on: node.node.eventLoop, until: Self.timedOut(.handshake))
            await peer.close()
            await node.node.shutdown()
        }
    }

    // MARK: Keepalive

    func testAPeerThatNeverAnswersPingsIsClosedByTheKeepaliveTimeout() async throws {
        let metrics = TestMetrics()
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.keepaliveInterval = .milliseconds(100)
            $0.keepaliveTimeout = .milliseconds(400)
            $0.metricsFactory = metrics
        }
        let peer = try await ScriptedPeer.nativeNode("vanished", listeningAt: .loopbackV4(port: 1), connectingTo: node.address, group: group)
        try await peer.ended.wait("the node to close the silent connection", within: 5, on: node.node.eventLoop) { !$0.isEmpty }
        XCTAssertTrue(peer.received.all.contains { $0.operation == "\u{0}ping" }, "it was pinged first")
        try await node.connections.wait("the timeout event", on: node.node.eventLoop, until: Self.timedOut(.keepalive))
        let open = await node.node.openConnectionCount
        XCTAssertEqual(open, 0, "the connection is gone")
        let statistics = await node.node.statistics
        XCTAssertEqual(statistics.keepaliveTimeouts, 1)
        XCTAssertEqual(try metrics.expectCounter("pheromones_p2p_timeouts_total", [("node", "node"), ("reason", "keepalive")]).totalValue, 1)
        XCTAssertGreaterThan(statistics.messagesOut, 1, "the pings are counted as messages out")
        await peer.close()
        await node.node.shutdown()
    }

    func testAPeerThatAnswersPingsStaysConnectedPastManyTimeouts() async throws {
        let node = try await ExampleNode.start("node", .persistent, .native, group: group) {
            $0.keepaliveInterval = .milliseconds(50)
            $0.keepaliveTimeout = .milliseconds(200)
        }
        let peer = try await ScriptedPeer.nativeNode("alive", listeningAt: .loopbackV4(port: 1), connectingTo: node.address, group: group)
        let (_, elapsed) = try await timed {
            for round in 1...8 {
                try await peer.wait("ping \(round)") { $0.filter { $0.operation == "\u{0}ping" }.count >= round }
                try await peer.send(Envelope(name: "alive", operation: "\u{0}pong"))
            }
        }
        XCTAssertGreaterThan(elapsed, .milliseconds(400), "eight pings take eight intervals: twice the timeout")
        XCTAssertTrue(peer.ended.all.isEmpty, "the pongs kept the connection")
        let open = await node.node.openConnectionCount
        XCTAssertEqual(open, 1)
        XCTAssertFalse(node.connections.all.contains { if case .connectionTimedOut = $0 { true } else { false } })
        await peer.close()
        await node.node.shutdown()
    }

    // MARK: Deadlines on waiting entries

    func testABroadcastsAndARepliesEntriesAreDroppedAtTheReplyTimeoutWhenThePeerNeverAnswers() async throws {
        let node = try await startAnswerTableNode("node", .persistent, .native, answers: ["getreq": "getresp"], group: group) {
            $0.replyTimeout = .milliseconds(300)
        }
        let peer = try await ScriptedPeer.nativeNode("mute", listeningAt: .loopbackV4(port: 1), connectingTo: node.address, group: group)
        // The peer asks something (the node's answer awaits the peer's answer in turn), and the
        // node broadcasts (the copy awaits an answer too). The peer answers neither.
        try await peer.send(Envelope(name: "mute", operation: "getreq", messageID: 7))
        _ = try await peer.first("the node's answer") { $0.operation == "getresp" }
        _ = try await within(5, on: node.node.eventLoop) { try await node.node.broadcast(Envelope(name: "node", operation: "news")) }
        _ = try await peer.first("the broadcast") { $0.operation == "news" }
        let waiting = await node.node.awaitedAnswerCount
        XCTAssertEqual(waiting, 2)
        try await eventually("the entries to be dropped", on: node.node.eventLoop) { await node.node.awaitedAnswerCount == 0 }
        XCTAssertTrue(peer.ended.all.isEmpty, "the connection stays: only the entries went")
        await peer.close()
        await node.node.shutdown()
    }

    func testAJSONDispatchToAPeerThatNeverReadsFailsWithWriteTimeoutInsteadOfWaitingForEver() async throws {
        let node = try await ExampleNode.start("node", .persistent, .json, group: group) {
            $0.replyTimeout = .milliseconds(300)
            $0.maximumMessageSize = 2 << 20
            $0.maximumQueuedBytesPerPeer = 256 << 20
        }
        let mute = try SilentListener()  // connected by the kernel's backlog, never read
        defer { mute.close() }
        try await node.node.add(peer: "mute", address: mute.address)
        // Far more than the kernel's buffers take: the last writes cannot complete.
        let payload = ByteBuffer(repeating: UInt8(ascii: "x"), count: 1 << 20)
        let outcomes = Recorder<String>()
        let (_, elapsed) = try await timed {
            try await within(10, on: node.node.eventLoop, "every dispatch to end") {
                await withTaskGroup(of: Void.self) { tasks in
                    for _ in 0..<32 {
                        tasks.addTask {
                            do {
                                _ = try await node.node.dispatch(to: "mute", Envelope(name: "node", operation: "getreq", data: payload))
                                outcomes.append("written")
                            } catch P2PError.writeTimeout(mute.address) {
                                outcomes.append("timed out")
                            } catch {
                                outcomes.append("\(error)")
                            }
                        }
                    }
                }
            }
        }
        XCTAssertEqual(outcomes.all.count, 32)
        XCTAssertGreaterThan(outcomes.all.filter { $0 == "timed out" }.count, 0, "\(Set(outcomes.all))")
        XCTAssertEqual(Set(outcomes.all).subtracting(["written", "timed out"]), [])
        XCTAssertLessThan(elapsed, .seconds(5))
        await node.node.shutdown()
    }

    func testAShortServerWhoseAnswerDoesNotGoOutWithinTheReplyTimeoutClosesTheConnection() async throws {
        let gate = Gate(loop: group.next())
        defer { gate.open() }
        let arrivals = Recorder<String>()
        let (node, address) = try await startGatedNode("stuck", .short, .native, gating: "getreq", gate: gate, arrivals: arrivals, group: group) {
            $0.replyTimeout = .milliseconds(300)
            $0.handshakeTimeout = .seconds(30)
            $0.security = .insecure  // a plaintext request written by hand
        }
        let peer = try await RawPeer.connect(to: address, group: group)
        try await peer.send(try nativeRequest())
        try await arrivals.wait("the request at the protocol", on: node.eventLoop) { $0 == ["getreq"] }
        let (_, elapsed) = try await timed { try await peer.waitForEnd("the node to give up the answer", within: 5) }
        XCTAssertLessThan(elapsed, .seconds(3))
        await peer.close()
        gate.open()
        await node.shutdown()
    }

    // MARK: Settings at the extremes

    func testZeroAndTheLargestTimeoutsNeitherTrapNorStopAConversation() async throws {
        let largest = TimeAmount(nanoseconds: .max)
        let settings: [(String, (inout Node.Configuration) -> Void)] = [
            ("zero", { configuration in
                configuration.handshakeTimeout = .zero
                configuration.partialMessageTimeout = .zero
                configuration.keepaliveInterval = .zero
                configuration.keepaliveTimeout = .nanoseconds(-1)
            }),
            ("largest", { configuration in
                configuration.dialTimeout = largest
                configuration.replyTimeout = largest
                configuration.handOverTimeout = largest
                configuration.handshakeTimeout = largest
                configuration.partialMessageTimeout = largest
                configuration.keepaliveInterval = largest
                configuration.keepaliveTimeout = largest
            }),
        ]
        for (label, configure) in settings {
            for (connectionType, wire) in [(ConnectionType.persistent, WireFormat.native), (.persistent, .json), (.short, .native)] {
                let luda = try await ExampleNode.start("luda", connectionType, wire, group: group, configure: configure)
                let yoghurt = try await ExampleNode.start("yoghurt", connectionType, wire, group: group, configure: configure)
                try await luda.node.add(peer: "yoghurt", address: yoghurt.address)
                let summary = try await within(10, on: luda.node.eventLoop, "\(label) \(connectionType) \(wire)") {
                    try await luda.node.converse(with: "yoghurt", starting: luda.hello)
                }
                XCTAssertEqual(summary.transcript, exampleTranscript, "\(label) \(connectionType) \(wire)")
                await luda.node.shutdown()
                await yoghurt.node.shutdown()
            }
        }
    }
}

/// Re-checks `condition` every 20 ms (timed by `loop`) until it holds, for at most `seconds`.
func eventually(
    _ what: String, within seconds: Int64 = 5, on loop: any EventLoop, _ condition: @escaping @Sendable () async -> Bool
) async throws {
    let deadline = loop.now + .seconds(seconds)
    while !(await condition()) {
        guard loop.now < deadline else { throw TestTimedOut(what: what) }
        try await loop.scheduleTask(in: .milliseconds(20)) {}.futureResult.get()
    }
}
