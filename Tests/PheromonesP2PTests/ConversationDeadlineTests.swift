import Pheromones
@testable import PheromonesP2P
import XCTest

/// A conversation's answer deadline, on virtual time: each step waits at most the timeout from
/// when its message was sent, however the one timer behind it is armed.
final class ConversationDeadlineTests: XCTestCase {
    private let peer = PeerKey(name: "peer", address: .loopbackV4(port: 1))

    private func start(on loop: EmbeddedEventLoop) -> (Conversation, Future<ConversationSummary>) {
        let promise = loop.makePromise(of: ConversationSummary.self)
        return (Conversation(peer: peer, promise: promise, loop: loop), promise.futureResult)
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
        XCTAssertEqual(loop.pendingTimerCount, 0)
        guard case .success(let result)? = summary.resultIfAvailable else {
            return XCTFail("the conversation did not complete: \(String(describing: summary.resultIfAvailable))")
        }
        XCTAssertEqual(result.ending, .completedHere)
        XCTAssertEqual(result.sent.map(\.operation), ["noticereq"])
        XCTAssertEqual(result.received.map(\.operation), ["noticeresp"])
    }
}
