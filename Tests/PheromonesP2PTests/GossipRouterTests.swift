import Pheromones
@testable import PheromonesP2P
import XCTest

/// The gossip router, driven call by call in virtual time: its mesh, its pushes and pulls, its
/// choking, and every bound a hostile peer could push against. Peers are small integers.
final class GossipRouterTests: XCTestCase {
    typealias Router = GossipRouter<Int>
    typealias Action = GossipAction<Int>

    private let start = Deadline(uptimeNanoseconds: 1_000_000_000_000)

    // MARK: Mesh

    func testNewPeersJoinTheMeshWithGraftUntilItHoldsD() {
        var router = makeRouter()
        var actions: [Action] = []
        for peer in 1...8 { router.peerConnected(peer, now: start, actions: &actions) }
        XCTAssertEqual(actions, (1...6).map { .control(.graft, to: $0) })
        XCTAssertEqual(router.mesh, Array(1...6))
        XCTAssertEqual(router.statistics.graftSent.messages, 6)
    }

    func testTheHeartbeatGraftsEligiblePeersUpToDWhenTheMeshIsBelowDLow() {
        var router = makeRouter(peers: 10)
        for peer in 1...3 { router.peerDisconnected(peer) }
        XCTAssertEqual(router.mesh, [4, 5, 6])
        // Peer 7 pruned this node: it backs off and may not be grafted.
        var actions: [Action] = []
        router.receivedControl(.prune(backoff: .seconds(60)), from: 7, now: start, actions: &actions)
        router.heartbeat(now: at(1_000), actions: &actions)
        XCTAssertEqual(router.mesh, [4, 5, 6, 8, 9, 10])
        XCTAssertEqual(Set(actions), Set([8, 9, 10].map { .control(.graft, to: $0) }))
    }

    func testTheHeartbeatLeavesAMeshBetweenDLowAndDHighAlone() {
        var router = makeRouter(peers: 10)
        for peer in 1...2 { router.peerDisconnected(peer) }
        var actions: [Action] = []
        router.heartbeat(now: at(1_000), actions: &actions)
        XCTAssertEqual(router.mesh, [3, 4, 5, 6])
        XCTAssertEqual(actions, [])
    }

    func testTheHeartbeatPrunesAMeshAboveDHighDownToDWithABackoff() {
        var router = makeRouter(peers: 20)
        var actions: [Action] = []
        for peer in 7...15 { router.graftExplicitly(peer, now: start, actions: &actions) }
        XCTAssertEqual(router.mesh.count, 15)
        actions.removeAll()
        router.heartbeat(now: at(1_000), actions: &actions)
        XCTAssertEqual(router.mesh.count, 6)
        let pruned = actions.compactMap { action -> Int? in
            guard case .control(.prune(backoff: .seconds(60)), let peer) = action else { return nil }
            return peer
        }
        XCTAssertEqual(pruned.count, 9)
        XCTAssertEqual(actions.count, 9, "nothing but the PRUNEs: \(actions)")
        for peer in pruned {
            XCTAssertFalse(router.isInMesh(peer))
            XCTAssertTrue(router.isBackingOff(peer, now: at(60_999)))
            XCTAssertFalse(router.isBackingOff(peer, now: at(61_000)))
        }
        // Pruned peers are not grafted again while they back off.
        for peer in router.mesh.prefix(4) { router.peerDisconnected(peer) }
        actions.removeAll()
        router.heartbeat(now: at(2_000), actions: &actions)
        let regrafted = actions.compactMap { action -> Int? in
            guard case .control(.graft, let peer) = action else { return nil }
            return peer
        }
        XCTAssertEqual(regrafted.count, 4)
        XCTAssertTrue(Set(regrafted).isDisjoint(with: pruned), "\(regrafted) were pruned in \(pruned)")
    }

    func testAGraftDuringTheBackoffIsAnsweredWithPrune() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.prune(backoff: .seconds(10)), from: 1, now: start, actions: &actions)
        XCTAssertEqual(actions, [])
        router.receivedControl(.graft, from: 1, now: at(1_000), actions: &actions)
        XCTAssertEqual(actions, [.control(.prune(backoff: .seconds(60)), to: 1)])
        XCTAssertFalse(router.isInMesh(1))
        // Once the backoff (ours: the longer) is over, the graft is taken.
        actions.removeAll()
        router.heartbeat(now: at(61_000), actions: &actions)
        actions.removeAll()
        router.receivedControl(.graft, from: 1, now: at(61_000), actions: &actions)
        XCTAssertEqual(actions, [])
        XCTAssertTrue(router.isInMesh(1))
    }

    func testAGraftIsAnsweredWithPruneWhenTheMeshIsAtDHigh() {
        var router = makeRouter(peers: 14)
        var actions: [Action] = []
        for peer in 7...12 { router.receivedControl(.graft, from: peer, now: start, actions: &actions) }
        XCTAssertEqual(actions, [])
        XCTAssertEqual(router.mesh, Array(1...12))
        router.receivedControl(.graft, from: 13, now: start, actions: &actions)
        XCTAssertEqual(actions, [.control(.prune(backoff: .seconds(60)), to: 13)])
        XCTAssertFalse(router.isInMesh(13))
        XCTAssertTrue(router.isBackingOff(13, now: start))
    }

    func testAPruneRemovesThePeerFromTheMeshAndBacksOffForTheLongerBackoff() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.prune(backoff: .seconds(120)), from: 1, now: start, actions: &actions)
        XCTAssertFalse(router.isInMesh(1))
        XCTAssertTrue(router.isBackingOff(1, now: at(119_999)))
        XCTAssertFalse(router.isBackingOff(1, now: at(120_000)))
        // A peer's backoff is capped (ours is shorter than the cap).
        router.receivedControl(.prune(backoff: .seconds(864_000)), from: 2, now: start, actions: &actions)
        XCTAssertTrue(router.isBackingOff(2, now: at(3_599_999)))
        XCTAssertFalse(router.isBackingOff(2, now: at(3_600_000)))
        XCTAssertEqual(actions, [])
        XCTAssertEqual(router.statistics.pruneReceived.messages, 2)
    }

    // MARK: Push

    func testPublishPushesToTheMeshOnly() {
        var router = makeRouter(peers: 10)
        var actions: [Action] = []
        let published = message(1)
        router.publish(published, now: start, actions: &actions)
        XCTAssertEqual(actions, (1...6).map { .send(published, to: $0) })
        XCTAssertEqual(router.statistics.copiesPushed, 6)
        // Publishing it again (or receiving it) is a repeat.
        actions.removeAll()
        router.publish(published, now: start, actions: &actions)
        XCTAssertEqual(actions, [])
        XCTAssertFalse(router.received(published, from: 7, now: start, actions: &actions))
    }

    func testPublishWithAnEmptyMeshPushesToUpToDRandomConnectedPeers() {
        var router = makeRouter(peers: 10)
        var actions: [Action] = []
        for peer in 1...10 { router.receivedControl(.prune(backoff: .seconds(60)), from: peer, now: start, actions: &actions) }
        XCTAssertEqual(router.mesh, [])
        router.publish(message(1), now: start, actions: &actions)
        let targets = sentPeers(actions)
        XCTAssertEqual(targets.count, 6)
        XCTAssertEqual(Set(targets).count, 6)
    }

    func testForwardingExcludesTheSenderAndPeersKnownToHaveTheMessage() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.iHave([5]), from: 2, now: start, actions: &actions)
        router.receivedControl(.iDontWant([5]), from: 3, now: start, actions: &actions)
        XCTAssertTrue(router.isPulling(5))
        actions.removeAll()
        XCTAssertTrue(router.received(message(5, hopLimit: 4, correlationID: 77), from: 1, now: start, actions: &actions))
        let forwarded = message(5, hopLimit: 3)
        XCTAssertEqual(actions, [4, 5, 6].map { .send(forwarded, to: $0) })
        XCTAssertFalse(router.isPulling(5), "the eager copy cancels the pull")
        XCTAssertEqual(router.statistics.messagesReceived, 1)
    }

    func testTheSenderIsExcludedEvenWhenNoIDsAreRemembered() {
        var router = makeRouter(peers: 8) { $0.maximumIDontWantIDs = 0 }
        var actions: [Action] = []
        router.receivedControl(.iDontWant([5]), from: 3, now: start, actions: &actions)
        XCTAssertTrue(router.received(message(5), from: 1, now: start, actions: &actions))
        XCTAssertEqual(sentPeers(actions), [2, 3, 4, 5, 6], "nothing remembered: only the sender is left out")
    }

    func testAMessageFromAPeerOutsideTheMeshIsAcceptedAndForwardedToTheMesh() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        XCTAssertTrue(router.received(message(5), from: 8, now: start, actions: &actions))
        XCTAssertEqual(sentPeers(actions), Array(1...6))
    }

    func testTheHopLimitStopsForwarding() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        XCTAssertTrue(router.received(message(5, hopLimit: 1), from: 1, now: start, actions: &actions))
        XCTAssertTrue(router.received(message(6, hopLimit: 0), from: 1, now: start, actions: &actions))
        XCTAssertEqual(actions, [])
        XCTAssertTrue(router.received(message(7, hopLimit: 2), from: 1, now: start, actions: &actions))
        XCTAssertEqual(actions, (2...6).map { .send(message(7, hopLimit: 1), to: $0) })
    }

    func testALargeMessageIsAnnouncedWithIDontWantBeforeItIsForwarded() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.iDontWant([5]), from: 3, now: start, actions: &actions)
        let large = message(5, bytes: 1024)
        XCTAssertTrue(router.received(large, from: 1, now: start, actions: &actions))
        let expected: [Action] = [2, 4, 5, 6].map { .control(.iDontWant([5]), to: $0) }
            + [2, 4, 5, 6].map { .send(message(5, bytes: 1024, hopLimit: 7), to: $0) }
        XCTAssertEqual(actions, expected)
        XCTAssertEqual(router.statistics.iDontWantSent, .init(messages: 4, ids: 4, bytes: 4 * GossipControl.iDontWant([5]).encodedSize))
    }

    func testASmallMessageIsForwardedWithoutIDontWant() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        XCTAssertTrue(router.received(message(5, bytes: 1023), from: 1, now: start, actions: &actions))
        XCTAssertEqual(sentPeers(actions), Array(2...6))
        XCTAssertEqual(actions.count, 5)
    }

    // MARK: Duplicates and choking

    func testADuplicateFromAMeshPeerIsCountedAndChokesIt() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        XCTAssertTrue(router.received(message(5), from: 1, now: start, actions: &actions))
        actions.removeAll()
        XCTAssertFalse(router.received(message(5), from: 2, now: start, actions: &actions))
        XCTAssertEqual(actions, [.control(.choke, to: 2)])
        XCTAssertTrue(router.isChokedByUs(2))
        // Choked once: a further duplicate is only counted.
        actions.removeAll()
        XCTAssertFalse(router.received(message(5), from: 2, now: start, actions: &actions))
        XCTAssertEqual(actions, [])
        XCTAssertEqual(router.statistics.duplicatesReceived, 2)
        XCTAssertEqual(router.statistics.chokeSent.messages, 1)
    }

    func testAChokeEitherWayMakesTheLinkLazyBothWays() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.choke, from: 2, now: start, actions: &actions)
        XCTAssertTrue(router.hasChokedUs(2) && router.isChokedByUs(2), "a lazy link is lazy both ways")
        // We choke 3: it gets IHAVE from us too.
        _ = router.received(message(5), from: 1, now: start, actions: &actions)
        _ = router.received(message(5), from: 3, now: start, actions: &actions)
        XCTAssertTrue(router.isChokedByUs(3) && router.hasChokedUs(3))
        actions.removeAll()
        XCTAssertTrue(router.received(message(6), from: 1, now: at(1), actions: &actions))
        XCTAssertEqual(sentPeers(actions), [4, 5, 6])
        XCTAssertEqual(Set(actions.compactMap { if case .control(.iHave([6]), let peer) = $0 { return peer } else { return nil } }), [2, 3])
        // UNCHOKE either way makes it eager both ways.
        router.receivedControl(.unchoke, from: 3, now: at(2), actions: &actions)
        XCTAssertFalse(router.isChokedByUs(3) || router.hasChokedUs(3))
    }

    func testALazyMeshPeerGetsIHaveForALargeMessageButNoIDontWant() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.choke, from: 3, now: start, actions: &actions)
        actions.removeAll()
        XCTAssertTrue(router.received(message(5, bytes: 1024), from: 1, now: start, actions: &actions))
        XCTAssertFalse(actions.contains(.control(.iDontWant([5]), to: 3)), "the IHAVE that follows says as much")
        XCTAssertTrue(actions.contains(.control(.iHave([5]), to: 3)))
        XCTAssertTrue(actions.contains(.control(.iDontWant([5]), to: 2)))
    }

    func testALazyMeshPeersAnnouncementsAreBoundedByIDsNotByMessages() {
        var router = makeChokingRouter()
        var actions: [Action] = []
        // One IHAVE per message, as a lazy link carries them: more than the heartbeat's message budget.
        for id in UInt64(100)..<120 { router.receivedControl(.iHave([id]), from: 2, now: at(1), actions: &actions) }
        XCTAssertEqual(router.pendingPullCount, 20)
        XCTAssertEqual(router.statistics.iHaveIgnored, 0)
        // A peer outside the mesh is held to the message budget.
        for id in UInt64(200)..<220 { router.receivedControl(.iHave([id]), from: 8, now: at(1), actions: &actions) }
        XCTAssertEqual(router.pendingPullCount, 30)
        XCTAssertEqual(router.statistics.iHaveIgnored, 10)
    }

    func testTheHeartbeatAnnouncesToLazyMeshPeersWhatTheyAreNotKnownToHave() {
        var router = makeChokingRouter { $0.gossipDegree = 0 }
        var actions: [Action] = []
        XCTAssertTrue(router.received(message(7), from: 1, now: at(1), actions: &actions))
        actions.removeAll()
        router.heartbeat(now: at(1000), actions: &actions)
        XCTAssertEqual(actions, [.control(.iHave([7]), to: 2)], "lazy 2 is not known to have 7; eager peers got it in full")
        // Once 2 is known to have it, it is not announced again.
        router.receivedControl(.iHave([7]), from: 2, now: at(1001), actions: &actions)
        actions.removeAll()
        router.heartbeat(now: at(2000), actions: &actions)
        XCTAssertEqual(actions, [])
    }

    func testAChokeThatWouldLeaveNoEagerPeerMakesTheNearestLazyOneEager() {
        var router = Router(parameters: parameters { $0.meshDegree = 3; $0.initialUnchokedPeers = 2 }, seed: 1, seenCapacity: 100)
        var actions: [Action] = []
        for (peer, milliseconds) in [(1, 30), (2, 10), (3, 20)] {
            router.peerConnected(peer, roundTrip: .milliseconds(Int64(milliseconds)), now: start, actions: &actions)
        }
        XCTAssertEqual((1...3).filter { !router.isChokedByUs($0) }, [2, 3], "the two nearest")
        actions.removeAll()
        router.receivedControl(.choke, from: 2, now: at(1), actions: &actions)
        XCTAssertEqual(actions, [], "3 is still eager")
        router.receivedControl(.choke, from: 3, now: at(2), actions: &actions)
        XCTAssertEqual(actions, [.control(.unchoke, to: 2)], "no eager peer left: the nearest lazy one but 3 becomes eager")
        XCTAssertEqual((1...3).filter { !router.isChokedByUs($0) }, [2])
    }

    func testAPeerOutsideTheMeshCanFillOnlyHalfThePullTable() {
        var router = makeChokingRouter { $0.maximumIHaveLength = 10 }
        var actions: [Action] = []
        router.receivedControl(.iHave(Array(100..<110)), from: 8, now: at(1), actions: &actions)
        XCTAssertEqual(router.pendingPullCount, 5)
        // The lazy mesh peer's announcements still get in.
        for id in UInt64(200)..<205 { router.receivedControl(.iHave([id]), from: 2, now: at(2), actions: &actions) }
        XCTAssertEqual(router.pendingPullCount, 10)
    }

    func testAPullWaitingForAnEagerCopyKeepsWaitingWhenItsAnnouncerLeaves() {
        var router = makeChokingRouter()
        var actions: [Action] = []
        router.receivedControl(.choke, from: 3, now: at(1), actions: &actions)
        router.receivedControl(.iHave([9]), from: 2, now: at(10), actions: &actions)
        router.receivedControl(.iHave([9]), from: 3, now: at(11), actions: &actions)
        actions.removeAll()
        router.peerDisconnected(2)
        XCTAssertEqual(router.nextDeadline, at(70), "still the lazy delay, now for 3")
        router.expireTimers(now: at(69), actions: &actions)
        XCTAssertEqual(actions, [])
    }

    func testSettingsOutOfRangeAreBroughtIntoIt() {
        var wild = GossipParameters()
        wild.heartbeatInterval = .zero
        wild.maximumIHaveLength = -5
        wild.meshDegree = 0
        wild.meshDegreeHigh = -1
        wild.historyGossip = 99
        let clamped = wild.clamped
        XCTAssertEqual(clamped.heartbeatInterval, .milliseconds(1))
        XCTAssertEqual(clamped.maximumIHaveLength, 1)
        XCTAssertEqual(clamped.meshDegree, 1)
        XCTAssertEqual(clamped.meshDegreeHigh, 1)
        XCTAssertEqual(clamped.historyGossip, clamped.historyLength)
        XCTAssertEqual(Router(parameters: wild, seed: 1, seenCapacity: 10).parameters, clamped)
    }

    func testBeforeAnyMessageOnlyTheNearestMeshPeersAreEager() {
        var router = Router(parameters: GossipParameters(), seed: 1, seenCapacity: 100)
        var actions: [Action] = []
        // Round trips 60, 10, 50, 20, 40, 30 ms: the three nearest are 2, 4 and 6.
        for (peer, milliseconds) in [(1, 60), (2, 10), (3, 50), (4, 20), (5, 40), (6, 30)] {
            router.peerConnected(peer, roundTrip: .milliseconds(Int64(milliseconds)), now: start, actions: &actions)
        }
        XCTAssertEqual(router.mesh, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual((1...6).filter { !router.isChokedByUs($0) }, [2, 4, 6])
        actions.removeAll()
        router.publish(message(1), now: at(1), actions: &actions)
        XCTAssertEqual(sentPeers(actions), [2, 4, 6])
        XCTAssertEqual(actions.filter { if case .control(.iHave, _) = $0 { return true } else { return false } }.count, 3)
    }

    func testAfterTheFirstMessageANewcomerStartsLazyWhenEnoughPeersAreEager() {
        var router = Router(parameters: GossipParameters(), seed: 1, seenCapacity: 100)
        var actions: [Action] = []
        for peer in 1...4 { router.peerConnected(peer, roundTrip: .milliseconds(Int64(peer)), now: start, actions: &actions) }
        router.publish(message(1), now: at(1), actions: &actions)
        actions.removeAll()
        router.peerConnected(5, roundTrip: .milliseconds(1), now: at(2), actions: &actions)
        XCTAssertEqual(actions, [.control(.graft, to: 5), .control(.choke, to: 5)], "three are eager already: no rebalancing once warm")
        XCTAssertEqual((1...5).filter { !router.isChokedByUs($0) }, [1, 2, 3])
    }

    func testALazyPeerWhoseAnnouncementBeatsTheEagerCopyTradesPlacesWithItsSender() {
        var router = makeChokingRouter { $0.swapThreshold = .milliseconds(10) }
        var actions: [Action] = []
        router.receivedControl(.iHave([9]), from: 2, now: at(10), actions: &actions)
        actions.removeAll()
        // The eager copy from 1 comes 15 ms after 2 announced it: 2 was faster.
        XCTAssertTrue(router.received(message(9), from: 1, now: at(25), actions: &actions))
        XCTAssertFalse(router.isChokedByUs(2))
        XCTAssertTrue(router.isChokedByUs(1))
        XCTAssertEqual(actions.prefix(2), [.control(.unchoke, to: 2), .control(.choke, to: 1)])
    }

    func testALazyAnnouncementJustAheadOfTheEagerCopyChangesNothing() {
        var router = makeChokingRouter { $0.swapThreshold = .milliseconds(10) }
        var actions: [Action] = []
        router.receivedControl(.iHave([9]), from: 2, now: at(10), actions: &actions)
        XCTAssertTrue(router.received(message(9), from: 1, now: at(19), actions: &actions))
        XCTAssertTrue(router.isChokedByUs(2))
        XCTAssertFalse(router.isChokedByUs(1))
    }

    func testChokingKeepsTheMinimumOfUnchokedMeshPeers() {
        var router = makeRouter(peers: 3) { $0.meshDegree = 3 }
        var actions: [Action] = []
        XCTAssertTrue(router.received(message(5), from: 1, now: start, actions: &actions))
        actions.removeAll()
        XCTAssertFalse(router.received(message(5), from: 2, now: start, actions: &actions))
        XCTAssertEqual(actions, [.control(.choke, to: 2)])
        // Choking 3 would leave only 1 unchoked.
        actions.removeAll()
        XCTAssertFalse(router.received(message(5), from: 3, now: start, actions: &actions))
        XCTAssertEqual(actions, [])
        XCTAssertFalse(router.isChokedByUs(3))
    }

    func testNoPeerIsChokedWhenChokingIsOffOrThePeerIsOutsideTheMesh() {
        var off = makeRouter(peers: 8) { $0.choking = false }
        var actions: [Action] = []
        _ = off.received(message(5), from: 1, now: start, actions: &actions)
        actions.removeAll()
        XCTAssertFalse(off.received(message(5), from: 2, now: start, actions: &actions))
        XCTAssertFalse(off.received(message(5), from: 8, now: start, actions: &actions))
        XCTAssertEqual(actions, [])
        XCTAssertEqual(off.statistics.duplicatesReceived, 2)

        var on = makeRouter(peers: 8)
        _ = on.received(message(5), from: 1, now: start, actions: &actions)
        actions.removeAll()
        XCTAssertFalse(on.received(message(5), from: 8, now: start, actions: &actions))
        XCTAssertEqual(actions, [])
    }

    func testAMeshPeerThatChokedUsGetsIHaveInsteadOfTheMessage() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.choke, from: 2, now: start, actions: &actions)
        XCTAssertTrue(router.hasChokedUs(2))
        XCTAssertTrue(router.received(message(5), from: 1, now: start, actions: &actions))
        XCTAssertEqual(actions[0], .control(.iHave([5]), to: 2))
        XCTAssertEqual(sentPeers(actions), [3, 4, 5, 6])
        // Unchoked: full messages again.
        router.receivedControl(.unchoke, from: 2, now: start, actions: &actions)
        actions.removeAll()
        XCTAssertTrue(router.received(message(6), from: 1, now: start, actions: &actions))
        XCTAssertEqual(sentPeers(actions), [2, 3, 4, 5, 6])
    }

    func testAChokeFromAPeerOutsideTheMeshIsIgnoredAndLeavingTheMeshEndsChoking() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.choke, from: 7, now: start, actions: &actions)
        XCTAssertFalse(router.hasChokedUs(7))
        router.receivedControl(.choke, from: 1, now: start, actions: &actions)
        router.receivedControl(.prune(backoff: .zero), from: 1, now: start, actions: &actions)
        XCTAssertFalse(router.hasChokedUs(1))
    }

    // MARK: Pull

    func testIHaveFromAPeerOutsideTheMeshIsPulledAtOnce() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.iHave([5, 6]), from: 7, now: start, actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([5, 6]), to: 7)])
        XCTAssertEqual(router.nextDeadline, at(500))
        // Seen and pending ids are not asked again.
        actions.removeAll()
        _ = router.received(message(9), from: 1, now: start, actions: &actions)
        actions.removeAll()
        router.receivedControl(.iHave([5, 9, 10]), from: 8, now: start, actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([10]), to: 8)])
    }

    func testIHaveFromAChokedMeshPeerIsPulledAfterTheLazyDelayAndUnchokesIt() {
        var router = makeChokingRouter()
        var actions: [Action] = []
        router.receivedControl(.iHave([9]), from: 2, now: at(10), actions: &actions)
        XCTAssertEqual(actions, [])
        XCTAssertEqual(router.nextDeadline, at(70))
        router.expireTimers(now: at(69), actions: &actions)
        XCTAssertEqual(actions, [])
        router.expireTimers(now: at(70), actions: &actions)
        XCTAssertEqual(actions, [.control(.unchoke, to: 2), .control(.iWant([9]), to: 2)])
        XCTAssertFalse(router.isChokedByUs(2))
        XCTAssertEqual(router.nextDeadline, at(570))
        // The answer arrives: new, delivered, and the pull is over.
        actions.removeAll()
        XCTAssertTrue(router.received(message(9), from: 2, now: at(80), actions: &actions))
        XCTAssertNil(router.nextDeadline)
    }

    func testAnEagerCopyCancelsALazyPull() {
        var router = makeChokingRouter()
        var actions: [Action] = []
        router.receivedControl(.iHave([9]), from: 2, now: at(10), actions: &actions)
        XCTAssertTrue(router.received(message(9), from: 1, now: at(30), actions: &actions))
        XCTAssertNil(router.nextDeadline)
        actions.removeAll()
        router.expireTimers(now: at(70), actions: &actions)
        XCTAssertEqual(actions, [])
        XCTAssertTrue(router.isChokedByUs(2), "the eager path was faster: 2 stays choked")
    }

    func testAnUnansweredIWantMovesToTheNextAnnouncerThenFails() {
        var router = makeRouter(peers: 10)
        var actions: [Action] = []
        router.receivedControl(.iHave([5]), from: 7, now: start, actions: &actions)
        router.receivedControl(.iHave([5]), from: 8, now: at(100), actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([5]), to: 7)])
        actions.removeAll()
        router.expireTimers(now: at(499), actions: &actions)
        XCTAssertEqual(actions, [])
        router.expireTimers(now: at(500), actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([5]), to: 8)])
        actions.removeAll()
        router.expireTimers(now: at(1_000), actions: &actions)
        XCTAssertEqual(actions, [])
        XCTAssertFalse(router.isPulling(5))
        XCTAssertEqual(router.statistics.pullsFailed, 1)
        XCTAssertNil(router.nextDeadline)
    }

    func testAPullWhoseAskedPeerLeavesAsksTheNextAnnouncer() {
        var router = makeRouter(peers: 10)
        var actions: [Action] = []
        router.receivedControl(.iHave([5]), from: 7, now: start, actions: &actions)
        router.receivedControl(.iHave([5]), from: 8, now: start, actions: &actions)
        router.peerDisconnected(7)
        actions.removeAll()
        router.expireTimers(now: at(1), actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([5]), to: 8)])
        router.peerDisconnected(8)
        XCTAssertFalse(router.isPulling(5))
        XCTAssertEqual(router.statistics.pullsFailed, 1)
    }

    func testPullsEndedByEagerCopiesDoNotPileUpInTheTimers() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        // A pull that stays, with the earliest deadline: the stale timers pile up under it.
        router.receivedControl(.iHave([5000]), from: 8, now: start, actions: &actions)
        router.receivedControl(.iHave(Array(1...1000)), from: 7, now: at(1), actions: &actions)
        XCTAssertEqual(router.scheduledTimerCount, 1001)
        for id in UInt64(1)...1000 { _ = router.received(message(id), from: 1, now: at(2), actions: &actions) }
        XCTAssertEqual(router.pendingPullCount, 1)
        XCTAssertEqual(router.nextDeadline, at(500))
        XCTAssertLessThanOrEqual(router.scheduledTimerCount, 2 + 64)
        _ = router.received(message(5000), from: 1, now: at(3), actions: &actions)
        XCTAssertNil(router.nextDeadline)
        XCTAssertEqual(router.scheduledTimerCount, 0)
    }

    func testTheTimersComeOutInDeadlineThenTokenOrder() {
        var timers = PullTimers()
        var random = MessageIDGenerator(seed: 9)
        var entries: [PullTimers.Entry] = []
        for token in UInt64(0)..<500 {
            let deadline = start + .milliseconds(Int64.random(in: 0..<50, using: &random))
            entries.append(PullTimers.Entry(deadline: deadline, token: token, id: token + 1))
        }
        for entry in entries { timers.push(entry) }
        var popped: [UInt64] = []
        while let entry = timers.popFirst() { popped.append(entry.token) }
        let expected = entries.sorted { $0.precedes($1) }.map(\.token)
        XCTAssertEqual(popped, expected)
        timers.rebuild(from: entries.shuffled(using: &random))
        popped.removeAll()
        while let entry = timers.popFirst() { popped.append(entry.token) }
        XCTAssertEqual(popped, expected)
    }

    func testIWantIsServedFromTheCacheAtMostGossipRetransmissionTimes() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        _ = router.received(message(5, hopLimit: 4), from: 1, now: start, actions: &actions)
        actions.removeAll()
        for _ in 1...5 { router.receivedControl(.iWant([5, 6]), from: 7, now: start, actions: &actions) }
        XCTAssertEqual(actions, Array(repeating: .send(message(5, hopLimit: 3), to: 7), count: 3))
        XCTAssertEqual(router.statistics.iWantServed, 3)
        XCTAssertEqual(router.statistics.iWantIgnored, 7)
        // Each peer has its own count.
        actions.removeAll()
        router.receivedControl(.iWant([5]), from: 8, now: start, actions: &actions)
        XCTAssertEqual(actions, [.send(message(5, hopLimit: 3), to: 8)])
    }

    // MARK: Heartbeat gossip and the cache

    func testHeartbeatGossipGoesToPeersOutsideTheMeshWithTheLatestHistoryGossipWindows() {
        var router = makeRouter(peers: 10)
        var actions: [Action] = []
        router.heartbeat(now: at(0), actions: &actions)
        XCTAssertEqual(actions, [], "nothing to announce")
        router.publish(message(1), now: at(500), actions: &actions)
        actions.removeAll()
        router.heartbeat(now: at(1_000), actions: &actions)
        XCTAssertEqual(Set(actions), Set((7...10).map { .control(.iHave([1]), to: $0) }))
        router.publish(message(2), now: at(1_500), actions: &actions)
        var announced: [[UInt64]] = []
        for second in 2...5 {
            actions.removeAll()
            router.heartbeat(now: at(Int64(second) * 1_000), actions: &actions)
            announced.append(actions.first.flatMap { action in
                guard case .control(.iHave(let ids), _) = action else { return nil }
                return ids
            } ?? [])
        }
        XCTAssertEqual(announced, [[2, 1], [2, 1], [2], []])
    }

    func testHeartbeatGossipGoesToGossipDegreeRandomPeersAndLeavesOutIDsThePeerKnows() {
        var router = makeRouter(peers: 20) { $0.gossipDegree = 3 }
        var actions: [Action] = []
        router.publish(message(1), now: start, actions: &actions)
        router.publish(message(2), now: start, actions: &actions)
        for peer in 7...20 { router.receivedControl(.iDontWant([1]), from: peer, now: start, actions: &actions) }
        actions.removeAll()
        router.heartbeat(now: at(1_000), actions: &actions)
        XCTAssertEqual(actions.count, 3)
        for action in actions {
            guard case .control(.iHave([2]), let peer) = action else { return XCTFail("\(action)") }
            XCTAssertFalse(router.isInMesh(peer))
        }
    }

    func testTheCacheForgetsMessagesAfterHistoryLengthHeartbeats() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.publish(message(1), now: start, actions: &actions)
        for second in 1...4 { router.heartbeat(now: at(Int64(second) * 1_000), actions: &actions) }
        XCTAssertTrue(router.isCached(1))
        actions.removeAll()
        router.receivedControl(.iWant([1]), from: 7, now: at(4_500), actions: &actions)
        XCTAssertEqual(actions, [.send(message(1), to: 7)])
        router.heartbeat(now: at(5_000), actions: &actions)
        XCTAssertFalse(router.isCached(1))
        actions.removeAll()
        router.receivedControl(.iWant([1]), from: 8, now: at(5_500), actions: &actions)
        XCTAssertEqual(actions, [])
    }

    func testTheCacheEvictsTheOldestMessagesPastItsByteLimit() {
        let limit = 3 * MessageCache.cost(of: message(1, bytes: 100))
        var cache = MessageCache(historyLength: 5, historyGossip: 3, maximumBytes: limit)
        for id in UInt64(1)...4 { cache.put(message(id, bytes: 100)) }
        XCTAssertEqual((1...4).map { cache.contains($0) }, [false, true, true, true])
        XCTAssertEqual(cache.cachedBytes, limit)
        cache.put(message(9, bytes: limit))
        XCTAssertFalse(cache.contains(9), "a message larger than the whole cache is not cached")
        XCTAssertEqual(cache.gossipIDs(), [4, 3, 2])
    }

    // MARK: Hostile peers

    func testAPeerThatAnnouncesTooManyIDsIsCappedPerHeartbeat() {
        var router = makeRouter(peers: 8) { $0.maximumIHaveLength = 10 }
        var actions: [Action] = []
        router.receivedControl(.iHave(Array(1...8)), from: 7, now: start, actions: &actions)
        router.receivedControl(.iHave(Array(11...18)), from: 7, now: start, actions: &actions)
        // 10 ids taken (6 over the budget), of which 5 pulled: a peer outside the mesh gets half
        // the pull table at most.
        XCTAssertEqual(actions, [.control(.iWant(Array(1...5)), to: 7)])
        XCTAssertEqual(router.statistics.iHaveIgnored, 6)
        XCTAssertEqual(router.statistics.pullsIgnored, 5)
        // The messages arrive (the pulls end, leaving room for more).
        for id in Array(UInt64(1)...8) + [11, 12] { _ = router.received(message(id), from: 7, now: start, actions: &actions) }
        XCTAssertEqual(router.pendingPullCount, 0)
        // Another peer has its own budget; the next heartbeat renews this one's.
        actions.removeAll()
        router.receivedControl(.iHave([21]), from: 8, now: start, actions: &actions)
        router.receivedControl(.iHave([22]), from: 7, now: start, actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([21]), to: 8)])
        router.heartbeat(now: at(1_000), actions: &actions)
        actions.removeAll()
        router.receivedControl(.iHave([22]), from: 7, now: at(1_000), actions: &actions)
        XCTAssertEqual(actions, [.control(.iWant([22]), to: 7)])
    }

    func testAPeerThatSendsTooManyIHavesIsCappedPerHeartbeat() {
        var router = makeRouter(peers: 8) { $0.maximumIHaveMessages = 2 }
        var actions: [Action] = []
        for id in UInt64(1)...4 { router.receivedControl(.iHave([id]), from: 7, now: start, actions: &actions) }
        XCTAssertEqual(actions, [.control(.iWant([1]), to: 7), .control(.iWant([2]), to: 7)])
        XCTAssertEqual(router.statistics.iHaveIgnored, 2)
        XCTAssertEqual(router.statistics.iHaveReceived.messages, 4)
    }

    func testPendingPullsAreBounded() {
        var router = makeRouter(peers: 8) { $0.maximumIHaveLength = 4 }
        var actions: [Action] = []
        router.receivedControl(.iHave([1, 2, 3, 4]), from: 7, now: start, actions: &actions)
        router.receivedControl(.iHave([5, 6, 7, 8]), from: 8, now: start, actions: &actions)
        // Peers outside the mesh share half the table; a mesh peer may fill the rest.
        XCTAssertEqual(actions, [.control(.iWant([1, 2]), to: 7)])
        router.receivedControl(.iHave([9, 10, 11]), from: 1, now: start, actions: &actions)
        XCTAssertEqual(router.pendingPullCount, 4)
        XCTAssertEqual(router.statistics.pullsIgnored, 7)
    }

    func testAnIWantFloodForUncachedIDsSendsNothing() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        for round in UInt64(0)..<20 {
            router.receivedControl(.iWant(Array(round * 5000 + 1...round * 5000 + 5000)), from: 7, now: start, actions: &actions)
        }
        XCTAssertEqual(actions, [])
        XCTAssertEqual(router.statistics.iWantIgnored, 100_000)
    }

    func testAnIDontWantFloodIsBoundedPerPeerAndExpiresWithTheCache() {
        var router = makeRouter(peers: 8) { $0.maximumIDontWantIDs = 10 }
        var actions: [Action] = []
        router.receivedControl(.iDontWant(Array(1...100)), from: 7, now: start, actions: &actions)
        XCTAssertEqual(router.rememberedIDCount(for: 7), 10)
        for second in 1...4 { router.heartbeat(now: at(Int64(second) * 1_000), actions: &actions) }
        XCTAssertEqual(router.rememberedIDCount(for: 7), 10)
        router.heartbeat(now: at(5_000), actions: &actions)
        XCTAssertEqual(router.rememberedIDCount(for: 7), 0)
    }

    func testControlMessagesFromUnknownPeersAreIgnored() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        for control in [GossipControl.graft, .iHave([5]), .iWant([5]), .choke, .prune(backoff: .seconds(1))] {
            router.receivedControl(control, from: 99, now: start, actions: &actions)
        }
        XCTAssertEqual(actions, [])
        XCTAssertFalse(router.isInMesh(99))
        XCTAssertFalse(router.isPulling(5))
        XCTAssertEqual(router.statistics.controlsFromUnknownPeers, 5)
        XCTAssertEqual(router.statistics.graftReceived.messages, 0)
    }

    func testAMessageWithIDZeroIsDropped() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        XCTAssertFalse(router.received(message(0), from: 1, now: start, actions: &actions))
        router.publish(message(0), now: start, actions: &actions)
        XCTAssertEqual(actions, [])
        XCTAssertEqual(router.statistics.messagesWithoutID, 1)
    }

    func testAPeerThatLeavesLeavesNothingBehind() {
        var router = makeRouter(peers: 8)
        var actions: [Action] = []
        router.receivedControl(.iHave([5]), from: 7, now: start, actions: &actions)
        router.receivedControl(.iDontWant([6]), from: 7, now: start, actions: &actions)
        router.receivedControl(.choke, from: 1, now: start, actions: &actions)
        router.receivedControl(.prune(backoff: .seconds(60)), from: 2, now: start, actions: &actions)
        for peer in [1, 2, 7] { router.peerDisconnected(peer) }
        XCTAssertFalse(router.isPulling(5))
        XCTAssertEqual(router.connectedPeers, [3, 4, 5, 6, 8])
        for peer in [1, 2, 7] {
            actions.removeAll()
            router.peerConnected(peer, now: start, actions: &actions)
            XCTAssertEqual(router.rememberedIDCount(for: peer), 0)
            XCTAssertFalse(router.hasChokedUs(peer))
            XCTAssertFalse(router.isBackingOff(peer, now: start))
        }
        XCTAssertEqual(router.mesh, [1, 2, 3, 4, 5, 6], "2 no longer backs off")
    }

    func testRandomHostileTrafficKeepsEveryBound() {
        let limits = parameters {
            $0.maximumIHaveLength = 50
            $0.maximumIDontWantIDs = 20
            $0.maximumCachedBytes = 4_000
            $0.gossipRetransmission = 2
        }
        var router = Router(parameters: limits, seed: 11, seenCapacity: 100)
        var random = MessageIDGenerator(seed: 12)
        var actions: [Action] = []
        var now = start
        for step in 0..<20_000 {
            now = now + .milliseconds(Int64.random(in: 0...20, using: &random))
            let peer = Int.random(in: 1...12, using: &random)
            randomEvent(on: &router, from: peer, now: now, random: &random, actions: &actions)
            if actions.count > 10_000 { actions.removeAll(keepingCapacity: true) }
            if step % 100 == 0 {
                XCTAssertLessThanOrEqual(router.pendingPullCount, 50)
                XCTAssertLessThanOrEqual(router.scheduledTimerCount, 2 * router.pendingPullCount + 64)
                XCTAssertLessThanOrEqual(router.cachedBytes, 4_000)
                XCTAssertEqual(router.mesh, router.connectedPeers.filter { router.isInMesh($0) })
                for peer in router.connectedPeers { XCTAssertLessThanOrEqual(router.rememberedIDCount(for: peer), 20) }
                if let deadline = router.nextDeadline { XCTAssertTrue(router.pendingPullCount > 0, "\(deadline)") }
            }
        }
        XCTAssertGreaterThan(router.statistics.messagesReceived, 100)
        XCTAssertGreaterThan(router.statistics.iHaveIgnored + router.statistics.pullsIgnored, 0)
    }

    func testRandomControlEnvelopesParseOrThrowAndRoundTrip() throws {
        var random = MessageIDGenerator(seed: 13)
        let operations = ["\u{0}ihave", "\u{0}iwant", "\u{0}idontwant", "\u{0}graft", "\u{0}prune", "\u{0}choke", "\u{0}unchoke"]
        var limits = GossipParameters()
        limits.maximumIHaveLength = 4
        var parsed = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...40, using: &random)
            // Mostly zero bytes, so that id 0 and short lists come up often.
            let bytes = (0..<length).map { _ in random.next() % 4 == 0 ? UInt8(truncatingIfNeeded: random.next()) : 0 }
            let operation = operations[Int.random(in: 0..<operations.count, using: &random)]
            let data: ByteBuffer? = random.next() % 8 == 0 ? nil : ByteBuffer(bytes: bytes)
            guard let control = try? GossipControl.parse(Envelope(name: "n", operation: operation, data: data), limits: limits) else {
                continue
            }
            parsed += 1
            XCTAssertEqual(try GossipControl.parse(control.envelope(from: "n"), limits: limits), control)
        }
        XCTAssertGreaterThan(parsed, 1_000)
    }

    /// One random thing happening to `router` from `peer`: a connection change, a message, a
    /// control message with ids from a small range (so that they collide), a heartbeat or timers.
    private func randomEvent(
        on router: inout Router, from peer: Int, now: Deadline, random: inout MessageIDGenerator, actions: inout [Action]
    ) {
        func ids() -> [UInt64] {
            (0..<Int.random(in: 0...60, using: &random)).map { _ in UInt64.random(in: 1...300, using: &random) }
        }
        switch Int.random(in: 0..<14, using: &random) {
        case 0: router.peerConnected(peer, now: now, actions: &actions)
        case 1: if random.next() % 4 == 0 { router.peerDisconnected(peer) }
        case 2, 3:
            let id = UInt64.random(in: 0...300, using: &random)
            _ = router.received(message(id, bytes: Int.random(in: 0...1500, using: &random)), from: peer, now: now, actions: &actions)
        case 4: router.publish(message(UInt64.random(in: 1...300, using: &random)), now: now, actions: &actions)
        case 5: router.receivedControl(.iHave(ids()), from: peer, now: now, actions: &actions)
        case 6: router.receivedControl(.iWant(ids()), from: peer, now: now, actions: &actions)
        case 7: router.receivedControl(.iDontWant(ids()), from: peer, now: now, actions: &actions)
        case 8: router.receivedControl(.graft, from: peer, now: now, actions: &actions)
        case 9: router.receivedControl(.prune(backoff: .seconds(Int64.random(in: 0...5, using: &random))), from: peer, now: now, actions: &actions)
        case 10: router.receivedControl(random.next() % 2 == 0 ? .choke : .unchoke, from: peer, now: now, actions: &actions)
        case 11: router.heartbeat(now: now, actions: &actions)
        default: router.expireTimers(now: now, actions: &actions)
        }
    }

    // MARK: Determinism

    func testTheSameSeedGivesTheSameActions() {
        let first = scriptedRun(seed: 7)
        XCTAssertEqual(first, scriptedRun(seed: 7))
        XCTAssertGreaterThan(first.count, 40)
        let others = (8...11).map { scriptedRun(seed: UInt64($0)) }
        XCTAssertTrue(others.contains { $0 != first }, "the seed drives the random choices")
    }

    /// A run with random choices in every heartbeat: grafts below D_lo, prunes above D_hi,
    /// fanout, and IHAVE to a subset of the peers outside the mesh.
    private func scriptedRun(seed: UInt64) -> [Action] {
        var router = Router(parameters: parameters { $0.gossipDegree = 3 }, seed: seed, seenCapacity: 100)
        var actions: [Action] = []
        for peer in 1...30 { router.peerConnected(peer, now: start, actions: &actions) }
        for peer in 1...30 { router.receivedControl(.prune(backoff: .zero), from: peer, now: start, actions: &actions) }
        router.publish(message(1), now: start, actions: &actions)
        for second in 1...5 {
            let now = at(Int64(second) * 1_000)
            router.publish(message(UInt64(second) + 1), now: now, actions: &actions)
            router.heartbeat(now: now + .seconds(60), actions: &actions)
            for peer in 10...25 { router.graftExplicitly(peer, now: now, actions: &actions) }
        }
        return actions
    }

    // MARK: A network of routers

    func testEveryRouterOfANetworkReceivesEveryMessageExactlyOnceAsNew() {
        var network = GossipNetwork(nodes: 30, seed: 3, parameters: GossipParameters(), start: start)
        let report = network.broadcast(messages: 20, dataBytes: 100)
        XCTAssertEqual(report.missing, 0, "every router receives every message")
        XCTAssertEqual(report.deliveredTwice, 0, "no router delivers a message twice")
        XCTAssertEqual(report.parseFailures, 0)
        XCTAssertEqual(report.inconsistentMeshes, 0)
        XCTAssertGreaterThan(report.duplicates, 0, "a mesh of degree 6 does send duplicates")
    }

    func testEveryRouterReceivesLargeMessagesToo() {
        var network = GossipNetwork(nodes: 30, seed: 4, parameters: GossipParameters(), start: start)
        let report = network.broadcast(messages: 10, dataBytes: 4096)
        XCTAssertEqual(report.missing, 0)
        XCTAssertEqual(report.deliveredTwice, 0)
        XCTAssertGreaterThan(network.total(\.iDontWantSent.messages), 0)
    }

    func testChokingCutsDuplicatesOnceTheFirstMessagesHavePassed() {
        var unchoked = GossipParameters()
        unchoked.choking = false
        var plain = GossipNetwork(nodes: 30, seed: 5, parameters: unchoked, start: start)
        let plainReport = plain.broadcast(messages: 40, dataBytes: 100)
        var choking = GossipNetwork(nodes: 30, seed: 5, parameters: GossipParameters(), start: start)
        let chokingReport = choking.broadcast(messages: 40, dataBytes: 100)
        XCTAssertEqual(plainReport.missing, 0)
        XCTAssertEqual(chokingReport.missing, 0)
        XCTAssertEqual(chokingReport.deliveredTwice, 0)
        print(
            "gossip, 30 routers: duplicates per message over the last 20 messages: "
                + "\(plainReport.lateDuplicatesPerMessage) without choking, \(chokingReport.lateDuplicatesPerMessage) with; "
                + "delay mean/max \(plainReport.lateMeanDelay)/\(plainReport.lateMaximumDelay) ms without, "
                + "\(chokingReport.lateMeanDelay)/\(chokingReport.lateMaximumDelay) ms with; "
                + "chokes sent \(choking.total(\.chokeSent.messages)), unchokes \(choking.total(\.unchokeSent.messages)), "
                + "pulls failed \(choking.total(\.pullsFailed))")
        XCTAssertGreaterThan(choking.total(\.chokeSent.messages), 0)
        XCTAssertLessThan(chokingReport.lateDuplicatesPerMessage, 0.75 * plainReport.lateDuplicatesPerMessage)
        // Lazy pulls cost time, but every message still reaches every router within a second.
        XCTAssertLessThan(chokingReport.lateMaximumDelay, 1_000)
    }

    // MARK: Helpers

    private func at(_ milliseconds: Int64) -> Deadline { start + .milliseconds(milliseconds) }

    /// The mechanics tests start from gossipsub's all-eager mesh, with a 60 ms lazy delay and no
    /// swaps; the proximity-aware start and Plumtree's swap have tests of their own.
    private func parameters(_ configure: (inout GossipParameters) -> Void = { _ in }) -> GossipParameters {
        var parameters = GossipParameters()
        parameters.initialUnchokedPeers = parameters.meshDegreeHigh
        parameters.lazyPullDelay = .milliseconds(60)
        parameters.swapThreshold = .seconds(3600)
        configure(&parameters)
        return parameters
    }

    /// A router with peers 1...`peers` connected at `start` (1...6 in the mesh), no actions kept.
    private func makeRouter(peers: Int = 0, seed: UInt64 = 1, _ configure: (inout GossipParameters) -> Void = { _ in }) -> Router {
        var router = Router(parameters: parameters(configure), seed: seed, seenCapacity: 1000)
        var actions: [Action] = []
        for peer in stride(from: 1, through: peers, by: 1) { router.peerConnected(peer, now: start, actions: &actions) }
        return router
    }

    /// A router with 8 peers that choked mesh peer 2 (its copy of message 1 came second).
    private func makeChokingRouter(_ configure: (inout GossipParameters) -> Void = { _ in }) -> Router {
        var router = makeRouter(peers: 8, configure)
        var actions: [Action] = []
        _ = router.received(message(1), from: 1, now: start, actions: &actions)
        _ = router.received(message(1), from: 2, now: start, actions: &actions)
        XCTAssertTrue(router.isChokedByUs(2))
        return router
    }

    /// A broadcast `id` with `bytes` bytes of data.
    private func message(_ id: UInt64, bytes: Int = 0, hopLimit: UInt8 = 8, correlationID: UInt64 = 0) -> Envelope {
        Envelope(
            name: "origin", operation: "news", data: ByteBuffer(repeating: 0x2A, count: bytes),
            messageID: id, correlationID: correlationID, hopLimit: hopLimit)
    }

    private func sentPeers(_ actions: [Action]) -> [Int] {
        actions.compactMap { action in
            guard case .send(_, let peer) = action else { return nil }
            return peer
        }
    }
}

/// Routers wired together in virtual time: each link has a latency, every send becomes a delivery
/// on a small priority queue, and every control message goes through its envelope encoding.
private struct GossipNetwork {
    typealias Router = GossipRouter<Int>

    /// What a broadcast run saw.
    struct Report {
        /// (message, router) pairs where the router never received the message.
        var missing = 0
        /// (message, router) pairs where `received` returned true more than once.
        var deliveredTwice = 0
        /// Full copies received that were duplicates.
        var duplicates = 0
        /// Duplicates per message over the second half of the messages.
        var lateDuplicatesPerMessage = 0.0
        /// Control envelopes that did not parse.
        var parseFailures = 0
        /// Routers whose mesh list disagrees with their peers' mesh flags.
        var inconsistentMeshes = 0
        /// The mean and the longest time from a publication to a router's first copy, in
        /// milliseconds of virtual time, over the second half of the messages.
        var lateMeanDelay = 0.0
        var lateMaximumDelay = 0.0
    }

    private enum Event {
        case message(Envelope, from: Int, to: Int)
        case control(Envelope, from: Int, to: Int)
        case heartbeat(Int)
    }

    private struct Scheduled {
        var time: Deadline
        var sequence: UInt64
        var event: Event

        func precedes(_ other: Scheduled) -> Bool { (time, sequence) < (other.time, other.sequence) }
    }

    private(set) var routers: [Router] = []
    private var latency: [[Int: TimeAmount]]
    private var queue: [Scheduled] = []
    private var sequence: UInt64 = 0
    private var now: Deadline
    private var random: MessageIDGenerator
    private let parameters: GossipParameters
    private var actions: [GossipAction<Int>] = []
    /// Per message id: how many times each router took it as new, and the duplicates.
    private var newCounts: [UInt64: [Int]] = [:]
    private var duplicates: [UInt64: Int] = [:]
    private var published: [UInt64: Deadline] = [:]
    private var delays: [UInt64: [TimeAmount]] = [:]
    private var parseFailures = 0

    /// `nodes` routers on a ring with three random chords per node (so about 8 links each),
    /// latencies from 5 to 50 ms, all drawn from `seed`.
    init(nodes: Int, seed: UInt64, parameters: GossipParameters, start: Deadline) {
        self.parameters = parameters
        now = start
        random = MessageIDGenerator(seed: seed)
        latency = Array(repeating: [:], count: nodes)
        routers = (0..<nodes).map { Router(parameters: parameters, seed: seed &+ UInt64($0), seenCapacity: 10_000) }
        var links: [(Int, Int)] = (0..<nodes).map { ($0, ($0 + 1) % nodes) }
        for node in 0..<nodes {
            for _ in 0..<3 {
                let other = Int.random(in: 0..<nodes, using: &random)
                if other != node { links.append((node, other)) }
            }
        }
        for (a, b) in links where latency[a][b] == nil {
            let delay = TimeAmount.milliseconds(Int64.random(in: 5...50, using: &random))
            latency[a][b] = delay
            latency[b][a] = delay
            connect(a, b)
            connect(b, a)
        }
        for node in 0..<nodes {
            schedule(.heartbeat(node), at: start + .milliseconds(Int64.random(in: 0..<1_000, using: &random)))
        }
    }

    /// Runs the network for 3 s (the mesh settles), then publishes `messages` messages from
    /// random routers, one every 250 ms, and runs until 10 s after the last.
    mutating func broadcast(messages: Int, dataBytes: Int) -> Report {
        run(until: now + .seconds(3))
        var ids: [(id: UInt64, origin: Int)] = []
        for index in 0..<messages {
            let origin = Int.random(in: 0..<routers.count, using: &random)
            let id = UInt64(index + 1)
            ids.append((id, origin))
            newCounts[id] = Array(repeating: 0, count: routers.count)
            newCounts[id]?[origin] = 1
            published[id] = now
            let envelope = Envelope(
                name: "n\(origin)", operation: "news", data: ByteBuffer(repeating: 1, count: dataBytes),
                messageID: id, hopLimit: 16)
            routers[origin].publish(envelope, now: now, actions: &actions)
            perform(from: origin)
            run(until: now + .milliseconds(250))
        }
        run(until: now + .seconds(10))
        var report = Report(parseFailures: parseFailures)
        report.inconsistentMeshes = routers.filter { router in
            router.mesh != router.connectedPeers.filter { router.isInMesh($0) }
        }.count
        for (id, _) in ids {
            let counts = newCounts[id] ?? []
            report.missing += counts.filter { $0 == 0 }.count
            report.deliveredTwice += counts.filter { $0 > 1 }.count
            report.duplicates += duplicates[id, default: 0]
        }
        let late = ids.suffix(messages / 2)
        let lateDuplicates = late.reduce(0) { $0 + duplicates[$1.id, default: 0] }
        report.lateDuplicatesPerMessage = Double(lateDuplicates) / Double(max(1, late.count))
        let lateDelays = late.flatMap { delays[$0.id] ?? [] }.map { Double($0.nanoseconds) / 1e6 }
        report.lateMeanDelay = (lateDelays.reduce(0, +) / Double(max(1, lateDelays.count))).rounded()
        report.lateMaximumDelay = lateDelays.max() ?? 0
        return report
    }

    /// The sum of one statistic over the routers.
    func total(_ statistic: KeyPath<GossipStatistics, Int>) -> Int {
        routers.reduce(0) { $0 + $1.statistics[keyPath: statistic] }
    }

    private mutating func connect(_ node: Int, _ peer: Int) {
        routers[node].peerConnected(peer, now: now, actions: &actions)
        perform(from: node)
    }

    /// Delivers events and fires timers in time order up to `end`.
    private mutating func run(until end: Deadline) {
        while true {
            let timer = routers.compactMap(\.nextDeadline).min()
            let next = queue.first?.time
            guard let time = [timer, next].compactMap({ $0 }).min(), time <= end else { break }
            now = max(now, time)
            if let timer, timer == time {
                for node in routers.indices where (routers[node].nextDeadline ?? .distantFuture) <= now {
                    routers[node].expireTimers(now: now, actions: &actions)
                    perform(from: node)
                }
                continue
            }
            handle(pop().event)
        }
        now = max(now, end)
    }

    private mutating func handle(_ event: Event) {
        switch event {
        case .heartbeat(let node):
            routers[node].heartbeat(now: now, actions: &actions)
            perform(from: node)
            schedule(.heartbeat(node), at: now + parameters.heartbeatInterval)
        case .message(let envelope, let from, let to):
            if routers[to].received(envelope, from: from, now: now, actions: &actions) {
                newCounts[envelope.messageID]?[to] += 1
                if let time = published[envelope.messageID] { delays[envelope.messageID, default: []].append(now - time) }
            } else {
                duplicates[envelope.messageID, default: 0] += 1
            }
            perform(from: to)
        case .control(let envelope, let from, let to):
            guard let control = try? GossipControl.parse(envelope, limits: parameters) else {
                parseFailures += 1
                return
            }
            routers[to].receivedControl(control, from: from, now: now, actions: &actions)
            perform(from: to)
        }
    }

    /// Turns the actions `node`'s router asked for into deliveries.
    private mutating func perform(from node: Int) {
        let pending = actions
        actions.removeAll(keepingCapacity: true)
        for action in pending {
            switch action {
            case .send(let envelope, let peer):
                schedule(.message(envelope, from: node, to: peer), at: now + delay(node, peer))
            case .control(let control, let peer):
                schedule(.control(control.envelope(from: "n\(node)"), from: node, to: peer), at: now + delay(node, peer))
            }
        }
    }

    private func delay(_ a: Int, _ b: Int) -> TimeAmount { latency[a][b] ?? .milliseconds(50) }

    // A binary min-heap on (time, sequence): FIFO among events due at the same time.

    private mutating func schedule(_ event: Event, at time: Deadline) {
        queue.append(Scheduled(time: time, sequence: sequence, event: event))
        sequence += 1
        var child = queue.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard queue[child].precedes(queue[parent]) else { break }
            queue.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func pop() -> Scheduled {
        let top = queue[0]
        let last = queue.removeLast()
        guard !queue.isEmpty else { return top }
        queue[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < queue.count, queue[left].precedes(queue[smallest]) { smallest = left }
            if right < queue.count, queue[right].precedes(queue[smallest]) { smallest = right }
            guard smallest != parent else { return top }
            queue.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
