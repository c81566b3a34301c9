import XCTest

import Pheromones

// MARK: - Fixtures

/// An ordered record of what the handlers saw, shared by the handlers of one test.
private final class PipelineLog {
    private(set) var entries: [String] = []

    func record(_ entry: String) { entries.append(entry) }

    /// The entries that are events, without the handlers' added/removed notifications.
    var events: [String] { entries.filter { !$0.hasSuffix(".added") && !$0.hasSuffix(".removed") } }
}

private struct PipelineTestError: Error, Equatable, CustomStringConvertible {
    var tag: String
    var description: String { "PipelineTestError(\(tag))" }
}

/// Records every inbound event under its id and passes it on.
private final class InboundRecorder: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let id: String
    let log: PipelineLog

    init(_ id: String, log: PipelineLog) {
        self.id = id
        self.log = log
    }

    func handlerAdded(context: ChannelHandlerContext) { log.record("\(id).added") }
    func handlerRemoved(context: ChannelHandlerContext) { log.record("\(id).removed") }

    func channelRegistered(context: ChannelHandlerContext) {
        log.record("\(id).registered")
        context.fireChannelRegistered()
    }

    func channelActive(context: ChannelHandlerContext) {
        log.record("\(id).active")
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        log.record("\(id).inactive")
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: String) {
        log.record("\(id).read(\(data))")
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        log.record("\(id).readComplete")
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        log.record("\(id).writability(\(context.channel.isWritable))")
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        log.record("\(id).event(\(event))")
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        log.record("\(id).error(\(error))")
        context.fireErrorCaught(error)
    }
}

/// Records every outbound operation under its id and passes it on.
private final class OutboundRecorder: ChannelOutboundHandler {
    typealias OutboundIn = String
    typealias OutboundOut = String

    let id: String
    let log: PipelineLog

    init(_ id: String, log: PipelineLog) {
        self.id = id
        self.log = log
    }

    func handlerAdded(context: ChannelHandlerContext) { log.record("\(id).added") }
    func handlerRemoved(context: ChannelHandlerContext) { log.record("\(id).removed") }

    func write(context: ChannelHandlerContext, data: String, promise: Promise<Void>?) {
        log.record("\(id).write(\(data))")
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        log.record("\(id).flush")
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        log.record("\(id).read")
        context.read()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        log.record("\(id).close(\(mode))")
        context.close(mode: mode, promise: promise)
    }
}

/// Removes itself on the first message it reads, and still passes that message on.
private final class RemovesItselfOnFirstRead: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let log: PipelineLog

    init(log: PipelineLog) { self.log = log }

    func handlerRemoved(context: ChannelHandlerContext) { log.record("once.removed") }

    func channelRead(context: ChannelHandlerContext, data: String) {
        log.record("once.read(\(data))")
        do {
            try context.removeHandler()
        } catch {
            context.fireErrorCaught(error)
        }
        context.fireChannelRead(data)
    }
}

/// Removes itself on the first write it sees, and still passes that write on.
private final class RemovesItselfOnFirstWrite: ChannelOutboundHandler {
    typealias OutboundIn = String
    typealias OutboundOut = String

    let log: PipelineLog

    init(log: PipelineLog) { self.log = log }

    func handlerRemoved(context: ChannelHandlerContext) { log.record("onceOut.removed") }

    func write(context: ChannelHandlerContext, data: String, promise: Promise<Void>?) {
        log.record("onceOut.write(\(data))")
        do {
            try context.removeHandler()
        } catch {
            promise?.fail(error)
            return
        }
        context.write(data, promise: promise)
    }
}

/// Holds messages back until it reads `"HELLO"`, then removes itself and releases them in order.
private final class HandshakeHandler: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let log: PipelineLog
    private var held: [String] = []

    init(log: PipelineLog) { self.log = log }

    func channelRead(context: ChannelHandlerContext, data: String) {
        guard data == "HELLO" else {
            log.record("handshake.held(\(data))")
            held.append(data)
            return
        }
        log.record("handshake.done")
        do {
            try context.removeHandler()
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        log.record("handshake.removed")
        let released = held
        held.removeAll()
        for message in released { context.fireChannelRead(message) }
    }
}

/// On its first read, adds `handler` right after itself, then passes the message on.
private final class InstallsAHandlerOnFirstRead: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let handler: InboundRecorder
    let position: ChannelPipeline.Position?
    private var installed = false

    init(_ handler: InboundRecorder, position: ChannelPipeline.Position? = nil) {
        self.handler = handler
        self.position = position
    }

    func channelRead(context: ChannelHandlerContext, data: String) {
        if !installed {
            installed = true
            do {
                try context.pipeline.addHandler(handler, name: handler.id, position: position ?? .after(context.name))
            } catch {
                context.fireErrorCaught(error)
            }
        }
        context.fireChannelRead(data)
    }
}

/// On its first read, removes the handler named `victim` before passing the message on.
private final class RemovesAnotherOnFirstRead: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let victim: String
    private var done = false

    init(victim: String) { self.victim = victim }

    func channelRead(context: ChannelHandlerContext, data: String) {
        if !done {
            done = true
            do {
                try context.pipeline.removeHandler(name: victim)
            } catch {
                context.fireErrorCaught(error)
            }
        }
        context.fireChannelRead(data)
    }
}

/// On its first read, removes itself and then the handler named `victim`, then passes the message on.
private final class RemovesItselfThenAnother: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let victim: String

    init(victim: String) { self.victim = victim }

    func channelRead(context: ChannelHandlerContext, data: String) {
        do {
            try context.removeHandler()
            try context.pipeline.removeHandler(name: victim)
        } catch {
            context.fireErrorCaught(error)
        }
        context.fireChannelRead(data)
    }
}

/// Closes the channel on a read, then reports the message and an error, the way a handler giving up does.
private final class ClosesOnRead: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    func channelRead(context: ChannelHandlerContext, data: String) {
        context.close(promise: nil)
        context.fireErrorCaught(PipelineTestError(tag: "gave up on \(data)"))
        context.fireChannelRead(data)
        context.write("bye", promise: nil)
    }
}

/// Turns every message into an error, the way a handler reports a failure it cannot recover from.
private final class FailsEveryRead: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    func channelRead(context: ChannelHandlerContext, data: String) {
        context.fireErrorCaught(PipelineTestError(tag: data))
    }
}

/// Collects the errors it sees; consumes them unless told to pass them on.
private final class ErrorCollector: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String

    let forwards: Bool
    private(set) var errors: [any Error] = []

    init(forwards: Bool = false) { self.forwards = forwards }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
        if forwards { context.fireErrorCaught(error) }
    }
}

/// Decodes a buffer into the number of bytes it holds.
private final class ByteCountDecoder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = Int

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.fireChannelRead(data.readableBytes)
    }
}

/// Formats numbers as strings.
private final class IntFormatter: ChannelInboundHandler {
    typealias InboundIn = Int
    typealias InboundOut = String

    func channelRead(context: ChannelHandlerContext, data: Int) {
        context.fireChannelRead("#\(data)")
    }
}

/// The end of a pipeline that reads strings.
private final class StringConsumer: ChannelInboundHandler {
    typealias InboundIn = String

    private(set) var received: [String] = []
    private(set) var addedCount = 0

    func handlerAdded(context: ChannelHandlerContext) { addedCount += 1 }

    func channelRead(context: ChannelHandlerContext, data: String) {
        received.append(data)
    }
}

/// Reads integers and keeps the errors it sees.
private final class IntCollector: ChannelInboundHandler {
    typealias InboundIn = Int
    typealias InboundOut = Int

    private(set) var received: [Int] = []
    private(set) var errors: [any Error] = []

    func channelRead(context: ChannelHandlerContext, data: Int) {
        received.append(data)
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }
}

/// Declares that it emits integers but fires strings.
private final class FiresTheWrongType: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = Int

    func channelRead(context: ChannelHandlerContext, data: String) {
        context.fireChannelRead("not a number: \(data)")
    }
}

/// A pass-through stage that only overrides `channelActive`: reads go through the default.
private final class CountsActivations: ChannelInboundHandler {
    typealias InboundIn = Int
    typealias InboundOut = Int

    private(set) var activations = 0

    func channelActive(context: ChannelHandlerContext) {
        activations += 1
        context.fireChannelActive()
    }
}

/// A pass-through outbound stage that only overrides `flush`: writes go through the default.
private final class CountsFlushes: ChannelOutboundHandler {
    typealias OutboundIn = Int
    typealias OutboundOut = Int

    private(set) var flushes = 0

    func flush(context: ChannelHandlerContext) {
        flushes += 1
        context.flush()
    }
}

/// Takes messages of any type and passes them on.
private final class AnyRecorder: ChannelInboundHandler {
    typealias InboundIn = Any
    typealias InboundOut = Any

    private(set) var seen: [Any] = []

    func channelRead(context: ChannelHandlerContext, data: Any) {
        seen.append(data)
        context.fireChannelRead(data)
    }
}

/// Accepts writes of any type and passes them on unchanged (the default `write`).
private final class AnyWriter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    typealias OutboundOut = Any
}

/// Accepts only strings for writing.
private final class StringWriter: ChannelOutboundHandler {
    typealias OutboundIn = String
    typealias OutboundOut = String
}

/// An inbound stage that answers with integers.
private final class WritesIntegers: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = String
    typealias OutboundOut = Int
}

/// Takes part in neither direction; it only sees being added and removed.
private final class PassiveHandler: ChannelHandler {
    let log: PipelineLog

    init(log: PipelineLog) { self.log = log }

    func handlerAdded(context: ChannelHandlerContext) { log.record("passive.added") }
    func handlerRemoved(context: ChannelHandlerContext) { log.record("passive.removed") }
}

// MARK: - Assertions

private func assertFailed<Value, Expected: Error & Equatable>(
    _ future: Future<Value>,
    with expected: Expected,
    file: StaticString = #filePath,
    line: UInt = #line
) {
    guard let result = future.resultIfAvailable else {
        XCTFail("the future has not completed", file: file, line: line)
        return
    }
    switch result {
    case .success:
        XCTFail("the future succeeded; expected \(expected)", file: file, line: line)
    case .failure(let error):
        XCTAssertEqual(error as? Expected, expected, file: file, line: line)
    }
}

private func assertSucceeded<Value>(_ future: Future<Value>, file: StaticString = #filePath, line: UInt = #line) {
    guard let result = future.resultIfAvailable else {
        XCTFail("the future has not completed", file: file, line: line)
        return
    }
    if case .failure(let error) = result {
        XCTFail("the future failed with \(error)", file: file, line: line)
    }
}

/// The detail of a ``ChannelPipelineError/typeMismatch(_:)``, or a test failure.
private func typeMismatchDetail(
    _ body: () throws(ChannelPipelineError) -> Void,
    file: StaticString = #filePath,
    line: UInt = #line
) -> String? {
    do {
        try body()
        XCTFail("expected a type mismatch, but the change was accepted", file: file, line: line)
        return nil
    } catch {
        guard case .typeMismatch(let detail) = error else {
            XCTFail("expected a type mismatch, got \(error)", file: file, line: line)
            return nil
        }
        return detail
    }
}

/// Records every event it sees, while declaring that it passes every per-message event through:
/// the pipeline must route those past it, and deliver the rest.
private final class DeclaredPassThrough: ChannelDuplexHandler {
    typealias InboundIn = String
    typealias InboundOut = String
    typealias OutboundIn = String
    typealias OutboundOut = String
    static var passThroughEvents: PassThroughEvents { [.channelRead, .channelReadComplete, .write, .flush, .read] }

    let log: PipelineLog

    init(log: PipelineLog) { self.log = log }

    func channelRead(context: ChannelHandlerContext, data: String) {
        log.record("skipped.read(\(data))")
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        log.record("skipped.readComplete")
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        log.record("skipped.writability(\(context.channel.isWritable))")
        context.fireChannelWritabilityChanged()
    }

    func write(context: ChannelHandlerContext, data: String, promise: Promise<Void>?) {
        log.record("skipped.write(\(data))")
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        log.record("skipped.flush")
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        log.record("skipped.readRequest")
        context.read()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: Promise<Void>?) {
        log.record("skipped.close(\(mode))")
        context.close(mode: mode, promise: promise)
    }
}

/// Turns each string into its length, while (wrongly) declaring that it passes messages through:
/// a stage that changes the message type must still be called.
private final class CountsCharactersDeclaringPassThrough: ChannelInboundHandler {
    typealias InboundIn = String
    typealias InboundOut = Int
    static var passThroughEvents: PassThroughEvents { [.channelRead] }

    func channelRead(context: ChannelHandlerContext, data: String) { context.fireChannelRead(data.count) }
}

// MARK: - Tests

final class ChannelPipelineTests: XCTestCase {
    // MARK: Event order

    func testInboundEventsVisitTheHandlersFromHeadToTailInOrder() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [
            InboundRecorder("a", log: log), InboundRecorder("b", log: log), InboundRecorder("c", log: log),
        ])
        channel.connect()
        try channel.writeInbound("m")
        channel.setWritable(false)
        channel.pipeline.fireUserInboundEventTriggered("ping")
        assertSucceeded(channel.close())

        let expected = [
            "registered", "active", "read(m)", "readComplete", "writability(false)", "event(ping)", "inactive",
        ].flatMap { event in ["a", "b", "c"].map { "\($0).\(event)" } }
        XCTAssertEqual(log.events, expected)
        XCTAssertEqual(try channel.readInbound(as: String.self), "m", "the read reaches the end of the pipeline")
        XCTAssertEqual(channel.unhandledUserEvents.map { "\($0)" }, ["ping"])
    }

    func testOutboundOperationsVisitTheHandlersFromTailToHeadInOrder() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [
            OutboundRecorder("a", log: log), OutboundRecorder("b", log: log), OutboundRecorder("c", log: log),
        ])
        channel.pipeline.write("m")
        channel.pipeline.flush()
        channel.pipeline.read()
        channel.pipeline.close()

        let expected = ["write(m)", "flush", "read", "close(all)"].flatMap { operation in
            ["c", "b", "a"].map { "\($0).\(operation)" }
        }
        XCTAssertEqual(log.events, expected)
        XCTAssertEqual(channel.readRequests, 1)
        XCTAssertEqual(try channel.readOutbound(as: String.self), "m", "the write reaches the transport")
    }

    func testHandlerAddedRunsBeforeTheFirstEventAndAPassiveHandlerSeesNothingElse() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [
            InboundRecorder("a", log: log), PassiveHandler(log: log), InboundRecorder("b", log: log),
        ])
        try channel.writeInbound("m")
        XCTAssertEqual(log.entries, [
            "a.added", "passive.added", "b.added",
            "a.registered", "b.registered",
            "a.read(m)", "b.read(m)", "a.readComplete", "b.readComplete",
        ])
        XCTAssertEqual(try channel.readInbound(as: String.self), "m")
    }

    // MARK: Adding

    func testHandlersAddedFirstLastBeforeAndAfterAreVisitedInThatOrder() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        let pipeline = channel.pipeline
        try pipeline.addHandler(InboundRecorder("middle", log: log), name: "middle")
        try pipeline.addHandler(InboundRecorder("last", log: log), name: "last", position: .last)
        try pipeline.addHandler(InboundRecorder("first", log: log), name: "first", position: .first)
        try pipeline.addHandler(InboundRecorder("beforeMiddle", log: log), name: "beforeMiddle", position: .before("middle"))
        try pipeline.addHandler(InboundRecorder("afterMiddle", log: log), name: "afterMiddle", position: .after("middle"))
        try pipeline.addHandler(InboundRecorder("veryFirst", log: log), name: "veryFirst", position: .before("first"))
        try pipeline.addHandler(InboundRecorder("veryLast", log: log), name: "veryLast", position: .after("last"))

        let order = ["veryFirst", "first", "beforeMiddle", "middle", "afterMiddle", "last", "veryLast"]
        XCTAssertEqual(pipeline.handlerNames, order)
        XCTAssertEqual(log.entries, [
            "middle.added", "last.added", "first.added", "beforeMiddle.added", "afterMiddle.added",
            "veryFirst.added", "veryLast.added",
        ], "handlerAdded runs as each handler is added")

        try channel.writeInbound("m")
        XCTAssertEqual(log.events.filter { $0.hasSuffix(".read(m)") }, order.map { "\($0).read(m)" })
    }

    func testUnnamedHandlersGetDistinctGeneratedNames() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [InboundRecorder("a", log: log), InboundRecorder("b", log: log)])
        try channel.pipeline.addHandler(InboundRecorder("c", log: log))
        let names = channel.pipeline.handlerNames
        XCTAssertEqual(names.count, 3)
        XCTAssertEqual(Set(names).count, 3, "generated names are unique: \(names)")
        XCTAssertTrue(names.allSatisfy { $0.contains("InboundRecorder") }, "\(names)")
    }

    func testAddingAHandlerUnderATakenNameIsRejectedAndLeavesThePipelineUnchanged() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(InboundRecorder("one", log: log), name: "codec")

        for taken in ["codec", "head", "tail"] {
            XCTAssertThrowsError(try channel.pipeline.addHandler(InboundRecorder("two", log: log), name: taken)) { error in
                XCTAssertEqual(error as? ChannelPipelineError, .duplicateName(taken))
            }
        }
        XCTAssertEqual(channel.pipeline.handlerNames, ["codec"])
        XCTAssertEqual(log.entries, ["one.added"], "a rejected handler is never told it was added")

        try channel.writeInbound("m")
        XCTAssertEqual(log.events, ["one.read(m)", "one.readComplete"])
    }

    func testAddingNextToAMissingHandlerThrowsNotFound() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        XCTAssertThrowsError(try channel.pipeline.addHandler(InboundRecorder("x", log: log), position: .before("ghost"))) { error in
            XCTAssertEqual(error as? ChannelPipelineError, .notFound("ghost"))
        }
        XCTAssertThrowsError(try channel.pipeline.addHandler(InboundRecorder("x", log: log), position: .after("ghost"))) { error in
            XCTAssertEqual(error as? ChannelPipelineError, .notFound("ghost"))
        }
        XCTAssertEqual(channel.pipeline.handlerNames, [])
        XCTAssertEqual(log.entries, [])
    }

    func testAHandlerAddedFromInsideAnEventSeesThatSameEvent() throws {
        let log = PipelineLog()
        let late = InboundRecorder("late", log: log)
        let channel = try EmbeddedChannel(handlers: [
            InstallsAHandlerOnFirstRead(late), InboundRecorder("end", log: log),
        ])
        try channel.writeInbound("first")
        try channel.writeInbound("second")

        XCTAssertEqual(channel.pipeline.handlerNames.count, 3)
        XCTAssertEqual(channel.pipeline.handlerNames[1], "late", "added right after the installer")
        XCTAssertEqual(log.entries, [
            "end.added", "end.registered",
            "late.added", "late.read(first)", "end.read(first)", "late.readComplete", "end.readComplete",
            "late.read(second)", "end.read(second)", "late.readComplete", "end.readComplete",
        ])
        XCTAssertEqual(try channel.readInbound(as: String.self), "first")
        XCTAssertEqual(try channel.readInbound(as: String.self), "second")
    }

    func testAHandlerAddedBeforeTheCurrentOneFromInsideAnEventOnlySeesLaterEvents() throws {
        let log = PipelineLog()
        let early = InboundRecorder("early", log: log)
        let channel = try EmbeddedChannel(handlers: [InstallsAHandlerOnFirstRead(early, position: .first)])
        try channel.writeInbound("first")
        try channel.writeInbound("second")
        XCTAssertEqual(log.events, ["early.readComplete", "early.read(second)", "early.readComplete"])
    }

    // MARK: Removing

    func testRemovingByNameByHandlerAndByContextTakesEachHandlerOutOfThePath() throws {
        let log = PipelineLog()
        let b = InboundRecorder("b", log: log)
        let c = InboundRecorder("c", log: log)
        let channel = try EmbeddedChannel()
        let pipeline = channel.pipeline
        try pipeline.addHandler(InboundRecorder("a", log: log), name: "a")
        try pipeline.addHandler(b, name: "b")
        try pipeline.addHandler(c, name: "c")
        try pipeline.addHandler(InboundRecorder("d", log: log), name: "d")

        try pipeline.removeHandler(name: "a")
        XCTAssertEqual(pipeline.handlerNames, ["b", "c", "d"])
        try pipeline.removeHandler(b)
        XCTAssertEqual(pipeline.handlerNames, ["c", "d"])
        let contextOfC = try XCTUnwrap(pipeline.context(handler: c))
        XCTAssertFalse(contextOfC.isRemoved)
        try pipeline.removeHandler(context: contextOfC)
        XCTAssertTrue(contextOfC.isRemoved)
        XCTAssertEqual(pipeline.handlerNames, ["d"])
        XCTAssertNil(pipeline.context(name: "c"))
        XCTAssertNil(pipeline.handler(type: StringConsumer.self))
        XCTAssertTrue(pipeline.handler(type: InboundRecorder.self) !== c)

        try channel.writeInbound("m")
        XCTAssertEqual(log.entries.filter { $0.hasSuffix(".removed") }, ["a.removed", "b.removed", "c.removed"])
        XCTAssertEqual(log.entries.filter { $0.contains(".read(") }, ["d.read(m)"], "removed handlers see no events")
        XCTAssertEqual(try channel.readInbound(as: String.self), "m")
    }

    func testRemovingAHandlerThatIsNotInThePipelineThrowsNotFound() throws {
        let log = PipelineLog()
        let handler = InboundRecorder("a", log: log)
        let channel = try EmbeddedChannel(handlers: [handler])
        let context = try XCTUnwrap(channel.pipeline.context(handler: handler))
        try channel.pipeline.removeHandler(context: context)

        XCTAssertThrowsError(try channel.pipeline.removeHandler(context: context)) { error in
            XCTAssertEqual(error as? ChannelPipelineError, .notFound(context.name))
        }
        XCTAssertThrowsError(try channel.pipeline.removeHandler(handler))
        XCTAssertThrowsError(try channel.pipeline.removeHandler(name: "nobody")) { error in
            XCTAssertEqual(error as? ChannelPipelineError, .notFound("nobody"))
        }
        XCTAssertEqual(log.entries.filter { $0.hasSuffix(".removed") }, ["a.removed"], "handlerRemoved runs once")
    }

    func testAHandlerRemovingItselfMidReadStillPassesTheMessageOn() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [RemovesItselfOnFirstRead(log: log), InboundRecorder("next", log: log)])
        try channel.writeInbound("1")
        try channel.writeInbound("2")
        try channel.writeInbound("3")

        XCTAssertEqual(log.events.filter { $0.contains("read(") }, [
            "once.read(1)", "next.read(1)", "next.read(2)", "next.read(3)",
        ], "the message in flight continues; later messages skip the removed handler")
        XCTAssertEqual(Array(log.entries.prefix(5)), [
            "next.added", "next.registered", "once.read(1)", "once.removed", "next.read(1)",
        ], "handlerRemoved runs during the removal, before the message moves on")
        XCTAssertEqual(channel.pipeline.handlerNames.count, 1)
        for expected in ["1", "2", "3"] {
            XCTAssertEqual(try channel.readInbound(as: String.self), expected)
        }
    }

    func testAnOutboundHandlerRemovingItselfMidWriteStillPassesTheWriteOn() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [OutboundRecorder("head-side", log: log), RemovesItselfOnFirstWrite(log: log)])
        let first = channel.loop.makePromise(of: Void.self)
        channel.pipeline.writeAndFlush("1", promise: first)
        try channel.writeOutbound("2")

        XCTAssertEqual(log.events, [
            "onceOut.write(1)", "head-side.write(1)", "head-side.flush", "head-side.write(2)", "head-side.flush",
        ])
        assertSucceeded(first.futureResult)
        XCTAssertEqual(try channel.readOutbound(as: String.self), "1")
        XCTAssertEqual(try channel.readOutbound(as: String.self), "2")
    }

    func testAHandshakeHandlerHoldsMessagesUntilReadyThenRemovesItselfAndReleasesThemInOrder() throws {
        let log = PipelineLog()
        let consumer = StringConsumer()
        let channel = try EmbeddedChannel(handlers: [HandshakeHandler(log: log), consumer])

        try channel.writeInbound("early-1")
        try channel.writeInbound("early-2")
        XCTAssertEqual(consumer.received, [], "nothing passes before the handshake")
        XCTAssertEqual(channel.pipeline.handlerNames.count, 2)

        try channel.writeInbound("HELLO")
        XCTAssertEqual(consumer.received, ["early-1", "early-2"], "held messages are released in order")
        XCTAssertEqual(channel.pipeline.handlerNames.count, 1)
        XCTAssertNil(channel.pipeline.handler(type: HandshakeHandler.self))

        try channel.writeInbound("late")
        XCTAssertEqual(consumer.received, ["early-1", "early-2", "late"])
        XCTAssertEqual(log.entries, [
            "handshake.held(early-1)", "handshake.held(early-2)", "handshake.done", "handshake.removed",
        ], "the handshake handler sees nothing after its removal")
    }

    func testRemovingTheNextHandlerBeforeForwardingMakesTheMessageSkipIt() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(RemovesAnotherOnFirstRead(victim: "victim"), name: "remover")
        try channel.pipeline.addHandler(InboundRecorder("victim", log: log), name: "victim")
        try channel.pipeline.addHandler(InboundRecorder("end", log: log), name: "end")

        try channel.writeInbound("m")
        XCTAssertEqual(log.events.filter { $0.contains("read(") }, ["end.read(m)"])
        XCTAssertEqual(channel.pipeline.handlerNames, ["remover", "end"])
    }

    func testAHandlerRemovingItselfAndThenItsSuccessorPassesTheMessageToTheStageAfterBoth() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(RemovesItselfThenAnother(victim: "victim"), name: "remover")
        try channel.pipeline.addHandler(InboundRecorder("victim", log: log), name: "victim")
        try channel.pipeline.addHandler(InboundRecorder("end", log: log), name: "end")

        try channel.writeInbound("m")
        XCTAssertEqual(log.entries.filter { $0.hasPrefix("victim.") }, ["victim.added", "victim.removed"],
                       "a removed handler sees no event after handlerRemoved")
        XCTAssertEqual(log.events.filter { $0.contains("read(") }, ["end.read(m)"])
        XCTAssertEqual(try channel.readInbound(as: String.self), "m")
        XCTAssertEqual(channel.pipeline.handlerNames, ["end"])
    }

    func testEventsFiredByAHandlerAfterItClosedTheChannelSkipTheRemovedHandlers() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [
            OutboundRecorder("out", log: log), ClosesOnRead(), InboundRecorder("after", log: log),
        ])
        channel.connect()
        XCTAssertThrowsError(try channel.writeInbound("m")) { error in
            XCTAssertEqual(error as? PipelineTestError, PipelineTestError(tag: "gave up on m"))
        }

        let afterRemoval = log.entries.drop { !$0.hasSuffix(".removed") }
        XCTAssertEqual(Set(afterRemoval), ["after.removed", "out.removed"],
                       "no event reaches a handler once handlerRemoved ran: \(log.entries)")
        XCTAssertEqual(try channel.readInbound(as: String.self), "m", "the message goes on to the end of the pipeline")
        XCTAssertNil(try channel.readOutbound(as: String.self), "the write after close is not sent")
    }

    // MARK: Errors

    func testAnErrorFiredByAHandlerReachesTheNextHandlersErrorCaught() throws {
        let collector = ErrorCollector()
        let channel = try EmbeddedChannel(handlers: [FailsEveryRead(), collector])
        try channel.writeInbound("boom")

        XCTAssertEqual(collector.errors.count, 1)
        XCTAssertEqual(collector.errors.first as? PipelineTestError, PipelineTestError(tag: "boom"))
        XCTAssertNoThrow(try channel.throwIfErrorCaught(), "a handled error does not reach the channel")
        XCTAssertNil(try channel.readInbound(as: String.self), "the failed read was not passed on")
    }

    func testAnUnhandledErrorReachesTheChannelAndIsThrownOnce() throws {
        let log = PipelineLog()
        let collector = ErrorCollector(forwards: true)
        let channel = try EmbeddedChannel(handlers: [FailsEveryRead(), collector, InboundRecorder("end", log: log)])

        XCTAssertThrowsError(try channel.writeInbound("lost")) { error in
            XCTAssertEqual(error as? PipelineTestError, PipelineTestError(tag: "lost"))
        }
        XCTAssertEqual(collector.errors.count, 1)
        XCTAssertEqual(log.events, ["end.registered", "end.error(PipelineTestError(lost))", "end.readComplete"])
        XCTAssertNoThrow(try channel.throwIfErrorCaught(), "a reported error is forgotten")

        channel.pipeline.fireErrorCaught(PipelineTestError(tag: "first"))
        channel.pipeline.fireErrorCaught(PipelineTestError(tag: "second"))
        XCTAssertThrowsError(try channel.throwIfErrorCaught()) { error in
            XCTAssertEqual(error as? PipelineTestError, PipelineTestError(tag: "first"))
        }
        XCTAssertThrowsError(try channel.throwIfErrorCaught()) { error in
            XCTAssertEqual(error as? PipelineTestError, PipelineTestError(tag: "second"))
        }
        XCTAssertNoThrow(try channel.throwIfErrorCaught())
    }

    // MARK: Writes and flushes

    func testTheBufferedOutboundBytesAreTheUnflushedWritesUntilAFlushHandsThemOn() throws {
        let channel = try EmbeddedChannel()
        XCTAssertEqual(channel.bufferedOutboundBytes, 0)
        channel.pipeline.write(ByteBuffer(string: "hello"))
        channel.pipeline.write(ByteBuffer(string: ", world"))
        XCTAssertEqual(channel.bufferedOutboundBytes, 12)
        channel.pipeline.flush()
        XCTAssertEqual(channel.bufferedOutboundBytes, 0)
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), ByteBuffer(string: "hello"))
    }

    func testUnflushedWritesStayInvisibleUntilAFlushWhichSucceedsTheirPromises() throws {
        let channel = try EmbeddedChannel(handlers: [StringWriter()])
        let first = channel.loop.makePromise(of: Void.self)
        let second = channel.loop.makePromise(of: Void.self)
        channel.pipeline.write("one", promise: first)
        channel.pipeline.write("two", promise: second)
        channel.loop.run()

        XCTAssertNil(try channel.readOutbound(as: String.self), "nothing is sent before a flush")
        XCTAssertFalse(first.futureResult.isFulfilled)
        XCTAssertFalse(second.futureResult.isFulfilled)

        channel.pipeline.flush()
        assertSucceeded(first.futureResult)
        assertSucceeded(second.futureResult)
        XCTAssertEqual(try channel.readOutbound(as: String.self), "one")
        XCTAssertEqual(try channel.readOutbound(as: String.self), "two")
        XCTAssertNil(try channel.readOutbound(as: String.self))
    }

    func testChannelWriteAndFlushReturnsAFutureThatSucceedsOnceSent() throws {
        let channel = try EmbeddedChannel()
        let written = channel.write("queued")
        XCTAssertFalse(written.isFulfilled)
        let flushed = channel.writeAndFlush("sent")
        assertSucceeded(written)
        assertSucceeded(flushed)
        XCTAssertEqual(try channel.readOutbound(as: String.self), "queued")
        XCTAssertEqual(try channel.readOutbound(as: String.self), "sent")
    }

    func testClosingFailsUnflushedWritesWithClosedBeforeWriteCompleted() throws {
        let channel = try EmbeddedChannel()
        let flushed = channel.loop.makePromise(of: Void.self)
        let pending = channel.loop.makePromise(of: Void.self)
        channel.pipeline.writeAndFlush("sent", promise: flushed)
        channel.pipeline.write("never sent", promise: pending)
        let closed = channel.close()

        assertSucceeded(flushed.futureResult)
        assertFailed(pending.futureResult, with: ChannelError.closedBeforeWriteCompleted)
        assertSucceeded(closed)
        XCTAssertEqual(try channel.readOutbound(as: String.self), "sent")
        XCTAssertNil(try channel.readOutbound(as: String.self))

        let afterClose = channel.loop.makePromise(of: Void.self)
        channel.pipeline.writeAndFlush("too late", promise: afterClose)
        assertFailed(afterClose.futureResult, with: ChannelError.ioOnClosedChannel)
    }

    // MARK: Type checks at configuration

    func testAPipelineWhoseDecoderOutputDoesNotFitTheConsumerIsRejectedAtConfiguration() throws {
        XCTAssertThrowsError(try EmbeddedChannel(handlers: [ByteCountDecoder(), StringConsumer()])) { error in
            guard case .typeMismatch(let detail) = error as? ChannelPipelineError else {
                return XCTFail("expected a type mismatch, got \(error)")
            }
            XCTAssertTrue(detail.contains("ByteCountDecoder"), detail)
            XCTAssertTrue(detail.contains("StringConsumer"), detail)
            XCTAssertTrue(detail.contains("Int") && detail.contains("String"), detail)
        }
    }

    func testARejectedConfigurationLeavesTheRunningPipelineUnchanged() throws {
        let ints = IntCollector()
        let consumer = StringConsumer()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(ints, name: "ints")

        let batch = typeMismatchDetail { () throws(ChannelPipelineError) in
            try channel.pipeline.addHandlers([ByteCountDecoder(), consumer], position: .first)
        }
        XCTAssertNotNil(batch)
        XCTAssertEqual(channel.pipeline.handlerNames, ["ints"], "neither handler of the rejected batch was added")
        XCTAssertEqual(consumer.addedCount, 0, "a rejected handler is never told it was added")

        try channel.pipeline.addHandler(ByteCountDecoder(), name: "decoder", position: .first)
        let single = typeMismatchDetail { () throws(ChannelPipelineError) in
            try channel.pipeline.addHandler(consumer, name: "consumer", position: .after("decoder"))
        }
        XCTAssertEqual(single, "'consumer' reads String but 'decoder' before it emits Int")
        XCTAssertEqual(channel.pipeline.handlerNames, ["decoder", "ints"])
        XCTAssertEqual(consumer.addedCount, 0)

        try channel.writeInbound(ByteBuffer(bytes: [1, 2, 3, 4]))
        XCTAssertEqual(ints.received, [4], "the pipeline works as before the rejected change")
        XCTAssertEqual(consumer.received, [])
    }

    func testRemovingAMiddleStageThatWouldBreakTheChainIsRejected() throws {
        let consumer = StringConsumer()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(ByteCountDecoder(), name: "decoder")
        try channel.pipeline.addHandler(IntFormatter(), name: "formatter")
        try channel.pipeline.addHandler(consumer, name: "consumer")

        let detail = typeMismatchDetail { () throws(ChannelPipelineError) in
            try channel.pipeline.removeHandler(name: "formatter")
        }
        XCTAssertEqual(detail, "'consumer' reads String but 'decoder' before it emits Int")
        XCTAssertEqual(channel.pipeline.handlerNames, ["decoder", "formatter", "consumer"])

        try channel.writeInbound(ByteBuffer(bytes: [1, 2, 3]))
        XCTAssertEqual(consumer.received, ["#3"], "the chain still works after the rejected removal")

        try channel.pipeline.removeHandler(name: "consumer")
        try channel.pipeline.removeHandler(name: "formatter")
        XCTAssertEqual(channel.pipeline.handlerNames, ["decoder"], "removing from the end keeps the chain whole")
    }

    func testAHandlerWritingATypeTheNextOutboundStageDoesNotAcceptIsRejected() throws {
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(StringWriter(), name: "writer")
        let detail = typeMismatchDetail { () throws(ChannelPipelineError) in
            try channel.pipeline.addHandler(WritesIntegers(), name: "app")
        }
        XCTAssertEqual(detail, "'app' writes Int but 'writer' before it accepts String")
        XCTAssertEqual(channel.pipeline.handlerNames, ["writer"])

        try channel.pipeline.addHandler(WritesIntegers(), name: "app", position: .first)
        XCTAssertEqual(channel.pipeline.handlerNames, ["app", "writer"], "nearer the head, nothing checks its writes")
    }

    // MARK: Type checks at run time

    func testAPassThroughStageForwardsWithTheDefaultImplementations() throws {
        let inbound = CountsActivations()
        let outbound = CountsFlushes()
        let channel = try EmbeddedChannel(handlers: [outbound, inbound])
        channel.connect()
        try channel.writeInbound(7)
        try channel.writeOutbound(8)

        XCTAssertEqual(inbound.activations, 1)
        XCTAssertEqual(outbound.flushes, 1)
        XCTAssertEqual(try channel.readInbound(as: Int.self), 7)
        XCTAssertEqual(try channel.readOutbound(as: Int.self), 8)
    }

    func testAnyTypedHandlersAcceptMessagesOfEveryType() throws {
        let recorder = AnyRecorder()
        let channel = try EmbeddedChannel(handlers: [AnyWriter(), recorder])
        try channel.writeInbound(1)
        try channel.writeInbound("two")
        try channel.writeInbound([3, 4])
        try channel.writeOutbound(5.5)
        try channel.writeOutbound("six")

        XCTAssertEqual(recorder.seen.count, 3)
        XCTAssertEqual(recorder.seen[0] as? Int, 1)
        XCTAssertEqual(recorder.seen[1] as? String, "two")
        XCTAssertEqual(recorder.seen[2] as? [Int], [3, 4])
        XCTAssertEqual(try channel.readInbound(as: Int.self), 1)
        XCTAssertEqual(try channel.readInbound(as: String.self), "two")
        XCTAssertEqual(try channel.readInbound(as: [Int].self), [3, 4])
        XCTAssertEqual(try channel.readOutbound(as: Double.self), 5.5)
        XCTAssertEqual(try channel.readOutbound(as: String.self), "six")
    }

    func testAnAnyTypedStageBetweenTypedStagesPassesTheMessagesItForwardsToTheNextStage() throws {
        let recorder = AnyRecorder()
        let collector = IntCollector()
        let channel = try EmbeddedChannel(handlers: [ByteCountDecoder(), recorder, collector])
        try channel.writeInbound(ByteBuffer(bytes: [9, 9]))

        XCTAssertEqual(recorder.seen.count, 1)
        XCTAssertEqual(collector.errors.map { "\($0)" }, [])
        XCTAssertEqual(collector.received, [2], "the Any stage's output is the Int the decoder produced")
        XCTAssertEqual(try channel.readInbound(as: Int.self), 2)
    }

    func testAnAnyTypedStageForwardingAValueOfTheWrongTypeReportsAMismatchToTheReceiver() throws {
        let collector = IntCollector()
        let channel = try EmbeddedChannel(handlers: [AnyRecorder(), collector])
        try channel.writeInbound("not an int")

        XCTAssertEqual(collector.received, [])
        XCTAssertEqual(collector.errors.count, 1)
        guard case .messageTypeMismatch = collector.errors.first as? ChannelPipelineError else {
            return XCTFail("expected a message type mismatch, got \(collector.errors)")
        }
    }

    func testFiringAMessageOfTheWrongRuntimeTypeReportsAMismatchToTheReceiverInsteadOfCrashing() throws {
        let collector = IntCollector()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(FiresTheWrongType(), name: "liar")
        try channel.pipeline.addHandler(collector, name: "ints")
        try channel.writeInbound("x")

        XCTAssertEqual(collector.received, [], "the mistyped message is dropped")
        XCTAssertEqual(collector.errors.count, 1)
        guard case .messageTypeMismatch(let detail) = collector.errors.first as? ChannelPipelineError else {
            return XCTFail("expected a message type mismatch, got \(collector.errors)")
        }
        XCTAssertTrue(detail.contains("'liar'") && detail.contains("'ints'"), detail)
        XCTAssertTrue(detail.contains("String") && detail.contains("Int"), detail)
        XCTAssertNil(try channel.readInbound(as: Any.self))
    }

    func testWritingAMessageOfTheWrongTypeFailsItsPromiseWithMessageTypeMismatch() throws {
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(StringWriter(), name: "strings")
        let promise = channel.loop.makePromise(of: Void.self)
        channel.pipeline.writeAndFlush(42, promise: promise)

        guard case .failure(let error) = promise.futureResult.resultIfAvailable,
            case .messageTypeMismatch(let detail) = error as? ChannelPipelineError
        else {
            return XCTFail("expected the write to fail with a message type mismatch")
        }
        XCTAssertTrue(detail.contains("'strings'") && detail.contains("Int") && detail.contains("String"), detail)
        XCTAssertNil(try channel.readOutbound(as: Any.self), "nothing reached the transport")
        XCTAssertThrowsError(try channel.throwIfErrorCaught(), "the mismatch is also reported to the pipeline") { error in
            guard case .messageTypeMismatch = error as? ChannelPipelineError else {
                return XCTFail("unexpected \(error)")
            }
        }
        XCTAssertNoThrow(try channel.writeOutbound("fine"))
        XCTAssertEqual(try channel.readOutbound(as: String.self), "fine")
    }

    // MARK: Closing and finishing

    func testChannelInactiveFiresExactlyOnceOnCloseAndHandlersAreRemovedAfterwards() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [InboundRecorder("a", log: log), InboundRecorder("b", log: log)])
        channel.connect()
        XCTAssertTrue(channel.isActive)

        let firstClose = channel.close()
        let secondClose = channel.close()
        assertSucceeded(firstClose)
        assertFailed(secondClose, with: ChannelError.alreadyClosed)
        XCTAssertTrue(channel.closeFuture.isFulfilled)
        XCTAssertFalse(channel.isActive)
        XCTAssertNoThrow(try channel.finish())

        let closing = Array(log.entries.drop { !$0.hasSuffix(".inactive") })
        XCTAssertEqual(closing.filter { $0.hasSuffix(".inactive") }, ["a.inactive", "b.inactive"])
        XCTAssertEqual(Set(closing.dropFirst(2)), ["a.removed", "b.removed"], "handlers are removed after inactive")
        XCTAssertEqual(closing.count, 4)
        XCTAssertEqual(channel.pipeline.handlerNames, [])
    }

    func testFinishClosesTheChannelAndReportsWhatWasNeverRead() throws {
        let channel = try EmbeddedChannel()
        channel.connect()
        try channel.writeInbound("unread inbound")
        try channel.writeOutbound("unread outbound")
        let pending = channel.loop.makePromise(of: Void.self)
        channel.pipeline.write("never flushed", promise: pending)

        let leftOvers = try channel.finish()
        XCTAssertFalse(leftOvers.isClean)
        XCTAssertEqual(leftOvers.inbound.map { $0 as? String }, ["unread inbound"])
        XCTAssertEqual(leftOvers.outbound.map { $0 as? String }, ["unread outbound"])
        XCTAssertEqual(leftOvers.pendingOutbound.map { $0 as? String }, ["never flushed"])
        assertFailed(pending.futureResult, with: ChannelError.closedBeforeWriteCompleted)
        XCTAssertTrue(channel.closeFuture.isFulfilled)
        XCTAssertFalse(channel.isActive)

        let clean = try EmbeddedChannel()
        try clean.writeInbound("read")
        XCTAssertEqual(try clean.readInbound(as: String.self), "read")
        XCTAssertTrue(try clean.finish().isClean)
    }

    func testReadingAQueuedMessageAsTheWrongTypeThrows() throws {
        let channel = try EmbeddedChannel()
        try channel.writeInbound(1)
        XCTAssertThrowsError(try channel.readInbound(as: String.self)) { error in
            XCTAssertEqual(error as? EmbeddedChannelError, .wrongType(expected: "String", actual: "Int"))
        }
        XCTAssertNil(try channel.readInbound(as: Int.self), "the mistyped message was consumed")
    }

    // MARK: Pass-through events

    func testPerMessageEventsThatAHandlerDeclaresItPassesThroughAreRoutedPastIt() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel(handlers: [
            InboundRecorder("a", log: log), OutboundRecorder("a", log: log), DeclaredPassThrough(log: log),
            InboundRecorder("b", log: log), OutboundRecorder("b", log: log),
        ])
        channel.connect()
        try channel.writeInbound("in")
        channel.pipeline.write("out")
        channel.pipeline.flush()
        channel.pipeline.read()
        channel.setWritable(false)
        assertSucceeded(channel.close())

        XCTAssertEqual(log.events.filter { $0.hasPrefix("skipped.") }, ["skipped.writability(false)", "skipped.close(all)"],
                       "only the events it did not declare reach the handler")
        XCTAssertEqual(log.events.filter { !$0.hasPrefix("skipped.") && !$0.contains("active") && !$0.contains("registered") }, [
            "a.read(in)", "b.read(in)", "a.readComplete", "b.readComplete",
            "b.write(out)", "a.write(out)", "b.flush", "a.flush", "b.read", "a.read",
            "a.writability(false)", "b.writability(false)", "b.close(all)", "a.close(all)",
        ], "the stages on either side see every event, in order")
        XCTAssertEqual(try channel.readInbound(as: String.self), "in")
        XCTAssertEqual(try channel.readOutbound(as: String.self), "out")
        XCTAssertEqual(channel.readRequests, 1)
    }

    func testAStageThatChangesTheMessageTypeIsCalledEvenIfItDeclaresPassThrough() throws {
        let channel = try EmbeddedChannel(handlers: [CountsCharactersDeclaringPassThrough()])
        try channel.writeInbound("four")
        XCTAssertEqual(try channel.readInbound(as: Int.self), 4)
    }

    func testMessagesRoutedPastAPassThroughStageSkipHandlersRemovedMidEvent() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(RemovesItselfThenAnother(victim: "victim"), name: "remover")
        try channel.pipeline.addHandler(DeclaredPassThrough(log: log), name: "skipped")
        try channel.pipeline.addHandler(InboundRecorder("victim", log: log), name: "victim")
        try channel.pipeline.addHandler(InboundRecorder("end", log: log), name: "end")

        try channel.writeInbound("m")
        try channel.writeInbound("n")
        XCTAssertEqual(log.events.filter { $0.contains("read(") }, ["end.read(m)", "end.read(n)"])
        XCTAssertEqual(channel.pipeline.handlerNames, ["skipped", "end"])
    }

    func testRemovingAPassThroughStageLeavesTheRouteThroughItsNeighbours() throws {
        let log = PipelineLog()
        let channel = try EmbeddedChannel()
        try channel.pipeline.addHandler(InboundRecorder("a", log: log), name: "a")
        try channel.pipeline.addHandler(DeclaredPassThrough(log: log), name: "skipped")
        try channel.pipeline.addHandler(InboundRecorder("b", log: log), name: "b")
        try channel.pipeline.removeHandler(name: "skipped")
        try channel.pipeline.addHandler(InboundRecorder("c", log: log), name: "c", position: .after("a"))

        try channel.writeInbound("m")
        XCTAssertEqual(log.events.filter { $0.contains("read(") }, ["a.read(m)", "c.read(m)", "b.read(m)"])
    }
}
