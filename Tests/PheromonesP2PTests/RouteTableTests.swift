import Pheromones
import PheromonesNoise
@testable import PheromonesP2P
import XCTest

/// The route table as the pure state machine it is: no sockets, every decision read off the
/// actions it returns.
final class RouteTableTests: XCTestCase {
    private let low = SocketAddress.loopbackV4(port: 1000)
    private let high = SocketAddress.loopbackV4(port: 2000)

    func testRoutesAreKeyedByListeningAddressSoANameMayRepeat() throws {
        var table = RouteTable()
        try table.addAddress(name: "twin", address: high, pinned: true)
        try table.addAddress(name: "twin", address: low, pinned: true)
        XCTAssertEqual(table.routes(named: "twin").map(\.address), [low, high])
        XCTAssertThrowsError(try table.addAddress(name: "twin", address: low, pinned: true)) { error in
            XCTAssertEqual(error as? P2PError, .routeExists(name: "twin", address: low))
        }
        try table.addAddress(name: "renamed", address: low, pinned: true)
        XCTAssertEqual(table.routes(named: "twin").map(\.address), [high])
    }

    func testOnlyRouteNamesTheAddressOfAUniqueNameAndNothingForNoneOrSeveral() throws {
        var table = RouteTable()
        XCTAssertNil(table.onlyRoute(named: "twin"))
        try table.addAddress(name: "twin", address: high, pinned: true)
        XCTAssertEqual(table.onlyRoute(named: "twin"), high)
        try table.addAddress(name: "twin", address: low, pinned: true)
        XCTAssertNil(table.onlyRoute(named: "twin"), "ambiguous")
        try table.addAddress(name: "other", address: low, pinned: true)
        XCTAssertEqual(table.onlyRoute(named: "twin"), high)
        XCTAssertEqual(table.onlyRoute(named: "other"), low)
    }

    func testAReconnectHandsOverFromTheOldConnectionOnceItCloses() {
        var table = RouteTable()
        let first = ConnectionFacts(direction: .outbound, generation: 1, localAddress: low, peerAddress: high)
        let second = ConnectionFacts(direction: .outbound, generation: 2, localAddress: low, peerAddress: high)
        XCTAssertEqual(table.beginDial(name: "peer", address: high, connection: 1, facts: first, pinned: true), .dial)
        XCTAssertEqual(table.identified(1, address: high, name: "peer", facts: first), [.routeUp(high, 1)])
        XCTAssertEqual(table.beginDial(name: "peer", address: high, connection: 2, facts: second, pinned: true), .dial)
        XCTAssertEqual(table.beginDial(name: "peer", address: high, connection: 3, facts: second, pinned: true), .join(2))
        XCTAssertEqual(table.identified(2, address: high, name: "peer", facts: second), [.drain(1)])
        XCTAssertEqual(table.sendTarget(for: high), .park, "new messages wait for the hand-over")
        XCTAssertEqual(table.closed(1), [.routeUp(high, 2)])
        XCTAssertEqual(table.sendTarget(for: high), .connection(2))
    }

    func testAConnectionTheOnlyOneOfItsRouteWaitsForItsSuccessorBeforeFinishingItsDrain() {
        var table = RouteTable()
        let outbound = ConnectionFacts(direction: .outbound, generation: 1, localAddress: high, peerAddress: low)
        let inbound = ConnectionFacts(direction: .inbound, generation: 1, localAddress: high, peerAddress: low)
        _ = table.beginDial(name: "peer", address: low, connection: 1, facts: outbound, pinned: true)
        _ = table.identified(1, address: low, name: "peer", facts: outbound)
        // The peer (smaller address) saw its own dial first and asks us to drain ours.
        XCTAssertEqual(table.drainRequested(1), [.drain(1)])
        XCTAssertTrue(table.awaitsSuccessor(1))
        XCTAssertEqual(table.sendTarget(for: low), .park)
        XCTAssertEqual(table.identified(2, address: low, name: "peer", facts: inbound), [.resumeDrain(1)])
        XCTAssertFalse(table.awaitsSuccessor(1))
        XCTAssertEqual(table.closed(1), [.routeUp(low, 2)])
    }

    func testAFirstDialThatFailsRemovesTheRouteAndALaterOneOnlyTakesItDown() {
        var table = RouteTable()
        let facts = ConnectionFacts(direction: .outbound, generation: 1, localAddress: low, peerAddress: high)
        _ = table.beginDial(name: "peer", address: high, connection: 1, facts: facts, pinned: true)
        XCTAssertEqual(table.closed(1), [.dialFailed(high)])
        XCTAssertNil(table.sendTarget(for: high))

        _ = table.beginDial(name: "peer", address: high, connection: 2, facts: facts, pinned: true)
        _ = table.identified(2, address: high, name: "peer", facts: facts)
        XCTAssertEqual(table.closed(2), [.routeDown(high)])
        XCTAssertEqual(table.sendTarget(for: high), .dial)
        _ = table.beginDial(name: "peer", address: high, connection: 3, facts: facts, pinned: true)
        XCTAssertEqual(table.closed(3), [.dialFailed(high)])
        XCTAssertEqual(table.sendTarget(for: high), .dial, "the route stays, down")
    }

    func testRemovingARouteClosesItsConnections() {
        var table = RouteTable()
        let facts = ConnectionFacts(direction: .outbound, generation: 1, localAddress: low, peerAddress: high)
        _ = table.beginDial(name: "peer", address: high, connection: 1, facts: facts, pinned: true)
        _ = table.identified(1, address: high, name: "peer", facts: facts)
        XCTAssertEqual(table.remove(high), [.close(1, .connectionLost(high)), .routeRemoved(high)])
        XCTAssertEqual(table.closed(1), [])
        XCTAssertNil(table.sendTarget(for: high))
    }

    /// TODO 4 as a property: two nodes dial each other; each end learns of the two connections (and
    /// of the other end's `goaway`) in any order. Both must keep the same connection, and each
    /// must drain exactly the other one.
    func testBothEndsOfASimultaneousDialKeepTheSameConnectionWhateverTheOrderOfEvents() {
        var random = SplitMix(seed: 4)
        for round in 0..<2_000 {
            let aIsLow = random.next() % 2 == 0
            let (a, b) = aIsLow ? (low, high) : (high, low)
            var ends = [SimulatedEnd(me: a, peer: b), SimulatedEnd(me: b, peer: a)]
            // Connection "x" is dialed by a, "y" by b; each end's own dial starts first.
            ends[0].dial("x")
            ends[1].dial("y")
            // What each end still has to learn: hellos of both connections, and goaways once sent.
            var pending: [(end: Int, event: SimulatedEnd.Event)] = [
                (0, .hello("x")), (0, .hello("y")), (1, .hello("x")), (1, .hello("y")),
            ]
            while !pending.isEmpty {
                // A goaway travels on its connection, so it arrives after that connection's hello.
                let eligible = pending.indices.filter { ends[pending[$0].end].mayReceive(pending[$0].event) }
                let next = pending.remove(at: eligible[Int(random.next() % UInt64(eligible.count))])
                let drained = ends[next.end].receive(next.event)
                for connection in drained { pending.append((1 - next.end, .goAway(connection))) }
            }
            XCTAssertEqual(ends[0].drained, ends[1].drained, "round \(round)")
            XCTAssertEqual(ends[0].drained.count, 1, "round \(round)")
            let keeper: String = aIsLow ? "x" : "y"
            XCTAssertFalse(ends[0].drained.contains(keeper), "round \(round): the dial of the smaller address is kept")
        }
    }
}

/// One end of a simultaneous dial, driving a real ``RouteTable``.
private struct SimulatedEnd {
    enum Event { case hello(String), goAway(String) }

    let me: SocketAddress
    let peer: SocketAddress
    var table = RouteTable()
    var drained: Set<String> = []
    private var ids: [String: ConnectionID] = [:]

    init(me: SocketAddress, peer: SocketAddress) {
        self.me = me
        self.peer = peer
    }

    /// This end dials `connection`.
    mutating func dial(_ connection: String) {
        ids[connection] = ids.count + 1
        _ = table.beginDial(name: "peer", address: peer, connection: ids[connection] ?? 0, facts: facts(of: connection, outbound: true), pinned: true)
    }

    /// Whether `event` can arrive now: a goaway only on a connection this end knows.
    func mayReceive(_ event: Event) -> Bool {
        guard case .goAway(let connection) = event else { return true }
        return ids[connection] != nil
    }

    /// Handles `event`; returns the connections this end started draining (their `goaway` goes out).
    mutating func receive(_ event: Event) -> [String] {
        let actions: [RouteTable.Action]
        switch event {
        case .hello(let connection):
            let outbound = ids[connection] != nil
            if !outbound { ids[connection] = ids.count + 1 }
            actions = table.identified(ids[connection] ?? 0, address: peer, name: "peer", facts: facts(of: connection, outbound: outbound))
        case .goAway(let connection):
            actions = table.drainRequested(ids[connection] ?? 0)
        }
        var started: [String] = []
        for case .drain(let id) in actions {
            guard let name = ids.first(where: { $0.value == id })?.key, !drained.contains(name) else { continue }
            drained.insert(name)
            started.append(name)
        }
        return started
    }

    private func facts(of connection: String, outbound: Bool) -> ConnectionFacts {
        ConnectionFacts(direction: outbound ? .outbound : .inbound, generation: 1, localAddress: me, peerAddress: peer)
    }
}

extension RouteTableTests {
    func testOurDialProvingAnotherIDThanAClaimTakesTheRouteAndRefusesTheClaimant() {
        var table = RouteTable()
        let address = SocketAddress.loopbackV4(port: 3000)
        let squatter = NodeIdentity().peerID
        let real = NodeIdentity().peerID
        let claim = ConnectionFacts(direction: .inbound, generation: 1, peerAddress: address, remotePeerID: squatter)
        XCTAssertEqual(table.identified(1, address: address, name: "real", facts: claim), [.routeUp(address, 1)])
        XCTAssertEqual(table.routes[address]?.bindingRestsOnClaim, true)
        let dial = ConnectionFacts(direction: .outbound, generation: 1, peerAddress: address)
        XCTAssertEqual(table.beginDial(name: "real", address: address, connection: 2, facts: dial, pinned: true), .dial)
        var proven = dial
        proven.remotePeerID = real
        XCTAssertEqual(
            table.identified(2, address: address, name: "real", facts: proven),
            [.refuse(1, .unverifiedAddress(squatter, address: address)), .routeUp(address, 2)])
        XCTAssertEqual(table.routes[address]?.peerID, real)
        XCTAssertEqual(table.routes[address]?.bindingRestsOnClaim, false)
        XCTAssertEqual(table.route(ofPeer: real), address)
        XCTAssertNil(table.route(ofPeer: squatter))
        XCTAssertEqual(table.closed(1), [], "the refused connection's closing changes nothing")
        XCTAssertEqual(table.sendTarget(for: address), .connection(2))
    }
}
