import Pheromones
import PheromonesNoise
@testable import PheromonesP2P
import XCTest

/// Peer exchange as the pure state machine it is: virtual time (deadlines made by hand), no
/// sockets, every decision read off the actions it returns.
final class PeerExchangeStateTests: XCTestCase {
    private let start = Deadline(uptimeNanoseconds: 1_000_000_000_000)
    private let own = SocketAddress.loopbackV4(port: 9000)

    private func address(_ port: Int) -> SocketAddress { .loopbackV4(port: port) }

    private func peerID(_ byte: UInt8) -> PeerID {
        PeerID(digest: [UInt8](repeating: byte, count: PeerID.byteCount))!
    }

    private func entries(_ ports: ClosedRange<Int>) -> [PeerExchangeEntry] {
        ports.map { PeerExchangeEntry(address: address($0), peerID: nil) }
    }

    private func settings(
        target: Int = 8, interval: TimeAmount = .seconds(5), fanout: Int = 3, dialsPerSecond: Int = 2,
        perAnswer: Int = 32, learned: Int = 256
    ) -> PeerExchange {
        var settings = PeerExchange()
        settings.targetPeerCount = target
        settings.interval = interval
        settings.requestFanout = fanout
        settings.maximumDialsPerSecond = dialsPerSecond
        settings.maximumAddressesPerAnswer = perAnswer
        settings.maximumLearnedAddresses = learned
        return settings
    }

    private func makeState(_ settings: PeerExchange) -> PeerExchangeState {
        var state = PeerExchangeState(settings: settings, seed: 42)
        state.ownAddresses = [own]
        state.ownPeerID = peerID(0xEE)
        return state
    }

    private func requests(_ actions: [PeerExchangeState.Action]) -> [ConnectionID] {
        actions.compactMap { if case .request(let connection) = $0 { connection } else { nil } }
    }

    private func dials(_ actions: [PeerExchangeState.Action]) -> [SocketAddress] {
        actions.compactMap { if case .dial(let entry) = $0 { entry.address } else { nil } }
    }

    private func answer(_ actions: [PeerExchangeState.Action]) -> [PeerExchangeEntry]? {
        actions.lazy.compactMap { if case .answer(_, let entries) = $0 { entries } else { nil } }.first
    }

    /// Connects routes 1...count (connection n carries 127.0.0.1:n, peer id n) at `now`.
    private func connect(_ count: Int, to state: inout PeerExchangeState, at now: Deadline) -> [PeerExchangeState.Action] {
        var actions: [PeerExchangeState.Action] = []
        for n in 1...count {
            actions += state.connectionIdentified(n, address: address(n), peerID: peerID(UInt8(n)), localAddress: nil, now: now)
        }
        return actions
    }

    private func receive(
        _ entries: [PeerExchangeEntry], on connection: ConnectionID, into state: inout PeerExchangeState, at now: Deadline
    ) throws -> [PeerExchangeState.Action] {
        try state.answerReceived(on: connection, now: now) { () throws(P2PError) in entries }
    }

    // MARK: Asking

    func testTheFirstPeerIsAskedAtOnceAndLaterPeersWaitForTheRound() {
        var state = makeState(settings())
        XCTAssertEqual(requests(connect(1, to: &state, at: start)), [1])
        XCTAssertEqual(requests(state.connectionIdentified(2, address: address(2), peerID: nil, localAddress: own, now: start)), [])
        XCTAssertEqual(state.nextDeadline(now: start), start + .seconds(5))
        XCTAssertEqual(requests(state.tick(now: start + .seconds(4))), [], "the round is not due yet")
        // 2 is asked now, and 1 again: its request went unanswered for a whole interval.
        XCTAssertEqual(Set(requests(state.tick(now: start + .seconds(5)))), [1, 2])
    }

    func testEachRoundAsksAtMostTheFanoutOfPeersOnePerRoute() {
        var state = makeState(settings(target: 20, fanout: 3))
        _ = connect(6, to: &state, at: start)
        // A second connection of route 1 (a hand-over): one route, asked at most once.
        _ = state.connectionIdentified(7, address: address(1), peerID: peerID(1), localAddress: own, now: start)
        let asked = requests(state.tick(now: start + .seconds(5)))
        XCTAssertEqual(asked.count, 3)
        XCTAssertEqual(Set(asked).count, 3)
        let next = requests(state.tick(now: start + .seconds(10)))
        XCTAssertEqual(next.count, 3)
        XCTAssertTrue(Set(asked).isDisjoint(with: next), "the peers asked least recently go first")
        // Two rounds asked every route once (connection 7 is route 1's second connection).
        XCTAssertEqual(Set((asked + next).map { $0 == 7 ? 1 : $0 }), [1, 2, 3, 4, 5, 6])
    }

    func testANodeThatReachedItsTargetAsksNoMore() {
        var state = makeState(settings(target: 3))
        _ = connect(3, to: &state, at: start)
        for round in 1...5 {
            XCTAssertEqual(requests(state.tick(now: start + .seconds(5) * Int64(round))), [], "round \(round)")
        }
        // One peer goes: below the target again, the next round asks.
        _ = state.connectionClosed(3, dialedAddress: nil, now: start + .seconds(26))
        XCTAssertEqual(requests(state.tick(now: start + .seconds(30))).count, 2)
    }

    func testATargetReachedByDialsUnderWayStopsAskingToo() throws {
        var state = makeState(settings(target: 3, dialsPerSecond: 10))
        _ = connect(1, to: &state, at: start)
        let actions = try receive(entries(100...101), on: 1, into: &state, at: start)
        XCTAssertEqual(dials(actions), [address(100), address(101)])
        XCTAssertEqual(state.dialCount, 2)
        XCTAssertEqual(requests(state.tick(now: start + .seconds(5))), [])
    }

    func testANodeWithoutPeersHasNothingDue() {
        var state = makeState(settings())
        XCTAssertNil(state.nextDeadline(now: start))
        _ = connect(1, to: &state, at: start)
        _ = state.connectionClosed(1, dialedAddress: nil, now: start)
        XCTAssertNil(state.nextDeadline(now: start))
    }

    // MARK: Answers

    func testAnUnsolicitedAnswerIsIgnoredAndNotEvenParsed() throws {
        var state = makeState(settings())
        _ = connect(2, to: &state, at: start)  // 1 was asked, 2 was not
        var parsed = false
        let actions = try state.answerReceived(on: 2, now: start) { () throws(P2PError) in
            parsed = true
            return []
        }
        XCTAssertEqual(actions, [.ignored(2, .unsolicitedAnswer)])
        XCTAssertFalse(parsed)
        XCTAssertEqual(state.learnedCount, 0)
    }

    func testAnAnswerCountsOnceAndNotAfterItsRequestExpired() throws {
        var state = makeState(settings(target: 50, dialsPerSecond: 0))
        _ = connect(1, to: &state, at: start)
        XCTAssertEqual(try receive(entries(100...102), on: 1, into: &state, at: start + .seconds(1)), [.learned(3)])
        XCTAssertEqual(try receive(entries(103...104), on: 1, into: &state, at: start + .seconds(2)), [.ignored(1, .unsolicitedAnswer)])
        // Asked again in the round at 5 s; an answer after a whole interval is too late.
        XCTAssertEqual(requests(state.tick(now: start + .seconds(5))), [1])
        XCTAssertEqual(try receive(entries(105...106), on: 1, into: &state, at: start + .seconds(10)), [.ignored(1, .unsolicitedAnswer)])
        XCTAssertEqual(state.learnedCount, 3)
    }

    func testAMessageOnAConnectionWithoutARouteIsIgnored() throws {
        var state = makeState(settings())
        XCTAssertEqual(state.requestReceived(on: 9, now: start), [.ignored(9, .unidentifiedConnection)])
        XCTAssertEqual(try receive(entries(100...100), on: 9, into: &state, at: start), [.ignored(9, .unidentifiedConnection)])
    }

    func testAMalformedAnswerIsThrownForTheDriverToClose() {
        var state = makeState(settings())
        _ = connect(1, to: &state, at: start)
        XCTAssertThrowsError(try state.answerReceived(on: 1, now: start) { () throws(P2PError) -> [PeerExchangeEntry] in
            throw .unknownProtocol("garbage")
        })
        XCTAssertFalse(state.awaitsAnswer(on: 1))
    }

    // MARK: Answering

    func testARequestIsAnsweredWithTheOtherConnectedRoutesAndTheirPeerIDs() {
        var state = makeState(settings())
        _ = connect(4, to: &state, at: start)
        let entries = answer(state.requestReceived(on: 2, now: start))
        XCTAssertEqual(Set(entries ?? []), Set([1, 3, 4].map { PeerExchangeEntry(address: address($0), peerID: peerID(UInt8($0))) }))
    }

    func testAnAnswerCarriesAtMostTheMaximumNumberOfAddresses() {
        var state = makeState(settings(target: 100, perAnswer: 5))
        _ = connect(40, to: &state, at: start)
        XCTAssertEqual(answer(state.requestReceived(on: 1, now: start))?.count, 5)
    }

    func testRequestsAreAnsweredAtMostOncePerHalfInterval() {
        var state = makeState(settings(interval: .seconds(4)))
        _ = connect(2, to: &state, at: start)
        XCTAssertNotNil(answer(state.requestReceived(on: 2, now: start)))
        XCTAssertEqual(state.requestReceived(on: 2, now: start + .milliseconds(1999)), [.ignored(2, .requestTooSoon)])
        XCTAssertNotNil(answer(state.requestReceived(on: 1, now: start + .milliseconds(1))), "each connection has its own spacing")
        XCTAssertNotNil(answer(state.requestReceived(on: 2, now: start + .seconds(2))))
        XCTAssertEqual(state.requestReceived(on: 2, now: start + .seconds(3)), [.ignored(2, .requestTooSoon)])
    }

    // MARK: Learning

    func testOwnAddressOwnIDConnectedRoutesAndDialsUnderWayAreNotLearned() throws {
        var state = makeState(settings(target: 50, dialsPerSecond: 1))
        _ = connect(2, to: &state, at: start)
        let advertised = SocketAddress.loopbackV4(port: 9001)
        _ = state.connectionIdentified(3, address: address(3), peerID: nil, localAddress: advertised, now: start)
        let offered = [
            PeerExchangeEntry(address: own, peerID: nil),  // this node's listening address
            PeerExchangeEntry(address: advertised, peerID: nil),  // what it advertised on a connection
            PeerExchangeEntry(address: address(500), peerID: peerID(0xEE)),  // this node's own id elsewhere
            PeerExchangeEntry(address: address(2), peerID: nil),  // a connected route
            PeerExchangeEntry(address: address(501), peerID: peerID(1)),  // a connected peer at another address
            PeerExchangeEntry(address: .anyV4(port: 7000), peerID: nil),  // a wildcard
            PeerExchangeEntry(address: address(0), peerID: nil),  // no port
            PeerExchangeEntry(address: address(600), peerID: peerID(0x60)),  // new: dialled at once
            PeerExchangeEntry(address: address(601), peerID: nil),  // new: waits for a token
        ]
        let actions = try receive(offered, on: 1, into: &state, at: start)
        XCTAssertEqual(actions, [.learned(2), .dial(PeerExchangeEntry(address: address(600), peerID: peerID(0x60)))])
        XCTAssertEqual(state.learnedEntries.map(\.address), [address(601)])
        // A learned address whose route connects meanwhile (the peer dialled us) is dropped.
        _ = state.connectionIdentified(4, address: address(601), peerID: nil, localAddress: own, now: start + .seconds(1))
        XCTAssertEqual(state.learnedCount, 0)
        // Announced again: one is a dial under way, the other a connected route; neither is learned.
        let asked = try XCTUnwrap(requests(state.tick(now: start + .seconds(5))).first)
        let again = [PeerExchangeEntry(address: address(600), peerID: peerID(0x60)), PeerExchangeEntry(address: address(601), peerID: nil)]
        XCTAssertEqual(try receive(again, on: asked, into: &state, at: start + .seconds(5)), [])
        XCTAssertEqual(state.learnedCount, 0)
    }

    func testLearnedAddressesAreBoundedAndTheOldestGoFirst() throws {
        var state = makeState(settings(target: 1000, fanout: 1, dialsPerSecond: 0, perAnswer: 100, learned: 10))
        _ = connect(1, to: &state, at: start)
        XCTAssertEqual(try receive(entries(100...129), on: 1, into: &state, at: start), [.learned(30)])
        XCTAssertEqual(state.learnedEntries.map(\.address), (120...129).map(address))
        XCTAssertEqual(requests(state.tick(now: start + .seconds(5))), [1])
        XCTAssertEqual(try receive(entries(125...134), on: 1, into: &state, at: start + .seconds(5)), [.learned(5)])
        XCTAssertEqual(state.learnedEntries.map(\.address), (125...134).map(address))
    }

    // MARK: Dialling

    func testTheTokenBucketLimitsDialsPerSecond() throws {
        var state = makeState(settings(target: 100, dialsPerSecond: 2, perAnswer: 100))
        _ = connect(1, to: &state, at: start)
        let burst = try receive(entries(100...119), on: 1, into: &state, at: start)
        XCTAssertEqual(dials(burst), [address(100), address(101)], "the burst is the rate")
        XCTAssertEqual(state.nextDeadline(now: start), start + .milliseconds(500), "the next token")
        XCTAssertEqual(dials(state.tick(now: start + .milliseconds(499))), [])
        XCTAssertEqual(dials(state.tick(now: start + .milliseconds(500))), [address(102)])
        // Over ten seconds the bucket lets through its burst plus two per second, never more.
        var dialled = 3
        for step in 1...100 {
            dialled += dials(state.tick(now: start + .milliseconds(500) + .milliseconds(100) * Int64(step))).count
        }
        XCTAssertEqual(dialled, 20, "every address dialled, none sooner than the bucket allows")
        var early = makeState(settings(target: 100, dialsPerSecond: 2, perAnswer: 100))
        _ = connect(1, to: &early, at: start)
        var count = dials(try receive(entries(100...119), on: 1, into: &early, at: start)).count
        for step in 1...50 { count += dials(early.tick(now: start + .milliseconds(100) * Int64(step))).count }
        XCTAssertEqual(count, 2 + 10, "5 s: the burst of 2, then 2 per second")
    }

    func testDialsStopAtTheTargetAndAFailedDialIsForgottenAndReplaced() throws {
        var state = makeState(settings(target: 3, dialsPerSecond: 100))
        _ = connect(1, to: &state, at: start)
        let actions = try receive(entries(100...109), on: 1, into: &state, at: start)
        XCTAssertEqual(dials(actions), [address(100), address(101)], "1 connected + 2 dialling = 3")
        XCTAssertEqual(state.learnedCount, 8)
        // The first dial fails: forgotten, and the next learned address takes its place.
        let replaced = state.connectionClosed(50, dialedAddress: address(100), now: start + .seconds(1))
        XCTAssertEqual(dials(replaced), [address(102)])
        XCTAssertEqual(state.dialCount, 2)
        // The second connects: the target is reached, nothing more is dialled.
        XCTAssertEqual(state.connectionIdentified(51, address: address(101), peerID: nil, localAddress: own, now: start + .seconds(1)), [])
        XCTAssertEqual(dials(state.tick(now: start + .seconds(2))), [])
        XCTAssertEqual(state.connectedCount + state.dialCount, 3)
    }

    func testALearnedRouteThatDropsIsNotDialledAgain() throws {
        var state = makeState(settings(target: 3, dialsPerSecond: 100))
        _ = connect(1, to: &state, at: start)
        XCTAssertEqual(dials(try receive(entries(100...100), on: 1, into: &state, at: start)), [address(100)])
        _ = state.connectionIdentified(2, address: address(100), peerID: nil, localAddress: own, now: start)
        let afterDrop = state.connectionClosed(2, dialedAddress: address(100), now: start + .seconds(1))
        XCTAssertEqual(dials(afterDrop), [])
        XCTAssertEqual(dials(state.tick(now: start + .seconds(5))), [])
    }

    func testNothingIsDialledWithoutTokensAndTheNextDeadlineIsTheRound() throws {
        var state = makeState(settings(target: 10, dialsPerSecond: 0))
        _ = connect(1, to: &state, at: start)
        XCTAssertEqual(dials(try receive(entries(100...105), on: 1, into: &state, at: start)), [])
        XCTAssertEqual(state.nextDeadline(now: start), start + .seconds(5))
    }
}
