import XCTest

@testable import PheromonesCLI

/// How the node cuts standard input into commands.
final class LineSplitterTests: XCTestCase {
    private func lines(_ chunks: [String], maximum: Int = 64) -> [String] {
        var splitter = LineSplitter(maximumLineLength: maximum)
        var lines: [String] = []
        for chunk in chunks { splitter.append(ArraySlice(chunk.utf8)) { lines.append($0) } }
        splitter.finish { lines.append($0) }
        return lines
    }

    func testLinesSplitAcrossReadsAreJoinedAndCarriageReturnsBeforeNewlinesDropped() {
        XCTAssertEqual(lines(["pe", "ers\r\nsend a", " op\n\nquit"]), ["peers", "send a op", "", "quit"])
    }

    func testALineLongerThanTheMaximumIsCutAndTheNextLineIsIntact() {
        XCTAssertEqual(lines([String(repeating: "x", count: 100) + "\npeers\n"], maximum: 10), [String(repeating: "x", count: 10), "peers"])
    }
}
