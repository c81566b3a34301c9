import Pheromones
@testable import PheromonesSimulation
import XCTest

/// Records what reaches the end of a simulated connection's pipeline, and when.
private final class Tap: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private let loop: EmbeddedEventLoop
    var reads: [(Deadline, String)] = []
    var events: [ChannelEvent] = []
    var errors: [any Error] = []
    var inactive = false

    init(loop: EmbeddedEventLoop) { self.loop = loop }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        reads.append((loop.now, String(buffer: data)))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent { events.append(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { errors.append(error) }
    func channelInactive(context: ChannelHandlerContext) { inactive = true }
}

final class SimulatedNetworkTests: XCTestCase {
    private let client = SocketAddress.v4(.init(octets: (10, 0, 0, 1), port: 7000))
    private let server = SocketAddress.v4(.init(octets: (10, 0, 0, 2), port: 7000))

    private struct Pair {
        var dialler: any Channel
        var accepted: any Channel
        var diallerTap: Tap
        var acceptedTap: Tap
    }

    private func connectedPair(_ network: SimulatedNetwork, options: SocketOptions = SocketOptions()) throws -> Pair {
        var accepted: [any Channel] = []
        let acceptedTap = Tap(loop: network.loop)
        let diallerTap = Tap(loop: network.loop)
        let bound = LoopBound((acceptedTap, diallerTap), eventLoop: network.loop)
        let collector = LoopBound(Box<[any Channel]>([]), eventLoop: network.loop)
        _ = network.host(server).listen(on: server, options: options) { channel in
            collector.value.value.append(channel)
            try channel.pipeline.addHandler(bound.value.0)
        }
        let dial = network.host(client).connect(to: server, options: options) { channel in try channel.pipeline.addHandler(bound.value.1) }
        network.run(for: .seconds(1))
        accepted = collector.value.value
        let dialler = try XCTUnwrap(dial.resultIfAvailable).get()
        return Pair(dialler: dialler, accepted: try XCTUnwrap(accepted.first), diallerTap: diallerTap, acceptedTap: acceptedTap)
    }

    func testBytesArriveOneLatencyLaterAndInTheOrderTheyWereSent() throws {
        let network = SimulatedNetwork(seed: 1)
        network.setLatency(.milliseconds(20), between: client, and: server)
        let pair = try connectedPair(network)
        let sent = network.now
        for text in ["one", "two", "three"] { _ = pair.dialler.writeAndFlush(ByteBuffer(string: text)) }
        network.run(for: .milliseconds(19))
        XCTAssertTrue(pair.acceptedTap.reads.isEmpty, "nothing arrives before the latency")
        network.run(for: .milliseconds(1))
        XCTAssertEqual(pair.acceptedTap.reads.map(\.1), ["one", "two", "three"])
        XCTAssertEqual(pair.acceptedTap.reads.first.map { $0.0 - sent }, .milliseconds(20))
    }

    func testLoweringALinksLatencyNeverReordersAStream() throws {
        let network = SimulatedNetwork(seed: 1)
        network.setLatency(.milliseconds(40), between: client, and: server)
        let pair = try connectedPair(network)
        _ = pair.dialler.writeAndFlush(ByteBuffer(string: "first"))
        network.setLatency(.milliseconds(5), between: client, and: server)
        _ = pair.dialler.writeAndFlush(ByteBuffer(string: "second"))
        network.run(for: .seconds(1))
        XCTAssertEqual(pair.acceptedTap.reads.map(\.1), ["first", "second"])
    }

    func testAConnectionIsSetUpInOneRoundTrip() throws {
        let network = SimulatedNetwork(seed: 1)
        network.setLatency(.milliseconds(10), between: client, and: server)
        _ = network.host(server).listen(on: server, options: SocketOptions()) { _ in }
        let dial = network.host(client).connect(to: server, options: SocketOptions()) { _ in }
        network.run(for: .milliseconds(19))
        XCTAssertNil(dial.resultIfAvailable)
        network.run(for: .milliseconds(1))
        XCTAssertNotNil(try dial.resultIfAvailable?.get())
    }

    func testADialToAnAddressNobodyListensAtIsRefusedAfterARoundTrip() {
        let network = SimulatedNetwork(seed: 1)
        network.setLatency(.milliseconds(10), between: client, and: server)
        let dial = network.host(client).connect(to: server, options: SocketOptions()) { _ in }
        network.run(for: .milliseconds(20))
        guard case .failure(let error) = dial.resultIfAvailable else { return XCTFail("the dial did not fail: \(String(describing: dial.resultIfAvailable))") }
        XCTAssertEqual(error as? ChannelError, .connectionRefused(server))
    }

    func testACutLinkResetsBothEndsAndLosesWhatWasOnItsWay() throws {
        let network = SimulatedNetwork(seed: 1)
        network.setLatency(.milliseconds(10), between: client, and: server)
        let pair = try connectedPair(network)
        _ = pair.dialler.writeAndFlush(ByteBuffer(string: "lost"))
        network.run(for: .milliseconds(5))
        network.cut(between: client, and: server)
        network.run(for: .seconds(1))
        XCTAssertTrue(pair.acceptedTap.reads.isEmpty)
        XCTAssertEqual(pair.diallerTap.errors.first as? ChannelError, .connectionReset)
        XCTAssertEqual(pair.acceptedTap.errors.first as? ChannelError, .connectionReset)
        XCTAssertTrue(pair.diallerTap.inactive && pair.acceptedTap.inactive)
        // Restored, even what was sent before is not delivered late.
        network.restore(between: client, and: server)
        network.run(for: .seconds(1))
        XCTAssertTrue(pair.acceptedTap.reads.isEmpty)
    }

    func testADialAcrossACutLinkTimesOutAndSucceedsOnceTheLinkIsRestored() {
        let network = SimulatedNetwork(seed: 1)
        _ = network.host(server).listen(on: server, options: SocketOptions()) { _ in }
        network.cut(between: client, and: server)
        var options = SocketOptions()
        options.connectTimeout = .seconds(3)
        let first = network.host(client).connect(to: server, options: options) { _ in }
        network.run(for: .milliseconds(2999))
        XCTAssertNil(first.resultIfAvailable)
        network.run(for: .milliseconds(1))
        guard case .failure(let error) = first.resultIfAvailable, case .connectTimeout = error as? ChannelError else {
            return XCTFail("expected a connect timeout, got \(String(describing: first.resultIfAvailable))")
        }
        network.restore(between: client, and: server)
        let second = network.host(client).connect(to: server, options: options) { _ in }
        network.run(for: .seconds(1))
        XCTAssertNotNil(try second.resultIfAvailable?.get())
    }

    func testClosingOneEndIsAnEndOfStreamAtTheOtherAfterTheBytesBeforeIt() throws {
        let network = SimulatedNetwork(seed: 1)
        var options = SocketOptions()
        options.allowRemoteHalfClosure = true
        let pair = try connectedPair(network, options: options)
        _ = pair.dialler.writeAndFlush(ByteBuffer(string: "last words"))
        pair.dialler.close(mode: .output)
        network.run(for: .seconds(1))
        XCTAssertEqual(pair.acceptedTap.reads.map(\.1), ["last words"])
        XCTAssertEqual(pair.acceptedTap.events, [.inputClosed])
        XCTAssertTrue(pair.accepted.isActive, "half-closed: the accepting end may still answer")
        _ = pair.accepted.writeAndFlush(ByteBuffer(string: "answer"))
        network.run(for: .seconds(1))
        XCTAssertEqual(pair.diallerTap.reads.map(\.1), ["answer"])
    }

    func testBytesWaitWhileThePipelineHoldsItsReads() throws {
        let network = SimulatedNetwork(seed: 1)
        var options = SocketOptions()
        options.autoRead = false
        let pair = try connectedPair(network, options: options)
        _ = pair.dialler.writeAndFlush(ByteBuffer(string: "held"))
        network.run(for: .seconds(1))
        XCTAssertTrue(pair.acceptedTap.reads.isEmpty)
        pair.accepted.read()
        network.run(for: .zero)
        XCTAssertEqual(pair.acceptedTap.reads.map(\.1), ["held"])
    }

    func testLatenciesAreDrawnFromTheRangeAndTheSeed() {
        let range = TimeAmount.milliseconds(5) ... TimeAmount.milliseconds(50)
        let first = SimulatedNetwork(seed: 7, latency: range)
        let second = SimulatedNetwork(seed: 7, latency: range)
        let hosts = (1 ... 20).map { SocketAddress.v4(.init(octets: (10, 0, 1, UInt8($0)), port: 1)) }
        let drawn = hosts.map { first.latency(between: client, and: $0) }
        XCTAssertEqual(drawn, hosts.map { second.latency(between: client, and: $0) })
        XCTAssertTrue(drawn.allSatisfy { range.contains($0) })
        XCTAssertGreaterThan(Set(drawn).count, 15)
    }
}

/// A reference box, for what an initializer collects.
final class Box<Value> {
    var value: Value
    init(_ value: Value) { self.value = value }
}
