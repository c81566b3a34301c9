import Glibc
import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

/// UDP datagram channels over loopback: batched echo, connected mode, refused and truncated
/// datagrams, the write queue's bound and writability.
final class DatagramChannelTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!

    override func setUpWithError() throws {
        group = try MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() {
        group.syncShutdownGracefully()
    }

    func testAnEchoServerAnswersManyDatagramsSentInBatchesAndNearlyAllComeBackIntact() throws {
        let server = try echoingChannel(on: group)
        let client = try collectingChannel(on: group)
        let target = try XCTUnwrap(server.localAddress)
        let total = 2_000, window = 100
        // Windows of 100 in flight: moderate load, which loopback delivers whole; the check still
        // tolerates the odd drop (UDP promises nothing), asking for 99 %.
        for start in stride(from: 0, to: total, by: window) {
            let writes = (start..<start + window).map { index in
                client.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: numberedDatagram(index))))
            }
            client.flush()
            for write in writes { try blockingWait(for: write, timeout: 10) }
            _ = try client.received(atLeast: start + window, timeout: 2)
        }
        let received = try client.received(atLeast: total, timeout: 2)
        XCTAssertGreaterThanOrEqual(received.count, total * 99 / 100, "delivered \(received.count) of \(total)")
        XCTAssertLessThanOrEqual(received.count, total)
        let indices = Set(received.map { datagram in
            datagram.bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        })
        XCTAssertEqual(indices.count, received.count, "a datagram came back twice")
        for datagram in received {
            let index = datagram.bytes.prefix(4).reduce(0) { $0 << 8 | Int($1) }
            XCTAssertEqual(datagram.bytes, numberedDatagram(index), "datagram \(index) came back altered")
            XCTAssertEqual(datagram.sender, target)
        }
        try blockingWait(for: client.close())
        try blockingWait(for: server.close())
    }

    func testAConnectedChannelReceivesOnlyItsPeersDatagramsAndSendsPlainBuffersToIt() throws {
        let peer = try collectingChannel(on: group)
        let stranger = try collectingChannel(on: group)
        let peerAddress = try XCTUnwrap(peer.localAddress)
        let connected = try blockingWait(for: DatagramBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(DatagramCollector()) }
            .connect(to: peerAddress, from: .loopbackV4(port: 0)), timeout: 10)
        let connectedAddress = try XCTUnwrap(connected.localAddress)
        XCTAssertEqual(connected.remoteAddress, peerAddress)

        // A plain buffer goes to the peer.
        try blockingWait(for: connected.writeAndFlush(ByteBuffer(bytes: [1, 2, 3])), timeout: 10)
        XCTAssertEqual(try peer.received(atLeast: 1).map(\.bytes), [[1, 2, 3]])

        // The stranger's datagram is sent first; the kernel filters it, so only the peer's arrives.
        try stranger.send([9, 9], to: connectedAddress)
        try peer.send([4, 5], to: connectedAddress)
        let received = try connected.received(atLeast: 1)
        XCTAssertEqual(received, [CollectedDatagram(sender: peerAddress, bytes: [4, 5])])
        // A little more traffic from the peer, to be sure the stranger's is not merely late.
        try peer.send([6], to: connectedAddress)
        XCTAssertEqual(try connected.received(atLeast: 2).map(\.bytes), [[4, 5], [6]])

        for channel in [connected, peer, stranger] { try blockingWait(for: channel.close()) }
    }

    func testAPlainBufferWrittenToAnUnconnectedChannelFailsItsWrite() throws {
        let channel = try collectingChannel(on: group)
        XCTAssertThrowsError(try blockingWait(for: channel.writeAndFlush(ByteBuffer(bytes: [1])), timeout: 10))
        try blockingWait(for: channel.close())
    }

    func testAnOversizedDatagramFailsItsOwnPromiseAndTheChannelKeepsWorking() throws {
        let server = try echoingChannel(on: group)
        let client = try collectingChannel(on: group)
        let target = try XCTUnwrap(server.localAddress)
        let tooLarge = client.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(repeating: 7, count: 70_000)))
        let fine = client.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: [1, 2, 3])))
        XCTAssertThrowsError(try blockingWait(for: tooLarge, timeout: 10)) { error in
            guard case DatagramError.sendFailed(let cause, let failedTarget)? = error as? DatagramError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(cause.errnoCode, EMSGSIZE)
            XCTAssertEqual(failedTarget, target)
        }
        try blockingWait(for: fine, timeout: 10)
        XCTAssertEqual(try client.received(atLeast: 1).map(\.bytes), [[1, 2, 3]])
        XCTAssertTrue(client.isActive)
        try blockingWait(for: client.close())
        try blockingWait(for: server.close())
    }

    func testADatagramLargerThanItsSlotIsDroppedAndCountedNotDeliveredCut() throws {
        var options = DatagramOptions()
        options.maximumDatagramSize = 100
        let receiver = try collectingChannel(on: group, options: options)
        let sender = try collectingChannel(on: group)
        let target = try XCTUnwrap(receiver.localAddress)
        try sender.send([UInt8](repeating: 1, count: 200), to: target)
        try sender.send([UInt8](repeating: 2, count: 100), to: target)
        XCTAssertEqual(try receiver.received(atLeast: 1).map(\.bytes), [[UInt8](repeating: 2, count: 100)])
        XCTAssertEqual(receiver.truncatedDatagrams, 1)
        try blockingWait(for: receiver.close())
        try blockingWait(for: sender.close())
    }

    func testTheWriteQueueTurnsUnwritableAboveItsHighMarkAndRefusesDatagramsBeyondItsBound() throws {
        var options = DatagramOptions()
        options.writeBufferWaterMark = WriteBufferWaterMark(low: 1_000, high: 5_000)
        options.maximumQueuedBytes = 8_000
        let receiver = try collectingChannel(on: group)
        let channel = try collectingChannel(on: group, options: options)
        let target = try XCTUnwrap(receiver.localAddress)
        let outcome = try blockingWait(for: channel.loop.submit { () -> [String] in
            var log: [String] = []
            var writes: [Future<Void>] = []
            for _ in 0..<8 {
                writes.append(channel.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(repeating: 1, count: 1_000))))
                log.append("\(channel.bufferedOutboundBytes) \(channel.isWritable)")
            }
            let refused = channel.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(repeating: 1, count: 1)))
            if case .failure(DatagramError.writeQueueFull(let limit))? = refused.resultIfAvailable { log.append("refused \(limit)") }
            channel.flush()
            log.append("\(channel.bufferedOutboundBytes) \(channel.isWritable)")
            return log
        }, timeout: 10)
        XCTAssertEqual(outcome, [
            "1000 true", "2000 true", "3000 true", "4000 true", "5000 true", "6000 false", "7000 false", "8000 false",
            "refused 8000", "0 true",
        ])
        XCTAssertEqual(try channel.withCollector { $0.writabilityChanges }, [false, true])
        XCTAssertEqual(try receiver.received(atLeast: 8).count, 8)
        try blockingWait(for: channel.close())
        try blockingWait(for: receiver.close())
    }

    func testQueuedDatagramsFailWhenTheChannelClosesBeforeTheyAreFlushed() throws {
        let channel = try collectingChannel(on: group)
        let target = try XCTUnwrap(channel.localAddress)
        let write = channel.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: [1])))
        try blockingWait(for: channel.close())
        XCTAssertThrowsError(try blockingWait(for: write, timeout: 10)) { error in
            XCTAssertEqual(error as? ChannelError, .closedBeforeWriteCompleted)
        }
        XCTAssertFalse(channel.isActive)
    }
}
