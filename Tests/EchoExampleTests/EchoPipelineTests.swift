import Pheromones
import XCTest

@testable import EchoExample

/// The example's pipeline over loopback, in both protocols: a client that never reads cannot make
/// the server hold more than the write queue's high watermark plus one read batch, and a client
/// that half-closes gets every byte back.
final class EchoPipelineTests: XCTestCase {
    // MARK: A client that sends and never reads

    func testAnEchoClientThatNeverReadsMakesTheServerStopReadingWhileOthersAreStillServed() async throws {
        try await assertNonReadingClientIsHeldBack(.echo)
    }

    func testAFramedClientThatNeverReadsMakesTheServerStopReadingWhileOthersAreStillServed() async throws {
        try await assertNonReadingClientIsHeldBack(.framed)
    }

    private func assertNonReadingClientIsHeldBack(_ proto: EchoProtocol, file: StaticString = #filePath, line: UInt = #line) async throws {
        let server = try await EchoTestServer.start(proto)
        let options = EchoProtocol.connectionOptions
        let frameSize = 1004
        // The write queue may reach the high watermark before a batch starts, and a batch reads at
        // most `maxReadsPerWakeup` times 64 KiB; in framed mode the decoder may also hold one
        // partial frame, and its encoder the batch of answers it has not handed to the socket yet
        // (up to one more read's worth: measured 352,240 bytes held once in 16 runs). Moreover
        // the probe counts a buffer as sent only once all of it is, and the framed encoder hands
        // the socket one buffer per batch: a batch's buffer partly in the kernel still counts
        // whole while the next batch is read (measured 524,584 once, on a loaded machine). That
        // holds in echo mode too, one read buffer at a time: a 64 KiB buffer partly in the kernel
        // counts whole (measured 332,853 once under AddressSanitizer, 5 KiB over the bound without it).
        let batch = options.maxReadsPerWakeup * 64 * 1024
        let partlySent = 64 * 1024
        let bound = options.writeBufferWaterMark.high + batch + partlySent
            + (proto == .framed ? frameSize + batch : 0)

        // A small receive window, so that the answers back up soon.
        let client = try BlockingSocket(port: server.port, receiveBufferSize: 64 * 1024)
        let chunk = proto == .echo
            ? Traffic.pattern(from: 0, count: 64 * 1024)
            : Array((0..<64).map { _ in Traffic.frame(Traffic.pattern(from: 0, count: frameSize - 4)) }.joined())
        // Far more than the kernel buffers of both directions hold: the writer blocks for good once
        // the server stops reading, until the client shuts its output below.
        async let sent = onThread { () -> Int in
            var sent = 0
            while sent < 512 << 20 {
                do { try client.sendAll(chunk) } catch { break }
                sent += chunk.count
            }
            return sent
        }

        let connection = try await value(of: server.firstConnection, "the connection", on: server.loop)
        let stall = try await value(of: connection.stalled.futureResult, "the server to stop reading", on: server.loop)
        XCTAssertTrue(stall.becameUnwritable, "the server stopped reading while it could still write", file: file, line: line)
        XCTAssertLessThanOrEqual(stall.maximumHeld, bound, "the server held more than one batch above the high watermark", file: file, line: line)

        // Another client is served meanwhile.
        let greeting = proto == .echo ? Array("hello".utf8) : Traffic.frame(Array("hello".utf8))
        let answer = try await onThread {
            let other = try BlockingSocket(port: server.port)
            defer { other.close() }
            try other.sendAll(greeting)
            return try other.receive(exactly: greeting.count)
        }
        XCTAssertEqual(answer, greeting, file: file, line: line)
        let later = connection.stats
        XCTAssertEqual(later.bytesRead, stall.bytesRead, "the stalled connection read again", file: file, line: line)
        XCTAssertEqual(later.readsPassed, stall.readsPassed, "a read reached the stalled connection's socket", file: file, line: line)

        // When the client gives up, the server closes the connection and lets go of what it held.
        client.shutdownOutput()
        let total = try await sent
        XCTAssertLessThan(total, 512 << 20, "the client could send everything, so the server never held it back", file: file, line: line)
        client.reset()
        try await value(of: connection.closed.futureResult, "the server to close the connection", on: server.loop)
        try await server.stop()
    }

    // MARK: Half-closure

    func testAnEchoClientThatSendsEightMebibytesThenShutsItsOutputGetsEveryByteBack() async throws {
        try await assertHalfClosingClientGetsEverything(.echo)
    }

    func testAFramedClientThatSendsEightMebibytesThenShutsItsOutputGetsEveryFrameBack() async throws {
        try await assertHalfClosingClientGetsEverything(.framed)
    }

    private func assertHalfClosingClientGetsEverything(_ proto: EchoProtocol, file: StaticString = #filePath, line: UInt = #line) async throws {
        let server = try await EchoTestServer.start(proto)
        let stream = Traffic.stream(proto, total: 8 << 20)
        let client = try BlockingSocket(port: server.port)
        // The client reads while it sends (with back pressure, a server that cannot write stops
        // reading, so a client that only reads afterwards could deadlock with it), and the end of
        // its output reaches the server while answers are still queued there.
        async let received = onThread { try client.receiveToEnd() }
        async let sending: Void = onThread {
            try client.sendAll(stream)
            client.shutdownOutput()
        }
        try await sending
        let answers = try await received
        client.close()
        XCTAssertEqual(answers.count, stream.count, "bytes lost after the client shut its output", file: file, line: line)
        XCTAssertTrue(answers == stream, "the bytes that came back differ from those sent", file: file, line: line)

        let connection = try await value(of: server.firstConnection, "the connection", on: server.loop)
        try await value(of: connection.closed.futureResult, "the server to close the connection", on: server.loop)
        try await server.stop()
    }
}
