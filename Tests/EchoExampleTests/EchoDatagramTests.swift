import Foundation
import Glibc
import PheromonesTestSupport
import XCTest

/// `pheromones-echo --udp` as a built executable: every datagram comes back to its sender, and
/// SIGTERM ends the server cleanly.
final class EchoDatagramTests: XCTestCase {
    func testWithUDPTheEchoServerSendsEveryDatagramBackAndExitsCleanlyOnSIGTERM() throws {
        let server = try ChildProcess(["--udp", "--port", "0"], executable: "pheromones-echo")
        defer { server.stop() }
        let ready = try server.waitForOutput(containing: "udp echo on")
        let port = try XCTUnwrap(ready.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) }, "no port in: \(ready)")

        let fd = socket(AF_INET, CInt(SOCK_DGRAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        // Bounded waits: a lost reply fails the test after two seconds instead of hanging it.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr = in_addr(s_addr: UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)

        for index in 0..<20 {
            let message = Array("datagram \(index)".utf8)
            XCTAssertEqual(message.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, message.count)
            var reply = [UInt8](repeating: 0, count: 2048)
            let count = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            XCTAssertEqual(count, message.count, "datagram \(index) did not come back")
            if count > 0 { XCTAssertEqual(Array(reply.prefix(count)), message) }
        }

        try server.waitUntilCatching([SIGTERM])
        server.send(SIGTERM)
        XCTAssertNotNil(server.waitForExit(within: 20), "the server did not exit")
        XCTAssertEqual(server.exitStatus, 0)
    }
}
