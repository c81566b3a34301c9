import Glibc
import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

/// Datagram channels under scripted system call failures (through the ``SystemCalls`` seam):
/// interrupted and spurious would-block `recvmmsg`/`sendmmsg`, a `sendmmsg` that takes only part
/// of its batch, and a datagram the kernel refuses in the middle of a batch.
final class DatagramFaultInjectionTests: XCTestCase {
    private var faults: FaultInjector!
    private var faultyGroup: MultiThreadedEventLoopGroup!
    private var group: MultiThreadedEventLoopGroup!

    /// Without segmentation offload (on by default where the kernel has it): these tests script
    /// what `sendmmsg` does to each entry of a batch, one datagram per entry.
    private static let oneEntryPerDatagram: DatagramOptions = {
        var options = DatagramOptions()
        options.segmentationOffload = false
        return options
    }()

    override func setUpWithError() throws {
        faults = FaultInjector()
        faultyGroup = try MultiThreadedEventLoopGroup(numberOfThreads: 1, systemCalls: faults.systemCalls)
        group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        faultyGroup.syncShutdownGracefully()
        group.syncShutdownGracefully()
    }

    /// Writes `count` numbered datagrams to `target` and flushes once; returns the write futures
    /// and a record of the order their promises completed in ("3 ok", "4 failed").
    private func sendBatch(
        _ count: Int, from channel: DatagramChannel, to target: SocketAddress
    ) throws -> (writes: [Future<Void>], order: LockedValue<[String]>) {
        let order = LockedValue<[String]>([])
        let writes = try blockingWait(for: channel.loop.submit { () -> [Future<Void>] in
            let writes = (0..<count).map { index in
                let write = channel.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: numberedDatagram(index))))
                write.whenComplete { result in
                    order.withLock { $0.append("\(index) \((try? result.get()) != nil ? "ok" : "failed")") }
                }
                return write
            }
            channel.flush()
            return writes
        }, timeout: 10)
        return (writes, order)
    }

    func testInterruptedAndSpuriouslyBlockedReceivesLoseNoDatagram() throws {
        let receiver = try collectingChannel(on: faultyGroup, options: Self.oneEntryPerDatagram)
        let sender = try collectingChannel(on: group, options: Self.oneEntryPerDatagram)
        faults.inject(.error(EINTR), into: .recvmmsg, times: 2)
        faults.inject(.error(EAGAIN), into: .recvmmsg, times: 1)
        let target = try XCTUnwrap(receiver.localAddress)
        let (writes, _) = try sendBatch(10, from: sender, to: target)
        for write in writes { try blockingWait(for: write, timeout: 10) }
        let received = try receiver.received(atLeast: 10)
        XCTAssertEqual(received.map(\.bytes), (0..<10).map { numberedDatagram($0) })
        XCTAssertEqual(faults.injectedCount(.recvmmsg), 3)
        XCTAssertTrue(receiver.isActive)
        try blockingWait(for: receiver.close())
        try blockingWait(for: sender.close())
    }

    func testInterruptedAndBlockedSendsAreRetriedUntilEveryDatagramLeavesInOrder() throws {
        let receiver = try collectingChannel(on: group, options: Self.oneEntryPerDatagram)
        let sender = try collectingChannel(on: faultyGroup, options: Self.oneEntryPerDatagram)
        faults.inject(.error(EINTR), into: .sendmmsg, times: 1)
        faults.inject(.error(EAGAIN), into: .sendmmsg, times: 1)
        let (writes, order) = try sendBatch(10, from: sender, to: try XCTUnwrap(receiver.localAddress))
        for write in writes { try blockingWait(for: write, timeout: 10) }
        XCTAssertEqual(order.withLock { $0 }, (0..<10).map { "\($0) ok" })
        XCTAssertEqual(try receiver.received(atLeast: 10).map(\.bytes), (0..<10).map { numberedDatagram($0) })
        XCTAssertEqual(faults.injectedCount(.sendmmsg), 2)
        try blockingWait(for: receiver.close())
        try blockingWait(for: sender.close())
    }

    func testASendThatTakesOnlyPartOfItsBatchHasTheRestRetriedWithPromisesInOrder() throws {
        let receiver = try collectingChannel(on: group, options: Self.oneEntryPerDatagram)
        let sender = try collectingChannel(on: faultyGroup, options: Self.oneEntryPerDatagram)
        // Every call takes at most 3 of the 10: four calls, each offering what is left.
        faults.inject(.atMost(3), into: .sendmmsg, times: nil)
        let (writes, order) = try sendBatch(10, from: sender, to: try XCTUnwrap(receiver.localAddress))
        for write in writes { try blockingWait(for: write, timeout: 10) }
        XCTAssertEqual(order.withLock { $0 }, (0..<10).map { "\($0) ok" })
        XCTAssertEqual(try receiver.received(atLeast: 10).map(\.bytes), (0..<10).map { numberedDatagram($0) })
        XCTAssertEqual(faults.count(.sendmmsg), 4)
        try blockingWait(for: receiver.close())
        try blockingWait(for: sender.close())
    }

    func testADatagramRefusedInTheMiddleOfABatchFailsAloneAndTheRestAreSent() throws {
        let receiver = try collectingChannel(on: group, options: Self.oneEntryPerDatagram)
        let sender = try collectingChannel(on: faultyGroup, options: Self.oneEntryPerDatagram)
        // The first call takes 2; the second is refused (its first datagram, number 2, fails);
        // the third sends the rest.
        faults.inject(.atMost(2), into: .sendmmsg, times: 1)
        faults.inject(.error(ECONNREFUSED), into: .sendmmsg, times: 1)
        let (writes, order) = try sendBatch(6, from: sender, to: try XCTUnwrap(receiver.localAddress))
        for (index, write) in writes.enumerated() where index != 2 { try blockingWait(for: write, timeout: 10) }
        XCTAssertThrowsError(try blockingWait(for: writes[2], timeout: 10)) { error in
            guard case DatagramError.sendFailed(let cause, _)? = error as? DatagramError else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(cause.errnoCode, ECONNREFUSED)
        }
        XCTAssertEqual(order.withLock { $0 }, ["0 ok", "1 ok", "2 failed", "3 ok", "4 ok", "5 ok"])
        XCTAssertEqual(try receiver.received(atLeast: 5).map(\.bytes), [0, 1, 3, 4, 5].map { numberedDatagram($0) })
        XCTAssertTrue(sender.isActive)
        try blockingWait(for: receiver.close())
        try blockingWait(for: sender.close())
    }

    func testAReceiveErrorThatReportsEarlierTrafficReachesErrorCaughtAndTheChannelGoesOn() throws {
        let receiver = try collectingChannel(on: faultyGroup, options: Self.oneEntryPerDatagram)
        let sender = try collectingChannel(on: group, options: Self.oneEntryPerDatagram)
        faults.inject(.error(ECONNREFUSED), into: .recvmmsg, times: 1)
        let target = try XCTUnwrap(receiver.localAddress)
        try sender.send([1], to: target)
        XCTAssertEqual(try receiver.received(atLeast: 1).map(\.bytes), [[1]])
        let errors = try receiver.withCollector { collector in collector.errors.map { "\($0)" } }
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(receiver.isActive)
        try blockingWait(for: receiver.close())
        try blockingWait(for: sender.close())
    }
}
