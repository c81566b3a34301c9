import Glibc
import PheromonesCore
@testable import PheromonesPosix
import PheromonesTestSupport
import XCTest

/// Multicast membership, the datagram socket options, and the kernel's segmentation and receive
/// offloads (GSO, GRO), each skipped with a reason where the environment lacks it.
final class DatagramOffloadAndMulticastTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!

    override func setUpWithError() throws {
        group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        group.syncShutdownGracefully()
    }

    func testAChannelThatJoinedAMulticastGroupOnLoopbackReceivesWhatIsSentToTheGroupUntilItLeaves() throws {
        let groupAddress = try SocketAddress(ipAddress: "239.255.77.77", port: 0)
        // Bound to the wildcard address, so that datagrams to the group's address reach it.
        let member = try collectingChannel(on: group, at: .anyV4(port: 0))
        let port = try XCTUnwrap(member.localAddress).port
        let target = try SocketAddress(ipAddress: "239.255.77.77", port: port)
        let loopbackInterface = MulticastInterface.address(.init(octets: (127, 0, 0, 1), port: 0))
        do {
            try blockingWait(for: member.joinGroup(groupAddress, interface: loopbackInterface), timeout: 10)
        } catch {
            try blockingWait(for: member.close())
            throw XCTSkip("this environment cannot join a multicast group on loopback: \(error)")
        }
        let sender = try collectingChannel(on: group, at: .anyV4(port: 0))
        try blockingWait(for: sender.setSocketOption(.multicastInterface, to: .init(octets: (127, 0, 0, 1), port: 0)), timeout: 10)
        try blockingWait(for: sender.setSocketOption(.multicastLoopback, to: true), timeout: 10)
        do {
            try sender.send([42], to: target)
        } catch {
            for channel in [member, sender] { try blockingWait(for: channel.close()) }
            throw XCTSkip("this environment has no multicast route on loopback: \(error)")
        }
        let received = try member.received(atLeast: 1, timeout: 2)
        guard !received.isEmpty else {
            for channel in [member, sender] { try blockingWait(for: channel.close()) }
            throw XCTSkip("multicast datagrams are not looped back in this environment")
        }
        XCTAssertEqual(received.map(\.bytes), [[42]])

        try blockingWait(for: member.leaveGroup(groupAddress, interface: loopbackInterface), timeout: 10)
        try sender.send([43], to: target)
        // Sent after leaving: a unicast datagram behind it shows whether it would have arrived first.
        try sender.send([44], to: .loopbackV4(port: port))
        XCTAssertEqual(try member.received(atLeast: 2, timeout: 2).map(\.bytes), [[42], [44]])
        for channel in [member, sender] { try blockingWait(for: channel.close()) }
    }

    func testJoiningAnAddressThatIsNotAMulticastGroupFails() throws {
        let channel = try collectingChannel(on: group)
        XCTAssertThrowsError(try blockingWait(for: channel.joinGroup(.loopbackV4(port: 0)), timeout: 10)) { error in
            XCTAssertEqual(error as? MulticastError, .notAMulticastGroup(.loopbackV4(port: 0)))
        }
        try blockingWait(for: channel.close())
    }

    func testTheMulticastOptionsAreSetAndReadBack() throws {
        let channel = try collectingChannel(on: group)
        try blockingWait(for: channel.setSocketOption(.multicastTimeToLive, to: 7), timeout: 10)
        XCTAssertEqual(try blockingWait(for: channel.socketOption(.multicastTimeToLive), timeout: 10), 7)
        try blockingWait(for: channel.setSocketOption(.multicastLoopback, to: false), timeout: 10)
        XCTAssertEqual(try blockingWait(for: channel.socketOption(.multicastLoopback), timeout: 10), false)
        try blockingWait(for: channel.setSocketOption(.broadcast, to: true), timeout: 10)
        XCTAssertEqual(try blockingWait(for: channel.socketOption(.broadcast), timeout: 10), true)
        let interface = SocketAddress.IPv4(octets: (127, 0, 0, 1), port: 0)
        try blockingWait(for: channel.setSocketOption(.multicastInterface, to: interface), timeout: 10)
        XCTAssertEqual(try blockingWait(for: channel.socketOption(.multicastInterface), timeout: 10), interface)
        XCTAssertThrowsError(try blockingWait(for: channel.setSocketOption(.multicastTimeToLive, to: 256), timeout: 10))
        try blockingWait(for: channel.close())

        let v6 = try collectingChannel(on: group, at: .loopbackV6(port: 0))
        try blockingWait(for: v6.setSocketOption(.ipv6MulticastHops, to: 3), timeout: 10)
        XCTAssertEqual(try blockingWait(for: v6.socketOption(.ipv6MulticastHops), timeout: 10), 3)
        try blockingWait(for: v6.setSocketOption(.ipv6MulticastLoopback, to: false), timeout: 10)
        XCTAssertEqual(try blockingWait(for: v6.socketOption(.ipv6MulticastLoopback), timeout: 10), false)
        try blockingWait(for: v6.close())
    }

    func testAnIPv6EchoWorks() throws {
        let server = try blockingWait(for: DatagramBootstrap(group: group)
            .channelInitializer { channel in try channel.pipeline.addHandler(DatagramEchoHandler()) }
            .bind(to: .loopbackV6(port: 0)), timeout: 10)
        let client = try collectingChannel(on: group, at: .loopbackV6(port: 0))
        try client.send([1, 2], to: try XCTUnwrap(server.localAddress))
        XCTAssertEqual(try client.received(atLeast: 1).map(\.bytes), [[1, 2]])
        for channel in [client, server] { try blockingWait(for: channel.close()) }
    }

    func testWithSegmentationOffloadRunsOfEqualDatagramsLeaveInOneEntryAndArriveAsSeparateDatagrams() throws {
        var options = DatagramOptions()
        options.segmentationOffload = true
        let receiver = try collectingChannel(on: group)
        let sender = try collectingChannel(on: group, options: options)
        let active = try blockingWait(for: sender.loop.submit { sender.isSegmentationOffloadActive }, timeout: 10)
        guard active else {
            for channel in [receiver, sender] { try blockingWait(for: channel.close()) }
            throw XCTSkip("this kernel has no UDP_SEGMENT (generic segmentation offload)")
        }
        let target = try XCTUnwrap(receiver.localAddress)
        // 20 datagrams of 100 bytes and a last one of 30: one run, one sendmmsg entry.
        let datagrams = (0..<20).map { numberedDatagram($0, size: 100) } + [numberedDatagram(20, size: 30)]
        let writes = try blockingWait(for: sender.loop.submit { () -> [Future<Void>] in
            let writes = datagrams.map { sender.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: $0))) }
            sender.flush()
            return writes
        }, timeout: 10)
        for write in writes { try blockingWait(for: write, timeout: 10) }
        XCTAssertEqual(try receiver.received(atLeast: 21).map(\.bytes), datagrams)
        XCTAssertTrue(try blockingWait(for: sender.loop.submit { sender.isSegmentationOffloadActive }, timeout: 10),
                      "the kernel refused the segmented send: it fell back to one datagram per entry")
        for channel in [receiver, sender] { try blockingWait(for: channel.close()) }
    }

    func testWithReceiveOffloadCoalescedDatagramsAreDeliveredAsTheOriginalDatagrams() throws {
        var receiveOptions = DatagramOptions()
        receiveOptions.receiveOffload = true
        receiveOptions.batchSize = 4
        var sendOptions = DatagramOptions()
        sendOptions.segmentationOffload = true
        let receiver = try collectingChannel(on: group, options: receiveOptions)
        let sender = try collectingChannel(on: group, options: sendOptions)
        let active = try blockingWait(for: receiver.loop.submit { receiver.isReceiveOffloadActive }, timeout: 10)
        guard active else {
            for channel in [receiver, sender] { try blockingWait(for: channel.close()) }
            throw XCTSkip("this kernel has no UDP_GRO (generic receive offload)")
        }
        let target = try XCTUnwrap(receiver.localAddress)
        // A segmented send reaches a GRO socket on loopback still coalesced: the channel must cut it.
        let datagrams = (0..<10).map { numberedDatagram($0, size: 500) }
        let writes = try blockingWait(for: sender.loop.submit { () -> [Future<Void>] in
            let writes = datagrams.map { sender.write(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(bytes: $0))) }
            sender.flush()
            return writes
        }, timeout: 10)
        for write in writes { try blockingWait(for: write, timeout: 10) }
        let received = try receiver.received(atLeast: 10)
        XCTAssertEqual(received.map(\.bytes), datagrams)
        XCTAssertEqual(receiver.truncatedDatagrams, 0)
        for channel in [receiver, sender] { try blockingWait(for: channel.close()) }
    }
}
