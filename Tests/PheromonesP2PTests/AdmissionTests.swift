import Pheromones
import PheromonesP2P
import Synchronization
import XCTest

/// What peers may open and plant in a node: routes they claim are never dialled by the node, and
/// connections and routes past the configured maximums are refused cleanly and reported.
final class AdmissionTests: GroupTestCase {
    // The rule does not depend on the wire's security: the many claims go over the plaintext native
    // wire (a Noise handshake per claim would make this test a handshake benchmark, about 4 ms each
    // and far more under the sanitizers), and a few hundred over Noise.
    func testFiveThousandRoutesClaimedInHellosAreNeverDialledByABroadcastOrADispatchToAll() async throws {
        try await checkClaimedRoutesAreNeverDialled(claims: 5_000, security: .insecure)
    }

    func testThreeHundredRoutesClaimedInHellosOverNoiseAreNeverDialledEither() async throws {
        try await checkClaimedRoutesAreNeverDialled(claims: 300, security: .noise)
    }

    private func checkClaimedRoutesAreNeverDialled(claims: Int, security: WireSecurity) async throws {
        let dials = try await CountingListener.start(group: group)
        let events = Recorder<NodeEvent>()
        let (node, address) = try await startNode("target", events: events) { $0.security = security }

        for index in 0..<claims {
            // Each claims a different address where `dials` listens: 127.0.x.y, all on its port.
            let claimed = try SocketAddress(ipAddress: "127.0.\(index / 200).\(index % 200 + 2)", port: dials.port)
            let peer = try await ScriptedPeer.nativeNode(
                "planter\(index)", listeningAt: claimed, connectingTo: address, security: security, group: group)
            try await peer.sync(1)
            await peer.close()
        }
        try await events.wait("every planted connection to close", within: 60, on: node.eventLoop) { events in
            events.filter { if case .connectionClosed = $0 { true } else { false } }.count == claims
        }

        let peers = await node.peers
        XCTAssertEqual(peers.count, 0, "a route learned from a hello goes with its connection")
        let sent = try await node.broadcast(Envelope(name: "target", operation: "news"))
        XCTAssertEqual(sent, 0)
        let everyRoute = try await node.broadcast(Envelope(name: "target", operation: "news"), to: .allRoutes)
        XCTAssertEqual(everyRoute, 0)
        let replies = await node.dispatchAll(Envelope(name: "target", operation: "getreq"), to: .allRoutes)
        XCTAssertTrue(replies.isEmpty)
        _ = await node.peers // one more turn of the node's loop, in case a dial had been started
        XCTAssertEqual(dials.accepted, 0, "the node dialled a planted address")
        await node.shutdown()
        await dials.close()
    }

    func testABroadcastReachesPeersWithOpenConnectionsOverThoseConnectionsWithoutDialling() async throws {
        let dials = try await CountingListener.start(group: group)
        let (node, address) = try await startNode("target", events: Recorder())
        var peers: [ScriptedPeer] = []
        for index in 0..<20 {
            let claimed = try SocketAddress(ipAddress: "127.0.1.\(index + 2)", port: dials.port)
            let peer = try await ScriptedPeer.nativeNode("peer\(index)", listeningAt: claimed, connectingTo: address, group: group)
            try await peer.sync(1)
            peers.append(peer)
        }
        let sent = try await node.broadcast(Envelope(name: "target", operation: "news"))
        XCTAssertEqual(sent, 20)
        for peer in peers {
            _ = try await peer.first("the broadcast") { $0.operation == "news" }
        }
        XCTAssertEqual(dials.accepted, 0)
        for peer in peers { await peer.close() }
        await node.shutdown()
        await dials.close()
    }

    func testAConnectionPastTheInboundMaximumIsClosedAtOnceAndReportedWhileTheOthersGoOn() async throws {
        let events = Recorder<NodeEvent>()
        let (node, address) = try await startNode("target", events: events) { $0.maximumInboundConnections = 3 }
        var admitted: [ScriptedPeer] = []
        for index in 0..<3 {
            let claimed = try SocketAddress(ipAddress: "127.0.2.\(index + 2)", port: 9)
            let peer = try await ScriptedPeer.nativeNode("peer\(index)", listeningAt: claimed, connectingTo: address, group: group)
            try await peer.sync(1)
            admitted.append(peer)
        }

        let refused = try await ScriptedPeer.connect(to: address, wire: .native, group: group)
        try await refused.ended.wait("the refused connection to close", within: 10, on: node.eventLoop) { !$0.isEmpty }
        XCTAssertTrue(refused.received.all.isEmpty, "the refused connection got nothing, not even a hello")
        XCTAssertTrue(events.all.contains { if case .limitReached(.inboundConnections) = $0 { true } else { false } })
        for (index, peer) in admitted.enumerated() { try await peer.sync(UInt64(index + 2)) }

        // Once one leaves, a new connection is admitted.
        await admitted[0].close()
        try await events.wait("a connection to close", on: node.eventLoop) { events in
            events.contains { if case .connectionClosed = $0 { true } else { false } }
        }
        let later = try await ScriptedPeer.nativeNode(
            "later", listeningAt: try SocketAddress(ipAddress: "127.0.2.9", port: 9), connectingTo: address, group: group)
        try await later.sync(1)
        for peer in admitted.dropFirst() + [later] { await peer.close() }
        await node.shutdown()
    }

    func testAPeerThatWouldBeARoutePastTheMaximumIsDisconnectedAndTheApplicationGetsLimitReached() async throws {
        let events = Recorder<NodeEvent>()
        let (node, address) = try await startNode("target", events: events) { $0.maximumRoutes = 2 }
        var peers: [ScriptedPeer] = []
        for index in 0..<2 {
            let claimed = try SocketAddress(ipAddress: "127.0.3.\(index + 2)", port: 9)
            let peer = try await ScriptedPeer.nativeNode("peer\(index)", listeningAt: claimed, connectingTo: address, group: group)
            try await peer.sync(1)
            peers.append(peer)
        }
        let third = try await ScriptedPeer.nativeNode(
            "third", listeningAt: try SocketAddress(ipAddress: "127.0.3.9", port: 9), connectingTo: address, group: group)
        try await third.ended.wait("the third peer to be disconnected", within: 10, on: node.eventLoop) { !$0.isEmpty }
        XCTAssertTrue(events.all.contains { if case .limitReached(.routes) = $0 { true } else { false } })
        let routes = await node.peers
        XCTAssertEqual(routes.count, 2)

        do {
            try await node.add(peer: "another", address: try SocketAddress(ipAddress: "127.0.3.10", port: 9))
            XCTFail("a route past the maximum was added")
        } catch P2PError.limitReached(.routes) {
            // As configured.
        }
        for peer in peers { await peer.close() }
        await node.shutdown()
    }

    func testIncompleteMessagesBeyondTheNodesBudgetCloseTheConnectionThatWentPastIt() async throws {
        let events = Recorder<NodeEvent>()
        let (node, address) = try await startNode("target", events: events) {
            $0.maximumPartialMessageBytes = 1 << 20
            $0.security = .insecure  // the holders write plaintext frames
        }
        var hello = ByteBuffer()
        var encoder = NativeEnvelopeFrameEncoder()
        try encoder.encode(data: ControlMessage.hello(.init(name: "holder", generation: 1, listeningAddress: nil)), out: &hello)
        // A frame announcing 900 KiB, of which 300 KiB come: each connection holds 300 KiB.
        var partial = ByteBuffer()
        partial.writeInteger(UInt32(900 << 10))
        partial.writeBytes([UInt8](repeating: 0, count: 300 << 10))

        var holders: [SocketChannel] = []
        for _ in 0..<4 {
            let channel = try await ClientBootstrap(group: group).connect(to: address).get()
            try await channel.writeAndFlush(hello).get()
            try await channel.writeAndFlush(partial).get()
            holders.append(channel)
        }
        // The fourth takes the node past 1 MiB: that one is closed, the others stay.
        let fourth = holders[3]
        try await within(10, on: node.eventLoop, "the fourth holder to be closed") { try await fourth.closeFuture.get() }
        XCTAssertTrue(events.all.contains { if case .limitReached(.partialMessageBytes) = $0 { true } else { false } })
        for holder in holders.prefix(3) { XCTAssertTrue(holder.isActive) }
        for holder in holders.prefix(3) { try? await holder.close().get() }
        await node.shutdown()
    }

    // MARK: Helpers

    private func startNode(
        _ name: String, events: Recorder<NodeEvent>, configure: (inout Node.Configuration) -> Void = { _ in }
    ) async throws -> (Node, SocketAddress) {
        var configuration = Node.Configuration(name: name, logger: testLogger("p2p.\(name)"), observer: { events.append($0) })
        configure(&configuration)
        let node = try Node(configuration: configuration, protocol: AnswerTable([:]), group: group)
        let address = try await node.listen(on: .loopbackV4(port: 0))
        return (node, address)
    }
}

/// Listens on every loopback address (0.0.0.0) at one port and counts the connections accepted:
/// the dials a node made to addresses on that port.
private final class CountingListener: Sendable {
    let port: Int
    private let server: ServerSocketChannel
    private let count: Counter

    private init(port: Int, server: ServerSocketChannel, count: Counter) {
        self.port = port
        self.server = server
        self.count = count
    }

    static func start(group: MultiThreadedEventLoopGroup) async throws -> CountingListener {
        let count = Counter()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { _ in count.increment() }
            .bind(host: "0.0.0.0", port: 0)
        return CountingListener(port: server.localAddress?.port ?? 0, server: server, count: count)
    }

    /// The connections accepted so far.
    var accepted: Int { count.value }

    func close() async {
        try? await server.close().get()
    }
}

/// A count that any thread may bump.
private final class Counter: Sendable {
    private let storage = Atomic<Int>(0)

    func increment() { storage.add(1, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}
