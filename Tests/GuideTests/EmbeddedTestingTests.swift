import Foundation
import Pheromones
import XCTest

// Guide, "Testing with EmbeddedChannel", and the check that keeps the guide's samples here.

final class EmbeddedTestingTests: XCTestCase {
    func testAnIdleConnectionIsClosedAfterThirtySecondsOfVirtualTime() throws {
        let channel = try EmbeddedChannel(handlers: [
            ByteIdleStateHandler(readTimeout: .seconds(30)), CloseOnIdle(), EchoHandler(),
        ])
        channel.connect()                                     // channelActive: the timer starts
        try channel.writeInbound(ByteBuffer(string: "ping"))  // a read, at virtual time 0
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "ping"))

        channel.loop.advanceTime(by: .seconds(29))
        XCTAssertTrue(channel.isActive)
        channel.loop.advanceTime(by: .seconds(1))             // 30 s without a read
        XCTAssertFalse(channel.isActive)
        XCTAssertTrue(try channel.finish().isClean)           // nothing left unread
    }

    /// Every ```swift block of Docs/Guide.md must appear, verbatim (indentation aside), in one of
    /// this target's files: the guide shows only code that compiles and that a test runs.
    func testEverySampleInTheGuideIsFoundVerbatimInTheGuideTests() throws {
        let testsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let guide = try String(contentsOf: testsFolder.appendingPathComponent("../../Docs/Guide.md"), encoding: .utf8)
        let sources = try FileManager.default.contentsOfDirectory(atPath: testsFolder.path)
            .filter { $0.hasSuffix(".swift") }
            .map { try String(contentsOf: testsFolder.appendingPathComponent($0), encoding: .utf8) }

        let samples = Self.swiftBlocks(in: guide)
        XCTAssertGreaterThan(samples.count, 10, "the guide's samples were not found")
        for sample in samples {
            let found = sources.contains { source in
                [0, 4, 8, 12, 16, 20, 24].contains { indent in
                    source.contains(Self.indented(sample, by: indent))
                }
            }
            XCTAssertTrue(found, "this sample of Docs/Guide.md is in no file of Tests/GuideTests:\n\(sample)")
        }
    }

    /// The contents of the guide's ```swift blocks.
    private static func swiftBlocks(in text: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```swift" {
                current = []
            } else if let lines = current, line == "```" {
                blocks.append(lines.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    private static func indented(_ block: String, by spaces: Int) -> String {
        let prefix = String(repeating: " ", count: spaces)
        return block.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : prefix + $0 }
            .joined(separator: "\n")
    }
}
