import Pheromones
import PheromonesP2P
import XCTest

/// One node holding many persistent peers on its one loop: the point of an event loop (the
/// original runs a goroutine per connection).
final class ScaleTests: XCTestCase {
    func testOneNodeHoldsFiveHundredPersistentPeersOnOneLoopAndCompletesAConversationWithEach() async throws {
        let peerCount = 500
        try ensureDescriptorLimit(atLeast: 4 * peerCount + 512)
        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.next()
        let hub = try await ExampleNode.start("hub", .persistent, .native, group: group) { $0.replyTimeout = .seconds(20) }

        let peers = try await within(60, on: loop, "starting the peers") {
            try await withThrowingTaskGroup(of: ExampleNode.self) { tasks in
                for index in 0..<peerCount {
                    tasks.addTask { try await ExampleNode.start("peer\(index)", .persistent, .native, group: group) }
                }
                return try await tasks.reduce(into: []) { $0.append($1) }
            }
        }
        try await within(60, on: loop, "adding the peers") {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for peer in peers { tasks.addTask { try await hub.node.add(peer: peer.name, address: peer.address) } }
                try await tasks.waitForAll()
            }
        }
        let open = await hub.node.openConnectionCount
        XCTAssertEqual(open, peerCount)
        let routes = await hub.node.peers
        XCTAssertEqual(routes.count, peerCount)
        XCTAssertTrue(routes.allSatisfy(\.isConnected))

        let summaries = try await within(60, on: loop, "the conversations") {
            try await withThrowingTaskGroup(of: ConversationSummary.self) { tasks in
                for peer in peers {
                    tasks.addTask { try await hub.node.converse(with: peer.address, starting: hub.hello) }
                }
                return try await tasks.reduce(into: []) { $0.append($1) }
            }
        }
        XCTAssertEqual(summaries.count, peerCount)
        XCTAssertTrue(summaries.allSatisfy { $0.transcript == exampleTranscript })
        XCTAssertEqual(Set(summaries.map(\.peer.address)), Set(peers.map(\.address)))
        try await hub.waitForFinishedConversations(peerCount, within: 30)

        await hub.node.shutdown()
        for peer in peers { await peer.node.shutdown() }
        try await group.shutdownGracefully()
    }
}
