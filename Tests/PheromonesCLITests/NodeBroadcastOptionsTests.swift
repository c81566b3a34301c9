import ArgumentParser
import Foundation
import Logging
import Pheromones
import PheromonesP2P
import XCTest
import PheromonesTestSupport

@testable import PheromonesCLI

/// The options and commands that let a script drive `pheromones node` (Tests/MultiHost/run.sh):
/// the broadcast mode, reconnect and keepalive timing and the seed reach the node's
/// configuration; `broadcast --hop-limit` sends through the mesh and every node it reaches prints
/// one parseable `delivered broadcast` line; `stats` and `peers` end with a parseable line.
final class NodeBroadcastOptionsTests: XCTestCase {
    private func configuration(_ options: [String]) throws -> Node.Configuration {
        let parsed = try PheromonesCommand.parseAsRoot(["node", "--name", "a", "--listen", "127.0.0.1:0"] + options)
        let command = try XCTUnwrap(parsed as? NodeCommand)
        return try command.makeConfiguration(logger: Logger(label: "test"), observer: { _ in })
    }

    func testTheOptionsReachTheNodesConfiguration() throws {
        let configuration = try configuration([
            "--broadcast", "gossip", "--reconnect-delay", "0.2", "--maximum-reconnect-delay", "1.5",
            "--keepalive-interval", "0.5", "--keepalive-timeout", "2", "--seed", "42",
        ])
        XCTAssertEqual(configuration.broadcast, .gossip)
        XCTAssertEqual(configuration.reconnectDelay, .milliseconds(200))
        XCTAssertEqual(configuration.maximumReconnectDelay, .milliseconds(1500))
        XCTAssertEqual(configuration.keepaliveInterval, .milliseconds(500))
        XCTAssertEqual(configuration.keepaliveTimeout, .seconds(2))
        XCTAssertEqual(configuration.randomSeed, 42)
    }

    func testWithoutTheOptionsTheNodeKeepsTheLibrarysDefaults() throws {
        let configuration = try configuration([])
        let defaults = Node.Configuration(name: "a")
        XCTAssertEqual(configuration.broadcast, .flood)
        XCTAssertEqual(configuration.reconnectDelay, defaults.reconnectDelay)
        XCTAssertEqual(configuration.maximumReconnectDelay, defaults.maximumReconnectDelay)
        XCTAssertEqual(configuration.keepaliveInterval, defaults.keepaliveInterval)
        XCTAssertEqual(configuration.keepaliveTimeout, defaults.keepaliveTimeout)
        XCTAssertNil(configuration.randomSeed)
    }

    func testAnUnknownModeOrADurationThatIsNotAFewSecondsIsAUsageErrorWithAMessage() {
        let invalid: [[String]] = [
            ["--broadcast", "carrier-pigeon"], ["--reconnect-delay", "-1"], ["--reconnect-delay", "nan"],
            ["--maximum-reconnect-delay", "inf"], ["--keepalive-interval", "1e300"], ["--keepalive-timeout", "86401"],
            ["--seed", "-3"],
        ]
        for options in invalid {
            let arguments = ["node", "--name", "a", "--listen", "127.0.0.1:0"] + options
            do {
                _ = try PheromonesCommand.parseAsRoot(arguments)
                XCTFail("\(arguments) was accepted")
            } catch {
                XCTAssertEqual(PheromonesCommand.exitCode(for: error), .validationFailure, "\(arguments): \(error)")
                XCTAssertFalse(PheromonesCommand.message(for: error).isEmpty, "\(arguments)")
            }
        }
    }

    func testTheHopLimitIsReadInBothSpellingsAndOnlyFromOneTo255() {
        XCTAssertEqual(NodeSession.parseHopLimit(["--hop-limit", "3", "op", "data"]).map { $0.0 }, 3)
        XCTAssertEqual(NodeSession.parseHopLimit(["--hop-limit", "3", "op", "data"]).map { $0.1 }, ["op", "data"])
        XCTAssertEqual(NodeSession.parseHopLimit(["--hop-limit=255", "op"]).map { $0.0 }, 255)
        XCTAssertEqual(NodeSession.parseHopLimit(["--hop-limit=255", "op"]).map { $0.1 }, ["op"])
        for invalid in [["--hop-limit", "0", "op"], ["--hop-limit", "256", "op"], ["--hop-limit", "x", "op"], ["--hop-limit"],
                        ["--hop-limit=", "op"], ["--hop-limit=-1", "op"], ["--hop-limits", "3", "op"], []] {
            XCTAssertNil(NodeSession.parseHopLimit(invalid), "\(invalid)")
        }
    }

    func testTheDeliveredLineNamesTheIDInSixteenHexDigitsAndEscapesWhatThePeerChose() {
        var message = Envelope(name: "evil\u{1B}[31m", operation: "op\n", data: ByteBuffer(bytes: [0x68, 0x69, 0x0D, 0xFF]))
        message.messageID = 0xAB
        message.hopLimit = 7
        let line = NodeCommand.deliveredLine(message)
        XCTAssertEqual(line, "delivered broadcast id=00000000000000ab from=\("evil\u{1B}[31m".escapedForTerminal) hop-limit=7 "
                       + "op=\("op\n".escapedForTerminal) data=\("hi\r\u{FFFD}".escapedForTerminal)")
        XCTAssertFalse(line.unicodeScalars.contains { $0.properties.generalCategory == .control }, line)
    }

    func testTheCountersLineHasEveryFigureAsKeyEqualsValue() {
        var statistics = NodeStatistics()
        statistics.duplicatesDropped = 5
        statistics.peersDown = 2
        statistics.reconnects = 3
        statistics.keepaliveTimeouts = 1
        statistics.broadcastCopiesReceived = 9
        statistics.gossip.iWantSent = 4
        statistics.gossip.pullsFailed = 6
        let line = NodeSession.counters(statistics)
        XCTAssertTrue(line.hasPrefix("counters "), line)
        let pairs = line.dropFirst("counters ".count).split(separator: " ")
        XCTAssertEqual(pairs.count, 35, line)
        XCTAssertEqual(Set(pairs.map { $0.prefix { $0 != "=" } }).count, pairs.count, "a name appears twice: \(line)")
        for expected in ["duplicates-dropped=5", "peers-down=2", "reconnects=3", "keepalive-timeouts=1", "delivered=0", "peers-up=0",
                         "broadcast-copies-received=9", "gossip-iwant-sent=4", "gossip-pulls-failed=6", "gossip-chokes=0"] {
            XCTAssertTrue(pairs.contains(Substring(expected)), "\(expected) in \(line)")
        }
    }

    /// a - b - c in a line: a broadcast from a reaches c through b, with its hop limit decreased
    /// on the way, each node prints it once, and b counts the copy it forwarded.
    func testABroadcastWithAHopLimitTravelsThroughTheMeshAndEachNodeReportsItOnce() throws {
        let inputs = (0..<3).map { _ in Pipe() }
        var nodes: [ChildProcess] = []
        var ports: [Int] = []
        for (index, name) in ["a", "b", "c"].enumerated() {
            let node = try ChildProcess(["node", "--name", name, "--listen", "127.0.0.1:0", "--seed", "\(index + 1)"],
                                        standardInput: inputs[index])
            addTeardownBlock { node.stop() }
            let port = try XCTUnwrap(NodeSignalTests.port(in: try node.waitForOutput(containing: "\(name) listens on")))
            nodes.append(node)
            ports.append(port)
        }
        func say(_ line: String, to index: Int) { inputs[index].fileHandleForWriting.write(Data("\(line)\n".utf8)) }
        say("add b 127.0.0.1:\(ports[1])", to: 0)
        try nodes[0].waitForOutput(containing: "added b at")
        say("add b 127.0.0.1:\(ports[1])", to: 2)
        try nodes[2].waitForOutput(containing: "added b at")
        say("peers", to: 1)
        try nodes[1].waitForOutput(containing: "peers: connected 2 of 2")

        say("broadcast --hop-limit 4 noticereq hello-mesh", to: 0)
        try nodes[0].waitForOutput(containing: "broadcast noticereq hello-mesh sent to 1 peers (hop limit 4)")
        try nodes[2].waitForOutput(containing: "from=a hop-limit=3 op=noticereq data=hello-mesh")
        try nodes[1].waitForOutput(containing: "from=a hop-limit=4 op=noticereq data=hello-mesh")
        say("stats", to: 1)
        try nodes[1].waitForOutput(containing: "stats: counters ")
        XCTAssertTrue(nodes[1].text.contains(" forwarded=1 "), nodes[1].text)
        for node in nodes {
            XCTAssertLessThanOrEqual(node.text.components(separatedBy: "delivered broadcast").count - 1, 1, node.text)
        }
        XCTAssertFalse(nodes[0].text.contains("delivered broadcast"), "the sender delivered its own broadcast: \(nodes[0].text)")
        for (index, node) in nodes.enumerated() {
            say("quit", to: index)
            XCTAssertNotNil(node.waitForExit(within: 10))
        }
    }
}
