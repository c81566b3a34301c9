import Foundation
import Glibc
import Pheromones
import PheromonesP2P
import XCTest

/// A node on the JSON wire completes the example with a peer that behaves like the Go original,
/// in both directions and with both routers. The Go peer is emulated here with blocking sockets,
/// exactly as `server.go`, `router_short.go` and the example's `IOLoop` use theirs: each message is
/// one `Read` of up to 10240 bytes (so two messages in one read would not parse), and each message
/// written is the bytes `json.Marshal` produces.
final class GoCompatibilityTests: GroupTestCase {
    // MARK: Short connections

    func testAGoPeerDialingPerMessageCompletesTheConversationWithAShortNode() async throws {
        let yoghurt = try await ExampleNode.start("yoghurt", .short, .json, group: group)
        let goAddress = try deadAddress()
        let node = yoghurt.address
        // The original's `mainShort` loop: Dispatch (dial, write, one read, close), then Handle.
        let replies = try await runGoPeer(on: yoghurt.node.eventLoop) {
            var replies: [String] = []
            var message: [UInt8]? = GoPeer.connectRequest(from: "gopher", address: "\(goAddress)")
            while let request = message {
                let socket = try RawSocket.connect(to: node)
                defer { socket.close() }
                try socket.write(request)
                let reply = try socket.readOnce()
                replies.append(String(decoding: reply, as: UTF8.self))
                message = try GoPeer.handle(reply, as: "gopher")
            }
            return replies
        }
        XCTAssertEqual(replies, ["connectresp", "getresp", "fetchresp", "noticeresp"].map { goJSON("yoghurt", $0) })
        XCTAssertEqual(yoghurt.handledOperations, ["connectreq", "getreq", "fetchreq", "noticereq"])
        let routes = await yoghurt.node.peers
        XCTAssertEqual(routes.map(\.key), [PeerKey(name: "gopher", address: goAddress)], "added from the greeting")
        await yoghurt.node.shutdown()
    }

    func testAShortNodeCompletesTheConversationWithAGoServer() async throws {
        let luda = try await ExampleNode.start("luda", .short, .json, group: group)
        let server = try RawSocket.listen()
        defer { server.close() }
        // `server.go`: accept, one read (with a timeout), Handle, write the reply; it never closes.
        let received = startGoPeer(on: luda.node.eventLoop) {
            var received: [String] = []
            var kept: [RawSocket] = []
            defer { for socket in kept { socket.close() } }
            while received.count < 4 {
                let connection = try server.accept()
                kept.append(connection)
                let request = try connection.readOnce()
                received.append(String(decoding: request, as: UTF8.self))
                if let reply = try GoPeer.handle(request, as: "gopher") { try connection.write(reply) }
            }
            return received
        }
        try await luda.node.add(peer: "gopher", address: server.address)
        let summary = try await within(10, on: luda.node.eventLoop) {
            try await luda.node.converse(with: "gopher", starting: luda.hello)
        }
        XCTAssertEqual(summary.transcript, exampleTranscript)
        XCTAssertEqual(summary.received.map(\.name), ["gopher", "gopher", "gopher", "gopher"])
        let greeting = #"{"add":"\#(luda.address)","account":11900}"#
        let expected = [goJSON("luda", "connectreq", data: greeting)] + ["getreq", "fetchreq", "noticereq"].map { goJSON("luda", $0) }
        let goSaw = try await within(10, on: luda.node.eventLoop) { try await received.get() }
        XCTAssertEqual(goSaw, expected)
        await luda.node.shutdown()
    }

    // MARK: Persistent connections

    func testAGoPeerWithAPersistentConnectionCompletesTheConversationWithAPersistentNode() async throws {
        let yoghurt = try await ExampleNode.start("yoghurt", .persistent, .json, group: group)
        let goAddress = try deadAddress()
        let node = yoghurt.address
        // `Protocal.Add` dials and starts `IOLoop`; `Dispatch` writes the connect request; `IOLoop`
        // reads each reply with one read, hands it to `Handle`, writes the answer, until none.
        let replies = try await runGoPeer(on: yoghurt.node.eventLoop) {
            let socket = try RawSocket.connect(to: node)
            defer { socket.close() }
            try socket.write(GoPeer.connectRequest(from: "gopher", address: "\(goAddress)"))
            var replies: [String] = []
            while true {
                let reply = try socket.readOnce()
                replies.append(String(decoding: reply, as: UTF8.self))
                guard let answer = try GoPeer.handle(reply, as: "gopher") else { return replies }
                try socket.write(answer)
            }
        }
        XCTAssertEqual(replies, ["connectresp", "getresp", "fetchresp", "noticeresp"].map { goJSON("yoghurt", $0) })
        XCTAssertEqual(yoghurt.handledOperations, ["connectreq", "getreq", "fetchreq", "noticereq"])
        XCTAssertTrue(yoghurt.connections.all.contains {
            if case .connectionIdentified(PeerKey(name: "gopher", address: goAddress), .inbound) = $0 { return true } else { return false }
        }, "the greeting bound the connection to the Go peer's route")
        await yoghurt.node.shutdown()
    }

    func testAPersistentNodeCompletesTheConversationWithAGoServerOverOneConnection() async throws {
        let luda = try await ExampleNode.start("luda", .persistent, .json, group: group)
        let server = try RawSocket.listen()
        defer { server.close() }
        // `server.go` reads the first message; the example's `Handle` adds the route and starts
        // `IOLoop` on the connection, which then reads and answers until the connection ends.
        let received = startGoPeer(on: luda.node.eventLoop) {
            let connection = try server.accept()
            defer { connection.close() }
            var received: [String] = []
            while let request = try connection.readOnceUnlessClosed() {
                received.append(String(decoding: request, as: UTF8.self))
                if let reply = try GoPeer.handle(request, as: "gopher") { try connection.write(reply) }
            }
            return received
        }
        try await luda.node.add(peer: "gopher", address: server.address)
        let summary = try await within(10, on: luda.node.eventLoop) {
            try await luda.node.converse(with: "gopher", starting: luda.hello)
        }
        XCTAssertEqual(summary.transcript, exampleTranscript)
        XCTAssertEqual(summary.ending, .completedHere)
        await luda.node.shutdown()
        let greeting = #"{"add":"\#(luda.address)","account":11900}"#
        let expected = [goJSON("luda", "connectreq", data: greeting)] + ["getreq", "fetchreq", "noticereq"].map { goJSON("luda", $0) }
        let goSaw = try await within(10, on: luda.node.eventLoop) { try await received.get() }
        XCTAssertEqual(goSaw, expected)
    }

    // MARK: Helpers

    /// Runs the Go peer's blocking code on a thread of its own (never on the concurrency pool).
    private func startGoPeer<T: Sendable>(on loop: any EventLoop, _ body: @escaping @Sendable () throws -> T) -> Future<T> {
        let promise = loop.makePromise(of: T.self)
        let thread = Thread {
            do { promise.succeed(try body()) } catch { promise.fail(error) }
        }
        thread.start()
        return promise.futureResult
    }

    private func runGoPeer<T: Sendable>(on loop: any EventLoop, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        let future = startGoPeer(on: loop, body)
        return try await within(15, on: loop, "the Go peer") { try await future.get() }
    }

    private func goJSON(_ name: String, _ operation: String, data: String? = nil) -> String {
        utf8String(PheromonesP2PTests.goJSON(name: name, operation: operation, data: data))
    }
}

/// The Go original's example protocol, as the Go peer runs it: `json.Unmarshal` into `MsgPto`, the
/// `switch` of `Protocal.Handle`, and `json.Marshal` of the answer.
enum GoPeer {
    struct NotAnEnvelope: Error {}

    static let answers = [
        "connectreq": "connectresp", "getreq": "getresp", "fetchreq": "fetchresp", "noticereq": "noticeresp",
        "connectresp": "getreq", "getresp": "fetchreq", "fetchresp": "noticereq",
    ]

    /// `json.Marshal(&MsgPto{Name, Operation, Data: json.Marshal(&MsgGreetingReq{address, 11900})})`.
    static func connectRequest(from name: String, address: String) -> [UInt8] {
        let greeting = #"{"add":"\#(address)","account":11900}"#
        return Array(utf8String(goJSON(name: name, operation: "connectreq", data: greeting)).utf8)
    }

    /// The answer `Protocal.Handle` writes, or nil for none (`noticeresp`).
    static func handle(_ message: [UInt8], as name: String) throws -> [UInt8]? {
        guard let object = try JSONSerialization.jsonObject(with: Data(message)) as? [String: Any],
              let operation = object["operation"] as? String
        else { throw NotAnEnvelope() }
        if operation == "noticeresp" { return nil }
        let answer = answers[operation] ?? "unknownop"
        return Array(#"{"name":"\#(name)","operation":"\#(answer)","data":null}"#.utf8)
    }
}

/// A blocking TCP socket, as Go's `net.Conn` looks from the goroutine using it. Every read and
/// accept gives up after five seconds (so a test that goes wrong fails instead of hanging).
struct RawSocket: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var call: String
        var code: CInt
        var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
    }

    let fd: CInt
    var address: SocketAddress = .anyV4(port: 0)

    static func listen() throws -> RawSocket {
        let fd = try check("socket", socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
        var sin = SocketAddress.loopbackV4(port: 0).ipv4
        _ = try check("bind", withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        })
        _ = try check("listen", Glibc.listen(fd, 16))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = try check("getsockname", withUnsafeMutablePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        })
        var socket = RawSocket(fd: fd)
        socket.address = .loopbackV4(port: Int(UInt16(bigEndian: sin.sin_port)))
        try socket.setTimeout(seconds: 5)
        return socket
    }

    static func connect(to address: SocketAddress) throws -> RawSocket {
        let fd = try check("socket", socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0))
        var sin = address.ipv4
        _ = try check("connect", withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        })
        let socket = RawSocket(fd: fd, address: address)
        try socket.setTimeout(seconds: 5)
        return socket
    }

    func accept() throws -> RawSocket {
        let child = try Self.check("accept", Glibc.accept(fd, nil, nil))
        let socket = RawSocket(fd: child)
        try socket.setTimeout(seconds: 5)
        return socket
    }

    /// One `read` of up to 10240 bytes, as the original reads a message.
    func readOnce() throws -> [UInt8] {
        guard let bytes = try readOnceUnlessClosed() else { throw Failure(call: "read (end of stream)", code: 0) }
        return bytes
    }

    /// One `read` of up to 10240 bytes, or nil at end of stream.
    func readOnceUnlessClosed() throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 10240)
        let count = try Self.check("read", buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) })
        return count == 0 ? nil : Array(buffer.prefix(count))
    }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            offset += try Self.check("write", bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) })
        }
    }

    func close() { _ = Glibc.close(fd) }

    private func setTimeout(seconds: Int) throws {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        _ = try Self.check("setsockopt", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)))
    }

    @discardableResult
    private static func check<I: BinaryInteger>(_ call: String, _ result: I) throws -> I {
        guard result >= 0 else { throw Failure(call: call, code: errno) }
        return result
    }
}

extension SocketAddress {
    /// The IPv4 `sockaddr_in` (the tests use 127.0.0.1 only).
    fileprivate var ipv4: sockaddr_in {
        guard case .v4(let address) = self else { return sockaddr_in() }
        return address.sockaddrIn
    }
}
