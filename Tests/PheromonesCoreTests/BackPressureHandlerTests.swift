import Pheromones
import XCTest

/// ``BackPressureHandler`` on an embedded channel, whose writability the test sets and whose
/// transport counts the `read()` requests that reach it.
final class BackPressureHandlerTests: XCTestCase {
    private func makeChannel(_ handlers: [any ChannelHandler] = []) throws -> (EmbeddedChannel, BackPressureHandler) {
        let handler = BackPressureHandler()
        let channel = try EmbeddedChannel(handlers: [handler] + handlers)
        channel.connect()
        return (channel, handler)
    }

    func testAReadRequestedWhileTheChannelIsWritablePassesStraightThrough() throws {
        let (channel, handler) = try makeChannel()
        channel.pipeline.read()
        channel.pipeline.read()
        XCTAssertEqual(channel.readRequests, 2)
        XCTAssertFalse(handler.isHoldingRead)
    }

    func testReadsRequestedWhileTheChannelIsUnwritableAreHeldAndReleasedAsOneWhenItIsWritableAgain() throws {
        let (channel, handler) = try makeChannel()
        channel.setWritable(false)
        channel.pipeline.read()
        channel.pipeline.read()
        channel.pipeline.read()
        XCTAssertEqual(channel.readRequests, 0, "a read reached the transport while the channel was unwritable")
        XCTAssertTrue(handler.isHoldingRead)

        channel.setWritable(true)
        XCTAssertEqual(channel.readRequests, 1)
        XCTAssertFalse(handler.isHoldingRead)
        channel.pipeline.read()
        XCTAssertEqual(channel.readRequests, 2)
    }

    func testTurningWritableWithoutAHeldReadRequestsNothing() throws {
        let (channel, _) = try makeChannel()
        channel.setWritable(false)
        channel.setWritable(true)
        XCTAssertEqual(channel.readRequests, 0)
    }

    func testTurningUnwritableFlushesWhatIsWrittenButNotFlushed() throws {
        let (channel, _) = try makeChannel()
        channel.pipeline.write(ByteBuffer(string: "queued"))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
        channel.setWritable(false)
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "queued"))
    }

    func testRemovingTheHandlerReleasesAHeldRead() throws {
        let (channel, handler) = try makeChannel()
        channel.setWritable(false)
        channel.pipeline.read()
        try channel.pipeline.removeHandler(handler)
        XCTAssertEqual(channel.readRequests, 1, "the channel would stay stalled without the handler")
    }

    func testAHandlerAddedToAnUnwritableChannelHoldsReadsFromTheStart() throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        channel.setWritable(false)
        try channel.pipeline.addHandler(BackPressureHandler())
        channel.pipeline.read()
        XCTAssertEqual(channel.readRequests, 0)
        channel.setWritable(true)
        XCTAssertEqual(channel.readRequests, 1)
    }

    func testReadsWritesAndWritabilityChangesPassThroughToTheOtherStages() throws {
        let watcher = WritabilityWatcher()
        let (channel, _) = try makeChannel([watcher])
        try channel.writeInbound(ByteBuffer(string: "in"))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self), ByteBuffer(string: "in"))
        try channel.writeOutbound(ByteBuffer(string: "out"))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "out"))
        channel.setWritable(false)
        channel.setWritable(true)
        XCTAssertEqual(watcher.seen, [false, true])
    }
}

/// Records the channel's writability at each `channelWritabilityChanged` it sees.
private final class WritabilityWatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    var seen: [Bool] = []

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        seen.append(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }
}
