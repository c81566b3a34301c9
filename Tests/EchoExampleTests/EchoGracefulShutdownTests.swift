import Foundation
import Glibc
import PheromonesTestSupport
import XCTest

/// `pheromones-echo` as a built executable: on SIGTERM it stops accepting, lets its connections
/// finish (each gets its answers, then the end of the stream) and exits with status 0.
final class EchoGracefulShutdownTests: XCTestCase {
    func testOnSIGTERMTheEchoServerAnswersWhatItReadEndsEveryConnectionAndExitsCleanly() throws {
        let server = try ChildProcess(["--port", "0", "--grace-period", "5"], executable: "pheromones-echo")
        defer { server.stop() }
        let ready = try server.waitForOutput(containing: "with 1 loop(s)")
        let port = try XCTUnwrap(ready.split(separator: ":").last.flatMap { Int($0.split(separator: " ").first ?? "") },
                                 "no port in: \(ready)")
        let idle = try BlockingSocket(port: port)
        let busy = try BlockingSocket(port: port)
        try busy.sendAll(Array("hello".utf8))
        XCTAssertEqual(try busy.receive(exactly: 5), Array("hello".utf8))
        try server.waitUntilCatching([SIGTERM])

        let signalled = DispatchTime.now()
        server.send(SIGTERM)
        XCTAssertEqual(try busy.receiveToEnd(), [], "the busy connection was not ended")
        XCTAssertEqual(try idle.receiveToEnd(), [], "the idle connection was not ended")
        // Ended by the server's handlers when told to quiesce, not by the grace period running out.
        let ended = Double(DispatchTime.now().uptimeNanoseconds - signalled.uptimeNanoseconds) / 1e9
        XCTAssertLessThan(ended, 4, "the connections were only ended when the grace period ran out")
        // Having seen the end, the clients close their side too: the connections are over.
        idle.close()
        busy.close()
        let seconds = try XCTUnwrap(server.waitForExit(within: 20), "the server did not exit")
        XCTAssertLessThan(seconds, 5, "the server waited out its grace period although every connection had closed")
        XCTAssertEqual(server.exitStatus, 0)
        XCTAssertThrowsError(try BlockingSocket(port: port, timeout: 2), "the server still accepts")
    }
}
