import Pheromones
@testable import PheromonesP2P
import XCTest

/// A conversation's answer deadline, on virtual time: each step waits at most the timeout from
/// when its message was sent, however the one timer of the node's conversations is armed.
final class ConversationDeadlineTests: XCTestCase {
    private let peer = PeerKey(name: "peer", address: .loopbackV4(port: 1))

    private func start(on loop: EmbeddedEventLoop, deadlines: ConversationDeadlines? = nil) -> (Conversation, Future<ConversationSummary>) {
        let promise = loop.makePromise(of: ConversationSummary.self)
        let conversation = Conversation(peer: peer, promise: promise, deadlines: deadlines ?? ConversationDeadlines(loop: loop))
        return (conversation, promise.futureResult)
    }

    private func assertTimedOut(_ future: Future<ConversationSummary>, file: StaticString = #filePath, line: UInt = #line) {
        guard case .failure(let error)? = future.resultIfAvailable else {
            return XCTFail("the conversation has not failed: \(String(describing: future.resultIfAvailable))", file: file, line: line)
        }
        XCTAssertEqual(error as? P2PError, .readTimeout(peer: peer.unescapedDescription), file: file, line: line)
    }

    func testAnAnswerThatDoesNotComeFailsTheConversationAtTheTimeoutAndNotBefore() {
        let loop = EmbeddedEventLoop()
        let (conversation, summary) = start(on: loop)
        conversation.sent(Envelope(name: "a", operation: "getreq"), awaitingAnswerWithin: .seconds(5))
        loop.advanceTime(by: .milliseconds(4999))
        XCTAssertNil(summary.resultIfAvailable)
        loop.advanceTime(by: .milliseconds(1))
        assertTimedOut(summary)
    }

    func testALaterStepGetsTheWholeTimeoutFromItsOwnMessage() {
        let loop = EmbeddedEventLoop()
        let (conversation, summary) = start(on: loop)
        conversation.sent(Envelope(name: "a", operation: "connectreq"), awaitingAnswerWithin: .seconds(5))
        loop.advanceTime(by: .seconds(4))
        conversation.received(Envelope(name: "b", operation: "connectresp"))
        conversation.sent(Envelope(name: "a", operation: "getreq"), awaitingAnswerWithin: .seconds(5))
        // The first step's deadline passes: the second step's answer is not due until 9 s.
        loop.advanceTime(by: .seconds(4))
        XCTAssertNil(summary.resultIfAvailable)
        XCTAssertEqual(loop.pendingTimerCount, 1, "one timer per conversation")
        conversation.received(Envelope(name: "b", operation: "getresp"))
        conversation.sent(Envelope(name: "a", operation: "fetchreq"), awaitingAnswerWithin: .seconds(5))
        loop.advanceTime(by: .milliseconds(4999))
        XCTAssertNil(summary.resultIfAvailable)
        loop.advanceTime(by: .milliseconds(1))
        assertTimedOut(summary)
    }

    func testAShorterTimeoutThanTheArmedOneStillCounts() {
        let loop = EmbeddedEventLoop()
        let (conversation, summary) = start(on: loop)
        conversation.sent(Envelope(name: "a", operation: "connectreq"), awaitingAnswerWithin: .seconds(60))
        conversation.received(Envelope(name: "b", operation: "connectresp"))
        conversation.sent(Envelope(name: "a", operation: "getreq"), awaitingAnswerWithin: .seconds(1))
        loop.advanceTime(by: .seconds(1))
        assertTimedOut(summary)
    }

    func testNothingAwaitedMeansNoTimeoutAndACompletedConversationKeepsNoTimer() {
        let loop = EmbeddedEventLoop()
        let (conversation, summary) = start(on: loop)
        conversation.sent(Envelope(name: "a", operation: "noticereq"), awaitingAnswerWithin: .seconds(5))
        conversation.received(Envelope(name: "b", operation: "noticeresp"))
        // Answered: its deadline passes without failing it (the protocol has yet to answer).
        loop.advanceTime(by: .seconds(30))
        XCTAssertNil(summary.resultIfAvailable)
        conversation.complete(.completedHere)
        guard case .success(let result)? = summary.resultIfAvailable else {
            return XCTFail("the conversation did not complete: \(String(describing: summary.resultIfAvailable))")
        }
        XCTAssertEqual(result.ending, .completedHere)
        XCTAssertEqual(result.sent.map(\.operation), ["noticereq"])
        XCTAssertEqual(result.received.map(\.operation), ["noticeresp"])
    }

    func testManyConversationsShareOneTimerAndEachTimesOutOnItsOwnDeadline() {
        let loop = EmbeddedEventLoop()
        let deadlines = ConversationDeadlines(loop: loop)
        let (first, firstSummary) = start(on: loop, deadlines: deadlines)
        let (second, secondSummary) = start(on: loop, deadlines: deadlines)
        let (third, thirdSummary) = start(on: loop, deadlines: deadlines)
        first.sent(Envelope(name: "a", operation: "connectreq"), awaitingAnswerWithin: .seconds(5))
        loop.advanceTime(by: .seconds(1))
        second.sent(Envelope(name: "a", operation: "connectreq"), awaitingAnswerWithin: .seconds(5))
        third.sent(Envelope(name: "a", operation: "connectreq"), awaitingAnswerWithin: .seconds(5))
        XCTAssertEqual(loop.pendingTimerCount, 1, "one timer for the node's conversations")
        XCTAssertEqual(deadlines.watchedCount, 3)
        // The third is answered and ends; the first's answer is late at 5 s, the second's at 6 s.
        third.received(Envelope(name: "b", operation: "connectresp"))
        third.complete(.completedHere)
        XCTAssertEqual(deadlines.watchedCount, 2)
        loop.advanceTime(by: .milliseconds(3999))
        XCTAssertNil(firstSummary.resultIfAvailable)
        loop.advanceTime(by: .milliseconds(1))
        assertTimedOut(firstSummary)
        XCTAssertNil(secondSummary.resultIfAvailable)
        XCTAssertEqual(loop.pendingTimerCount, 1, "re-armed for the second")
        loop.advanceTime(by: .milliseconds(999))
        XCTAssertNil(secondSummary.resultIfAvailable)
        loop.advanceTime(by: .milliseconds(1))
        assertTimedOut(secondSummary)
        guard case .success? = thirdSummary.resultIfAvailable else { return XCTFail("the third did not complete") }
        XCTAssertEqual(deadlines.watchedCount, 0)
        XCTAssertEqual(loop.pendingTimerCount, 0, "nothing awaited: no timer")
    }

    func testAnEndedConversationLeavesTheListAndTheOthersKeepTheirPlaces() {
        let loop = EmbeddedEventLoop()
        let deadlines = ConversationDeadlines(loop: loop)
        let conversations = (0..<5).map { _ in start(on: loop, deadlines: deadlines) }
        for (conversation, _) in conversations {
            conversation.sent(Envelope(name: "a", operation: "getreq"), awaitingAnswerWithin: .seconds(5))
        }
        // End the first, a middle one and the last: the rest still time out.
        for index in [0, 2, 4] { conversations[index].0.fail(P2PError.nodeShutDown) }
        XCTAssertEqual(deadlines.watchedCount, 2)
        loop.advanceTime(by: .seconds(5))
        assertTimedOut(conversations[1].1)
        assertTimedOut(conversations[3].1)
        XCTAssertEqual(deadlines.watchedCount, 0)
    }
}
