import XCTest

import Pheromones

private func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

/// The line and fixed-length framers: what every chat, text protocol or Redis client needs, checked
/// with the decoder verifier (whole, byte by byte, random splits, surrounded by other input) and
/// against hostile input.
final class LineAndFixedLengthDecoderTests: XCTestCase {
    func testLinesEndingInLFOrCRLFAreSplitAndFiredWithoutTheirEnding() throws {
        let pairs: [(ByteBuffer, [ByteBuffer])] = [
            (bytes("hello\n"), [bytes("hello")]),
            (bytes("hello\r\n"), [bytes("hello")]),
            (bytes("\n"), [bytes("")]),
            (bytes("\r\n"), [bytes("")]),
            (bytes("one\ntwo\r\nthree\n"), [bytes("one"), bytes("two"), bytes("three")]),
            // A carriage return inside a line is content; only the one before the line feed is the ending.
            (bytes("a\rb\r\r\n"), [bytes("a\rb\r")]),
            (bytes(String(repeating: "x", count: 64) + "\r\n"), [bytes(String(repeating: "x", count: 64))]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { LineBasedFrameDecoder(maximumLineLength: 64) }
    }

    func testALineOfExactlyTheMaximumPassesWithEitherEndingAndOneByteMoreIsRejected() throws {
        var decoder = LineBasedFrameDecoder(maximumLineLength: 4)
        var input = bytes("abcd\r\nabcd\nabcde\n")
        XCTAssertEqual(try decoder.decode(buffer: &input), bytes("abcd"))
        XCTAssertEqual(try decoder.decode(buffer: &input), bytes("abcd"))
        XCTAssertThrowsError(try decoder.decode(buffer: &input)) { error in
            XCTAssertEqual(error as? LineBasedFrameDecoderError, .lineTooLong(maximum: 4))
        }
    }

    func testALineWithoutAnEndIsRejectedAsSoonAsItCannotFitNotWhenItsEndArrives() throws {
        var decoder = LineBasedFrameDecoder(maximumLineLength: 4)
        // Four bytes and a carriage return may still be a line of four: wait.
        var input = bytes("abcd\r")
        XCTAssertNil(try decoder.decode(buffer: &input))
        XCTAssertEqual(input.readableBytes, 5, "a decoder returning nil consumed bytes")
        // One byte more cannot be.
        var longer = bytes("abcde\r")
        XCTAssertThrowsError(try decoder.decode(buffer: &longer))
    }

    func testAHostilePeerThatNeverSendsALineFeedIsClosedAfterTheMaximumWithoutBufferingMore() throws {
        let channel = try EmbeddedChannel(handler: ByteToMessageHandler(LineBasedFrameDecoder(maximumLineLength: 1_024)))
        var caught: (any Error)?
        for _ in 0..<100 {
            do {
                try channel.writeInbound(ByteBuffer(repeating: UInt8(ascii: "a"), count: 100))
            } catch {
                caught = error
                break
            }
        }
        XCTAssertEqual(caught as? LineBasedFrameDecoderError, .lineTooLong(maximum: 1_024))
        XCTAssertFalse(channel.isActive, "the connection stayed open")
    }

    func testFixedLengthFramesAreCutWhateverTheReadsLookLike() throws {
        let pairs: [(ByteBuffer, [ByteBuffer])] = [
            (bytes("abc"), [bytes("abc")]),
            (bytes("abcdefghi"), [bytes("abc"), bytes("def"), bytes("ghi")]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FixedLengthFrameDecoder(frameLength: 3) }
    }
}
