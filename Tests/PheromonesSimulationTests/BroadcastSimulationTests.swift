import Pheromones
import PheromonesP2P
@testable import PheromonesSimulation
import XCTest

/// Simulations of 200 real nodes in both modes, with and without failing links: coverage,
/// exactly-once delivery and the duplicate bounds (the goals, on a network small enough
/// for `swift test`).
final class BroadcastSimulationTests: XCTestCase {
    private func run(_ mode: BroadcastMode, nodes: Int = 200, dropLinks: Double = 0, seed: UInt64 = 1) throws -> SimulationReport {
        try BroadcastSimulation(settings: SimulationSettings(nodes: nodes, degree: 8, mode: mode, messages: 10, seed: seed, dropLinks: dropLinks)).run()
    }

    func testFloodingReachesEveryNodeExactlyOnceWithAtMostDegreeMinusOneDuplicates() throws {
        let report = try run(.flood)
        XCTAssertEqual(report.coverage, 1)
        XCTAssertTrue(report.exactlyOnce)
        XCTAssertTrue(report.duplicatesWithinDegreeBound, "\(report.maximumDuplicatesPerNode) duplicates at one node")
        XCTAssertGreaterThan(report.duplicateShare, 0.7, "flooding on degree 8 sends most nodes one copy per link")
    }

    func testFloodingKeepsFullCoverageWhenATenthOfTheLinksFailMidway() throws {
        let report = try run(.flood, dropLinks: 0.1)
        XCTAssertEqual(report.droppedLinks, Int((Double(report.links) * 0.1).rounded()))
        XCTAssertEqual(report.coverage, 1)
        XCTAssertTrue(report.exactlyOnce)
    }

    func testGossipReachesEveryNodeExactlyOnceWithFewDuplicates() throws {
        let report = try run(.gossip)
        XCTAssertEqual(report.coverage, 1)
        XCTAssertTrue(report.exactlyOnce)
        XCTAssertLessThanOrEqual(report.duplicateShare, 0.30)
        XCTAssertGreaterThan(report.iHaveBytesPerNode, 0, "gossip announces what it has")
    }

    func testGossipKeepsFullCoverageWhenATenthOfTheLinksFailMidway() throws {
        let report = try run(.gossip, dropLinks: 0.1)
        XCTAssertEqual(report.coverage, 1)
        XCTAssertTrue(report.exactlyOnce)
        XCTAssertLessThanOrEqual(report.duplicateShare, 0.30)
    }

    func testGossipCostsAFifthOfFloodingsCopiesAndStaysWithinThreeTimesItsDelay() throws {
        // The goal is 2x; the simulations measure 2.0-2.5x at 200-1,000 nodes (see
        // Docs/Broadcast.md). This guards against a regression, not the goal.
        let flood = try run(.flood, seed: 3)
        let gossip = try run(.gossip, seed: 3)
        XCTAssertLessThan(gossip.copiesReceivedPerNode, flood.copiesReceivedPerNode / 5)
        XCTAssertLessThanOrEqual(gossip.deliveryP99Milliseconds, 3 * flood.deliveryP99Milliseconds)
    }

    func testGossipWithoutChokingIsGossipsubWithItsDuplicatesAndFloodingsSpeed() throws {
        var parameters = GossipParameters()
        parameters.choking = false
        let flood = try run(.flood, seed: 4)
        let gossipsub = try run(.gossip(parameters), seed: 4)
        XCTAssertTrue(gossipsub.isComplete)
        XCTAssertGreaterThan(gossipsub.duplicateShare, 0.7, "an eager mesh of 6 sends most nodes several copies")
        XCTAssertLessThanOrEqual(gossipsub.deliveryP99Milliseconds, 1.3 * flood.deliveryP99Milliseconds)
    }

    func testGossipDeliversABurstOfBroadcastsEverywhereExactlyOnce() throws {
        // 30 broadcasts 5 ms apart: each lazy link carries more announcements in a heartbeat than
        // gossip takes from a peer outside its mesh, and every one must still be pulled.
        for mode in [BroadcastMode.gossip, .flood] {
            let report = try BroadcastSimulation(settings: SimulationSettings(
                nodes: 200, degree: 8, mode: mode, messages: 30, seed: 1, interval: .milliseconds(5))).run()
            XCTAssertEqual(report.coverage, 1, "\(report.mode)")
            XCTAssertTrue(report.exactlyOnce, "\(report.mode)")
        }
    }

    func testANetworkBootstrappedFromOneSeedByPeerExchangeReachesItsTargetAndCarriesBroadcasts() throws {
        for mode in [BroadcastMode.flood, .gossip] {
            let report = try BroadcastSimulation(settings: SimulationSettings(
                nodes: 200, mode: mode, messages: 5, seed: 2, peerExchangeTarget: 6)).run()
            XCTAssertGreaterThanOrEqual(report.fewestConnections, 6, "every node found its target from the seed alone")
            XCTAssertEqual(report.coverage, 1)
            XCTAssertTrue(report.exactlyOnce)
        }
    }

    func testTheSameSeedGivesTheSameRun() throws {
        for mode in [BroadcastMode.flood, .gossip] {
            var first = try run(mode, nodes: 60, dropLinks: 0.1, seed: 9)
            var second = try run(mode, nodes: 60, dropLinks: 0.1, seed: 9)
            first.wallSeconds = 0
            second.wallSeconds = 0
            XCTAssertEqual(first, second)
        }
    }

    func testTheGraphIsConnectedOfAboutTheDegreeAndStaysConnectedWithoutItsRemovableEdges() {
        var random = SplitMix64(seed: 5)
        let graph = RandomGraph(nodeCount: 500, degree: 8, random: &random)
        XCTAssertGreaterThan(graph.averageDegree, 7.5)
        XCTAssertLessThanOrEqual(graph.neighbours.map(\.count).max() ?? 0, 8)
        XCTAssertTrue(graph.isConnected())
        XCTAssertTrue(graph.isConnected(without: Set(graph.removableEdges)))
        XCTAssertFalse(graph.isConnected(without: Set(graph.edges.indices)))
    }
}
