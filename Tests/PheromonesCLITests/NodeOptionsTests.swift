import ArgumentParser
import XCTest

@testable import PheromonesCLI

/// The `pheromones` subcommands' options: a malformed address or an out-of-range port is a usage
/// error (exit status 64) with a message, never a trap and never a late failure.
final class NodeOptionsTests: XCTestCase {
    func testWellFormedAddressesAreAccepted() throws {
        for arguments in [
            ["node", "--name", "a", "--listen", "127.0.0.1:0"],
            ["node", "--name", "a", "--listen", "[::1]:65535", "--peer", "b=127.0.0.1:9000", "--peer", "c=localhost:1"],
            ["demo", "--mode", "short", "--wire", "json"],
            ["node", "--name", "a", "--listen", "127.0.0.1:0", "--peer-exchange", "8"],
        ] {
            XCTAssertNoThrow(try PheromonesCommand.parseAsRoot(arguments), "\(arguments)")
        }
    }

    func testMalformedAddressesAndOutOfRangePortsAreUsageErrorsWithAMessage() {
        let invalid: [[String]] = [
            ["--listen", "127.0.0.1:-1"], ["--listen", "127.0.0.1:65536"], ["--listen", "127.0.0.1:99999999999999999999"],
            ["--listen", "127.0.0.1"], ["--listen", "127.0.0.1:port"], ["--listen", ""], ["--listen", ":80"],
            ["--listen", "::1:80"],
            ["--listen", "127.0.0.1:0", "--peer", "b=127.0.0.1:70000"], ["--listen", "127.0.0.1:0", "--peer", "b=127.0.0.1:-5"],
            ["--listen", "127.0.0.1:0", "--peer", "127.0.0.1:9000"], ["--listen", "127.0.0.1:0", "--peer", "=127.0.0.1:9000"],
            ["--listen", "127.0.0.1:0", "--peer-exchange", "0"], ["--listen", "127.0.0.1:0", "--peer-exchange", "-3"],
            ["--listen", "127.0.0.1:0", "--peer-exchange", "1025"],
        ]
        for options in invalid {
            let arguments = ["node", "--name", "a"] + options
            do {
                _ = try PheromonesCommand.parseAsRoot(arguments)
                XCTFail("\(arguments) was accepted")
            } catch {
                XCTAssertEqual(PheromonesCommand.exitCode(for: error), .validationFailure, "\(arguments): \(error)")
                XCTAssertFalse(PheromonesCommand.message(for: error).isEmpty, "\(arguments)")
            }
        }
    }
}
