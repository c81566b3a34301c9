import ArgumentParser
import XCTest

@testable import EchoExample

/// `pheromones-echo`'s numeric options: a value out of range is a usage error (exit status 64)
/// with a message, never a trap.
final class EchoServerOptionsTests: XCTestCase {
    func testTheDefaultsAndTheBoundsOfEveryRangeAreAccepted() throws {
        XCTAssertNoThrow(try EchoServer.parse([]))
        for arguments in [
            ["--port", "0"], ["--port", "65535"], ["--loops", "1"], ["--loops", "\(EchoServer.maximumLoops)"],
            ["--max-frame-length", "0"], ["--max-frame-length", "\(EchoServer.maximumFrameLengthLimit)"],
            ["--proto", "framed"],
        ] {
            XCTAssertNoThrow(try EchoServer.parse(arguments), "\(arguments)")
        }
    }

    func testEveryOutOfRangeOrMalformedNumberIsAUsageErrorWithAMessage() {
        let invalid: [[String]] = [
            ["--loops", "0"], ["--loops=-1"], ["--loops", "\(EchoServer.maximumLoops + 1)"], ["--loops", "\(Int.max)"],
            ["--port=-1"], ["--port", "-1"], ["--port", "65536"], ["--port", "99999999999999999999999"],
            ["--port", "80x"], ["--max-frame-length=-1"], ["--max-frame-length", "-1"],
            ["--max-frame-length", "\(EchoServer.maximumFrameLengthLimit + 1)"], ["--max-frame-length", "\(Int.min)"],
        ]
        for arguments in invalid {
            do {
                _ = try EchoServer.parse(arguments)
                XCTFail("\(arguments) was accepted")
            } catch {
                XCTAssertEqual(EchoServer.exitCode(for: error), .validationFailure, "\(arguments): \(error)")
                XCTAssertFalse(EchoServer.message(for: error).isEmpty, "\(arguments)")
            }
        }
    }
}
