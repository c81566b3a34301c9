import Foundation
import PheromonesTestSupport
import XCTest

@testable import PheromonesCLI

/// `pheromones fetch`: an HTTPS GET through the TLS stage, against `openssl s_server -www`.
final class FetchCommandTests: XCTestCase {
    func testFetchGetsThePageOfOpenSSLsWebServerAndRefusesAnUntrustedOne() throws {
        let files = try CertificateFiles()
        let server = try ChildProcess(
            ["s_server", "-accept", "127.0.0.1:0", "-cert", files.path("server.pem"), "-key", files.path("server.key"), "-www"],
            standardInput: Pipe(), program: "openssl")
        defer { server.stop() }
        let accept = try server.waitForOutput(containing: "ACCEPT")
        let port = try XCTUnwrap(accept.split(separator: "\n").first { $0.hasPrefix("ACCEPT") }?.split(separator: ":").last.map(String.init))

        let trusted = try ChildProcess(["fetch", "https://127.0.0.1:\(port)/", "--ca-file", files.path("ca.pem")], standardInput: FileHandle.nullDevice)
        defer { trusted.stop() }
        XCTAssertNotNil(trusted.waitForExit(within: 30))
        XCTAssertEqual(trusted.exitStatus, 0)
        XCTAssertTrue(trusted.text.hasPrefix("HTTP/1.0 200 ok"), trusted.text)
        XCTAssertTrue(trusted.text.contains("s_server"), trusted.text)

        let untrusted = try ChildProcess(["fetch", "https://localhost:\(port)/"], standardInput: FileHandle.nullDevice)
        defer { untrusted.stop() }
        XCTAssertNotNil(untrusted.waitForExit(within: 30))
        XCTAssertNotEqual(untrusted.exitStatus, 0, "a certificate nobody trusts must fail the fetch")
        XCTAssertEqual(untrusted.text, "")
    }

    func testOnlyHTTPSURLsWithAHostAndAPortInRangeAreAccepted() throws {
        let command = try FetchCommand.parse(["https://[::1]:8443/a/b?c"])
        XCTAssertEqual(try command.target().host, "::1")
        XCTAssertEqual(try command.target().port, 8443)
        XCTAssertEqual(try command.target().path, "/a/b?c")
        XCTAssertEqual(try FetchCommand.parse(["https://example.com"]).target().port, 443)
        for arguments in [
            ["http://example.com/"], ["https://"], ["https://:443/"], ["https://host:0/"], ["https://host:65536/"],
            ["https://ho\u{1B}st/"], ["https://example.com/", "--max-bytes", "0"], ["https://example.com/", "--timeout", "0"],
        ] {
            XCTAssertThrowsError(try FetchCommand.parse(arguments), "\(arguments)") { error in
                XCTAssertEqual(FetchCommand.exitCode(for: error), .validationFailure, "\(arguments)")
            }
        }
    }
}
