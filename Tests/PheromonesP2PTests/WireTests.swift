import Pheromones
import PheromonesP2P
import XCTest

// Golden JSON bytes in these tests come from Go's `encoding/json` marshalling the original's
// `MsgPto` and `MsgGreetingReq` (Blockchain-CN/pheromones), except `\b` and `\f`, which Go 1.22
// and later write as short escapes (Go 1.19 wrote `\u0008` and `\u000c`).

// MARK: - Helpers

private func bytes(_ string: String) -> ByteBuffer { ByteBuffer(string: string) }

private func text(_ buffer: ByteBuffer) -> String { String(decoding: buffer.readableBytesView, as: UTF8.self) }

/// A native envelope payload built by hand (not by the encoder), so decoder tests do not depend on it.
private func nativePayload(
    version: UInt8 = 1, flags: UInt8? = nil, hopLimit: UInt8 = 0, messageID: UInt64 = 0, correlationID: UInt64 = 0,
    name: [UInt8], operation: [UInt8], data: [UInt8]? = nil
) -> [UInt8] {
    var buffer = ByteBuffer()
    buffer.writeInteger(version)
    buffer.writeInteger(flags ?? (data == nil ? 0 : 1))
    buffer.writeInteger(hopLimit)
    buffer.writeInteger(messageID)
    buffer.writeInteger(correlationID)
    buffer.writeInteger(UInt16(name.count))
    buffer.writeBytes(name)
    buffer.writeInteger(UInt16(operation.count))
    buffer.writeBytes(operation)
    if let data {
        buffer.writeInteger(UInt32(data.count))
        buffer.writeBytes(data)
    }
    return Array(buffer.readableBytesView)
}

/// A native frame: 4-byte big-endian length, then the payload.
private func frame(_ payload: [UInt8]) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeInteger(UInt32(payload.count))
    buffer.writeBytes(payload)
    return buffer
}

/// Feeds `input` and expects `expected` to be fired (as the first unhandled error).
private func assertInboundError<E: Error & Equatable>(
    _ channel: EmbeddedChannel, _ input: ByteBuffer, _ expected: E, file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertThrowsError(try channel.writeInbound(input), file: file, line: line) { error in
        XCTAssertEqual(error as? E, expected, "got \(error)", file: file, line: line)
    }
}

private func connectedChannel(_ handlers: [any ChannelHandler]) throws -> EmbeddedChannel {
    let channel = try EmbeddedChannel(handlers: handlers)
    channel.connect()
    return channel
}

// MARK: - JSON object framer

final class JSONObjectFramerTests: XCTestCase {
    func testFramesObjectsHoweverTheInputIsSplit() throws {
        let tricky = #"{"s":"}{][\"\\","n":{"a":[1,{"b":[]},"]"]},"e":"\\"}"#
        let unicode = #"{"u":"é😀\u00e9\ud83d\ude00 \u2028","v":"\"}"}"#
        let pairs: [(ByteBuffer, [ByteBuffer])] = [
            (bytes(#"{"name":"luda","operation":"connectreq","data":null}"#), [bytes(#"{"name":"luda","operation":"connectreq","data":null}"#)]),
            (bytes(tricky + "\n"), [bytes(tricky)]),
            (bytes(" \n\t\r" + unicode), [bytes(unicode)]),
            (bytes("{}{}\n{ }"), [bytes("{}"), bytes("{}"), bytes("{ }")]),
            (bytes(#"{"deep":[[[[{"x":[{}]}]]]]}"# + "\r\n"), [bytes(#"{"deep":[[[[{"x":[{}]}]]]]}"#)]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { JSONObjectFramer() }
    }

    func testConcatenatedObjectsInOneReadAreSlicesOfIt() throws {
        let channel = try connectedChannel([ByteToMessageHandler(JSONObjectFramer())])
        try channel.writeInbound(bytes("{\"a\":1}{\"b\":\"}\"}\n  {\"c\":[3]}\n"))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map(text), #"{"a":1}"#)
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map(text), #"{"b":"}"}"#)
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map(text), #"{"c":[3]}"#)
        XCTAssertNil(try channel.readInbound(as: ByteBuffer.self))
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testResumesTheScanInsteadOfRescanning() throws {
        // White-box: the framer must not look at bytes it already scanned. Hand it an unfinished
        // object, then the same number of bytes (changed, which the handler never does) plus the
        // rest: a resumed scan sees only "1}" and closes the object; a rescan would see "{{{{{".
        var framer = JSONObjectFramer()
        var first = bytes(#"{"a":"#)
        XCTAssertNil(try framer.decode(buffer: &first))
        var second = bytes("{{{{{1}")
        XCTAssertEqual(try framer.decode(buffer: &second).map(text), "{{{{{1}")
        XCTAssertEqual(second.readableBytes, 0)
    }

    func testNeverClosingObjectIsRefusedAtTheLimitAndTheChannelClosed() throws {
        let channel = try connectedChannel(JSONWire.handlers(maximumObjectSize: 64))
        // 64 bytes of an unfinished object: still waiting.
        try channel.writeInbound(bytes("{\"a\":\"" + String(repeating: "x", count: 58)))
        XCTAssertTrue(channel.isActive)
        // Byte 65 proves it too large, whatever comes after.
        assertInboundError(channel, bytes("x"), WireError.objectTooLarge(limit: 64))
        XCTAssertFalse(channel.isActive)
        XCTAssertTrue(channel.closeFuture.isFulfilled)
    }

    func testObjectOfExactlyTheLimitPasses() throws {
        let object = "{\"a\":\"" + String(repeating: "x", count: 56) + "\"}"
        XCTAssertEqual(object.utf8.count, 64)
        let channel = try connectedChannel([ByteToMessageHandler(JSONObjectFramer(maximumObjectSize: 64))])
        try channel.writeInbound(bytes("\n" + object + "\n"))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map(text), object)
        XCTAssertTrue(channel.isActive)
    }

    func testGarbageBetweenObjectsIsAFramingError() throws {
        let channel = try connectedChannel([ByteToMessageHandler(JSONObjectFramer())])
        // What a Go server answers when its protocol's Handle fails: not JSON at all.
        assertInboundError(channel, bytes("{\"a\":1}params error"), WireError.malformedJSON("expected '{' at the start of a message, found 'p'"))
        XCTAssertEqual(try channel.readInbound(as: ByteBuffer.self).map(text), #"{"a":1}"#)
        XCTAssertFalse(channel.isActive)

        for input in ["[1]", "\"s\"", "1", "\u{FEFF}{}", "}"] {
            var framer = JSONObjectFramer()
            var buffer = bytes(input)
            XCTAssertThrowsError(try framer.decode(buffer: &buffer), input) { error in
                guard case .malformedJSON = error as? WireError else { return XCTFail("\(input): \(error)") }
            }
        }
    }

    func testMismatchedBracketsAreAFramingError() {
        for input in [#"{"a":[}"#, #"{"a":{]}"#, "{]"] {
            var framer = JSONObjectFramer()
            var buffer = bytes(input)
            XCTAssertThrowsError(try framer.decode(buffer: &buffer), input) { error in
                guard case .malformedJSON = error as? WireError else { return XCTFail("\(input): \(error)") }
            }
        }
    }

    func testNestingLimit() throws {
        func nested(_ depth: Int) -> String {
            "{\"a\":" + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}"
        }
        var framer = JSONObjectFramer()
        var ok = bytes(nested(64))
        XCTAssertEqual(try framer.decode(buffer: &ok).map(text), nested(64))

        let channel = try connectedChannel([ByteToMessageHandler(JSONObjectFramer())])
        assertInboundError(channel, bytes(nested(65)), WireError.nestingTooDeep)
        XCTAssertFalse(channel.isActive)
    }

    func testWhitespaceBetweenObjectsIsBounded() throws {
        let limit = JSONObjectFramer.maximumWhitespaceBetweenObjects
        var framer = JSONObjectFramer()
        var fine = bytes(String(repeating: "\n", count: limit) + "{}")
        XCTAssertEqual(try framer.decode(buffer: &fine).map(text), "{}")

        let channel = try connectedChannel(JSONWire.handlers())
        try channel.writeInbound(bytes(String(repeating: " ", count: limit)))
        XCTAssertThrowsError(try channel.writeInbound(bytes(" "))) { error in
            guard case .malformedJSON = error as? WireError else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(channel.isActive)
    }

    func testUnfinishedObjectAtEndOfInputIsReported() throws {
        let channel = try connectedChannel([ByteToMessageHandler(JSONObjectFramer())])
        try channel.writeInbound(bytes("{\"a\":"))
        XCTAssertThrowsError(try channel.finish()) { error in
            XCTAssertEqual(error as? ByteToMessageDecoderError, .leftoverDataAtEOF(bytes: 5))
        }
    }
}

// MARK: - JSON envelopes

final class JSONEnvelopeTests: XCTestCase {
    private func encode(_ envelope: Envelope) -> String {
        var buffer = ByteBuffer()
        JSONEnvelopeEncoder().encode(envelope, into: &buffer)
        return text(buffer)
    }

    private func decode(_ json: String) throws -> Envelope {
        try JSONEnvelopeDecoder().decode(bytes(json))
    }

    private func assertDecodeError(_ json: String, _ expected: WireError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(json), file: file, line: line) { error in
            XCTAssertEqual(error as? WireError, expected, file: file, line: line)
        }
    }

    private func assertMalformed(_ json: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(json), json, file: file, line: line) { error in
            guard case .malformedEnvelope = error as? WireError else {
                return XCTFail("\(json): \(error)", file: file, line: line)
            }
        }
    }

    func testEncodingIsByteForByteGo() {
        let greeting = Greeting(address: "127.0.0.1:12345", account: 11900).encoded()
        XCTAssertEqual(
            encode(Envelope(name: "luda", operation: "connectreq", data: greeting)),
            #"{"name":"luda","operation":"connectreq","data":"eyJhZGQiOiIxMjcuMC4wLjE6MTIzNDUiLCJhY2NvdW50IjoxMTkwMH0="}"#)
        XCTAssertEqual(
            encode(Envelope(name: "yoghurt", operation: "noticeresp")),
            #"{"name":"yoghurt","operation":"noticeresp","data":null}"#)
        XCTAssertEqual(encode(Envelope(name: "", operation: "", data: ByteBuffer())), #"{"name":"","operation":"","data":""}"#)
        // The native-only fields are not part of the JSON wire.
        XCTAssertEqual(
            encode(Envelope(name: "a", operation: "b", messageID: 7, correlationID: 8, hopLimit: 9)),
            #"{"name":"a","operation":"b","data":null}"#)
    }

    func testEncodingEscapesStringsAsGoDoes() {
        let envelope = Envelope(
            name: "<a&b>",
            operation: "q\"b\\s/\n\r\t\u{08}\u{0C}\u{01}\u{1F}\u{7F}\u{2028}\u{2029}é😀",
            data: ByteBuffer(bytes: [0, 1, 2, 0xfe, 0xff]))
        XCTAssertEqual(
            encode(envelope),
            #"{"name":"\u003ca\u0026b\u003e","operation":"q\"b\\s/\n\r\t\b\f\u0001\u001f"# + "\u{7F}"
                + #"\u2028\u2029é😀","data":"AAEC/v8="}"#)
    }

    func testInvalidUTF8IsWrittenAsReplacementEscapes() {
        var buffer = ByteBuffer()
        JSONEnvelopeEncoder.writeQuoted(utf8: Array("bad".utf8) + [0xff, 0xe2, 0x82] + Array("x".utf8) + [0xed, 0xa0, 0x80], into: &buffer)
        XCTAssertEqual(text(buffer), #""bad\ufffd\ufffd\ufffdx\ufffd\ufffd\ufffd""#)
    }

    func testDecodesAnyFieldOrderAndCase() throws {
        XCTAssertEqual(
            try decode(#"{"operation":"getreq","data":null,"name":"x"}"#),
            Envelope(name: "x", operation: "getreq"))
        XCTAssertEqual(
            try decode(#"{"NAME":"a","Operation":"b","DaTa":"AAE="}"#),
            Envelope(name: "a", operation: "b", data: ByteBuffer(bytes: [0, 1])))
        XCTAssertEqual(try decode(#"{"opeRation":"mixed"}"#).operation, "mixed")
        // Escapes in keys are decoded before matching.
        XCTAssertEqual(try decode(#"{"n\u0061me":"esc"}"#).name, "esc")
        // Non-ASCII look-alikes do not fold to ASCII letters (Go's rule).
        XCTAssertEqual(try decode(#"{"operatıon":"dotless","operatİon":"dotted"}"#), Envelope(name: "", operation: ""))
        // Whitespace everywhere JSON allows it.
        XCTAssertEqual(
            try decode(" \n{ \"name\" :\t\"ws\" ,\r\n \"data\" : [ ] } \n"),
            Envelope(name: "ws", operation: "", data: ByteBuffer()))
    }

    func testSkipsUnknownFieldsOfEveryKind() throws {
        let json = #"{"x":{"y":[1,{"z":null}],"w":"\u00e9"},"t":true,"f":false,"n":null,"num":-1.5e+3,"# +
            #""s":"}","a":[[],{}],"name":"n","id":42}"#
        XCTAssertEqual(try decode(json), Envelope(name: "n", operation: ""))
    }

    func testDuplicateKeysTakeTheLastValueButNullLeavesAStringAlone() throws {
        XCTAssertEqual(try decode(#"{"name":"a","name":"b"}"#).name, "b")
        XCTAssertEqual(try decode(#"{"name":"a","NAME":"c"}"#).name, "c")
        XCTAssertEqual(try decode(#"{"name":"a","name":null}"#).name, "a")
        XCTAssertNil(try decode(#"{"data":"AAE=","data":null}"#).data)
        XCTAssertEqual(try decode(#"{"data":null,"data":""}"#).data, ByteBuffer())
        // A top-level null leaves everything at its zero value, as Go's Unmarshal does.
        XCTAssertEqual(try decode(" null "), Envelope(name: "", operation: ""))
    }

    func testDataForms() throws {
        XCTAssertEqual(try decode(#"{"data":""}"#).data, ByteBuffer())
        XCTAssertEqual(try decode(#"{"data":"AA=="}"#).data, ByteBuffer(bytes: [0]))
        XCTAssertEqual(try decode(#"{"data":"AAA="}"#).data, ByteBuffer(bytes: [0, 0]))
        // Go's StdEncoding tolerates non-zero unused bits and skips line breaks.
        XCTAssertEqual(try decode(#"{"data":"AB=="}"#).data, ByteBuffer(bytes: [0]))
        XCTAssertEqual(try decode(#"{"data":"A\nA\r=\n="}"#).data, ByteBuffer(bytes: [0]))
        XCTAssertEqual(try decode(#"{"data":"AA==\n"}"#).data, ByteBuffer(bytes: [0]))
        XCTAssertEqual(try decode(#"{"data":"\/w=="}"#).data, ByteBuffer(bytes: [0xff]))
        // An array of byte values decodes too, as in Go.
        XCTAssertEqual(try decode(#"{"data":[1,2,255,null]}"#).data, ByteBuffer(bytes: [1, 2, 255, 0]))

        for bad in ["AAE", "AA==x", "A===", "AA=A", "AA-_", "=AAA", "AAAA="] {
            assertDecodeError(#"{"data":"\#(bad)"}"#, .invalidBase64)
        }
        assertMalformed(#"{"data":[256]}"#)
        assertMalformed(#"{"data":[-0]}"#)
        assertMalformed(#"{"data":[1.0]}"#)
        assertMalformed(#"{"data":["a"]}"#)
        assertMalformed(#"{"data":5}"#)
        assertMalformed(#"{"data":{}}"#)
    }

    func testStringEscapesAndSurrogatePairs() throws {
        XCTAssertEqual(
            try decode(#"{"name":"\"\\\/\b\f\n\r\t\u0000\u00e9\u20AC"}"#).name,
            "\"\\/\u{08}\u{0C}\n\r\t\u{00}é€")
        XCTAssertEqual(try decode(#"{"name":"\ud83d\ude00 raw:😀"}"#).name, "😀 raw:😀")
        // Lone surrogates become U+FFFD (Go); a high one pairs only with the low one right after it.
        XCTAssertEqual(
            try decode(#"{"name":"\ud83d\ude00|\ud800|\udc00|\ud800\ud800\udc00|\ud800x"}"#).name,
            "😀|\u{FFFD}|\u{FFFD}|\u{FFFD}\u{10000}|\u{FFFD}x")
    }

    func testRejectsWhatGoRejects() {
        assertMalformed(#"{"name":5}"#)
        assertMalformed(#"{"operation":true}"#)
        assertMalformed(#"{"name":["a"]}"#)
        assertMalformed(#"{"name":"a",}"#)
        assertMalformed(#"{"name":"a"}x"#)
        assertMalformed(#"{"name":"a"} {}"#)
        assertMalformed(#"{"name":"\x"}"#)
        assertMalformed(#"{"name":"\u12"}"#)
        assertMalformed("{\"name\":\"tab\there\"}")
        assertMalformed(#"{"name" "a"}"#)
        assertMalformed(#"{name:"a"}"#)
        assertMalformed(#"{'name':'a'}"#)
        assertMalformed(#"{"a":01}"#)
        assertMalformed(#"{"a":1.}"#)
        assertMalformed(#"{"a":.5}"#)
        assertMalformed(#"{"a":+1}"#)
        assertMalformed(#"{"a":1e}"#)
        assertMalformed(#"{"a":tru}"#)
        assertMalformed(#"{"a":nul}"#)
        assertMalformed(#"{"a":[1,]}"#)
        assertMalformed(#"{"a":[1 2]}"#)
        assertMalformed(#"{"a":1"#)
        assertMalformed(#"{"a":"unterminated}"#)
        assertMalformed("")
        assertMalformed("[]")
        assertMalformed("\"s\"")
    }

    func testRejectsInvalidUTF8WithATypedError() {
        for bad: [UInt8] in [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0x80]] {
            var json = ByteBuffer(string: #"{"name":"a"#)
            json.writeBytes(bad)
            json.writeString(#""}"#)
            XCTAssertThrowsError(try JSONEnvelopeDecoder().decode(json)) { error in
                XCTAssertEqual(error as? WireError, .invalidUTF8)
            }
        }
        // In keys and skipped values too.
        var key = ByteBuffer(string: "{\"")
        key.writeBytes([0xfe])
        key.writeString("\":1}")
        XCTAssertThrowsError(try JSONEnvelopeDecoder().decode(key)) { XCTAssertEqual($0 as? WireError, .invalidUTF8) }
    }

    func testNestingLimitBoundsTheParser() {
        let deep = "{\"a\":" + String(repeating: "[", count: 64) + String(repeating: "]", count: 64) + "}"
        assertDecodeError(deep, .nestingTooDeep)
        let fine = "{\"a\":" + String(repeating: "[", count: 63) + String(repeating: "]", count: 63) + "}"
        XCTAssertEqual(try decode(fine), Envelope(name: "", operation: ""))
    }

    func testRoundTrip() throws {
        let envelopes = [
            Envelope(name: "luda", operation: "connectreq", data: Greeting(address: "127.0.0.1:12345", account: 11900).encoded()),
            Envelope(name: "", operation: "unknownop"),
            Envelope(name: "名前 <&> \"\\ \u{2028}", operation: "\u{01}\t", data: ByteBuffer(bytes: Array(0...255))),
        ]
        for envelope in envelopes {
            var buffer = ByteBuffer()
            JSONEnvelopeEncoder().encode(envelope, into: &buffer)
            XCTAssertEqual(try JSONEnvelopeDecoder().decode(buffer), envelope)
        }
    }
}

// MARK: - The JSON wire in a pipeline

final class JSONWireTests: XCTestCase {
    func testDecodesConcatenatedGoMessagesAndEncodesGoBytes() throws {
        let channel = try connectedChannel(JSONWire.handlers())
        try channel.writeInbound(bytes(
            #"{"name":"luda","operation":"connectreq","data":"eyJhZGQiOiIxMjcuMC4wLjE6MTIzNDUiLCJhY2NvdW50IjoxMTkwMH0="}"#
                + "\n" + #"{"name":"yoghurt","operation":"noticeresp","data":null}"#))
        let hello = try XCTUnwrap(channel.readInbound(as: Envelope.self))
        XCTAssertEqual(hello.name, "luda")
        XCTAssertEqual(hello.operation, "connectreq")
        XCTAssertEqual(try Greeting(json: XCTUnwrap(hello.data)), Greeting(address: "127.0.0.1:12345", account: 11900))
        XCTAssertEqual(try channel.readInbound(as: Envelope.self), Envelope(name: "yoghurt", operation: "noticeresp"))

        try channel.writeOutbound(Envelope(name: "yoghurt", operation: "connectresp"))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self).map(text), #"{"name":"yoghurt","operation":"connectresp","data":null}"#)
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testWritesOfOneFlushGoOutAsOneBuffer() throws {
        let channel = try connectedChannel(JSONWire.handlers())
        channel.pipeline.write(Envelope(name: "a", operation: "getreq"))
        channel.pipeline.write(Envelope(name: "a", operation: "fetchreq"))
        channel.pipeline.flush()
        XCTAssertEqual(
            try channel.readOutbound(as: ByteBuffer.self).map(text),
            #"{"name":"a","operation":"getreq","data":null}{"name":"a","operation":"fetchreq","data":null}"#)
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
    }

    func testAnObjectThatIsNotAnEnvelopeKeepsTheConnectionOpen() throws {
        let channel = try connectedChannel(JSONWire.handlers())
        XCTAssertThrowsError(try channel.writeInbound(bytes(#"{"name":5}"#))) { error in
            guard case .malformedEnvelope = error as? WireError else { return XCTFail("\(error)") }
        }
        XCTAssertTrue(channel.isActive)

        var invalid = ByteBuffer(string: #"{"name":""#)
        invalid.writeBytes([0xc3, 0x28])
        invalid.writeString(#""}"#)
        assertInboundError(channel, invalid, WireError.invalidUTF8)
        assertInboundError(channel, bytes(#"{"data":"%%%%"}"#), WireError.invalidBase64)
        XCTAssertTrue(channel.isActive)

        try channel.writeInbound(bytes(#"{"name":"b","operation":"getreq"}"#))
        XCTAssertEqual(try channel.readInbound(as: Envelope.self), Envelope(name: "b", operation: "getreq"))
    }

    func testAFramingErrorClosesTheConnection() throws {
        let channel = try connectedChannel(JSONWire.handlers())
        XCTAssertThrowsError(try channel.writeInbound(bytes("hello"))) { error in
            guard case .malformedJSON = error as? WireError else { return XCTFail("\(error)") }
        }
        XCTAssertFalse(channel.isActive)
    }

    func testRefusesToSendWhatThePeerWouldRefuse() throws {
        let channel = try connectedChannel(JSONWire.handlers(maximumObjectSize: 64))
        let promise = channel.loop.makePromise(of: Void.self)
        channel.pipeline.writeAndFlush(Envelope(name: String(repeating: "n", count: 64), operation: "x"), promise: promise)
        XCTAssertThrowsError(try channel.throwIfErrorCaught()) { XCTAssertEqual($0 as? WireError, .objectTooLarge(limit: 64)) }
        XCTAssertEqual(promise.futureResult.resultIfAvailable.map { (try? $0.get()) == nil }, true)
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
        // The connection is fine for what fits.
        try channel.writeOutbound(Envelope(name: "n", operation: "x"))
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self).map(text), #"{"name":"n","operation":"x","data":null}"#)
    }
}

// MARK: - Greeting

final class GreetingTests: XCTestCase {
    func testEncodingIsByteForByteGo() {
        XCTAssertEqual(text(Greeting(address: "127.0.0.1:12345", account: 11900).encoded()), #"{"add":"127.0.0.1:12345","account":11900}"#)
        XCTAssertEqual(text(Greeting(address: "[::1]:7000", account: Int.min).encoded()), #"{"add":"[::1]:7000","account":-9223372036854775808}"#)
        XCTAssertEqual(text(Greeting(address: "<h>", account: 0).encoded()), #"{"add":"\u003ch\u003e","account":0}"#)
    }

    func testDecoding() throws {
        XCTAssertEqual(try Greeting(json: bytes(#"{"account":11900,"add":"h:1"}"#)), Greeting(address: "h:1", account: 11900))
        XCTAssertEqual(try Greeting(json: bytes(#" {"ADD":"h:2","Account":-7,"extra":{"a":[]}} "#)), Greeting(address: "h:2", account: -7))
        XCTAssertEqual(try Greeting(json: bytes(#"{"account":-9223372036854775808}"#)).account, Int.min)
        XCTAssertEqual(try Greeting(json: bytes(#"{"account":9223372036854775807}"#)).account, Int.max)
        XCTAssertEqual(try Greeting(json: bytes(#"{"account":-0}"#)).account, 0)
        XCTAssertEqual(try Greeting(json: bytes(#"{"ACCOUNT":7,"add":null}"#)), Greeting(address: "", account: 7))
        XCTAssertEqual(try Greeting(json: bytes("null")), Greeting(address: "", account: 0))
        XCTAssertEqual(
            try Greeting(json: Greeting(address: "é \"x\" \u{2029}", account: 42).encoded()),
            Greeting(address: "é \"x\" \u{2029}", account: 42))
    }

    func testRejectsWhatGoRejects() {
        for json in [#"{"account":1.0}"#, #"{"account":1e3}"#, #"{"account":"5"}"#, #"{"account":9223372036854775808}"#,
                     #"{"account":-9223372036854775809}"#, #"{"add":1}"#, "", "[]", "{", #"{"add":"x"}}"#] {
            XCTAssertThrowsError(try Greeting(json: bytes(json)), json) { error in
                guard case .malformedGreeting = error as? WireError else { return XCTFail("\(json): \(error)") }
            }
        }
        var invalid = ByteBuffer(string: #"{"add":""#)
        invalid.writeBytes([0xff])
        invalid.writeString(#""}"#)
        XCTAssertThrowsError(try Greeting(json: invalid)) { XCTAssertEqual($0 as? WireError, .invalidUTF8) }
    }
}

// MARK: - Native envelopes

final class NativeEnvelopeTests: XCTestCase {
    private let sample = Envelope(
        name: "luda", operation: "getreq", data: ByteBuffer(bytes: [1, 2, 3]),
        messageID: 0x0102_0304_0506_0708, correlationID: 42, hopLimit: 7)

    func testEncodingLayout() throws {
        var buffer = ByteBuffer()
        try NativeEnvelopeEncoder().encode(sample, into: &buffer)
        XCTAssertEqual(
            Array(buffer.readableBytesView),
            [1, 1, 7, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 42, 0, 4] + Array("luda".utf8) + [0, 6] + Array("getreq".utf8)
                + [0, 0, 0, 3, 1, 2, 3])
        XCTAssertEqual(
            Array(buffer.readableBytesView),
            nativePayload(hopLimit: 7, messageID: 0x0102_0304_0506_0708, correlationID: 42,
                          name: Array("luda".utf8), operation: Array("getreq".utf8), data: [1, 2, 3]))
        XCTAssertEqual(try NativeEnvelopeEncoder().encodedLength(of: sample), buffer.readableBytes)
    }

    func testRoundTrip() throws {
        let envelopes = [
            sample,
            Envelope(name: "", operation: ""),
            Envelope(name: "n", operation: "o", data: ByteBuffer()),
            Envelope(name: "名前😀", operation: String(repeating: "o", count: 65_535), data: ByteBuffer(repeating: 9, count: 70_000),
                     messageID: .max, correlationID: .max, hopLimit: .max),
        ]
        for envelope in envelopes {
            var buffer = ByteBuffer()
            try NativeEnvelopeEncoder().encode(envelope, into: &buffer)
            XCTAssertEqual(try NativeEnvelopeDecoder().decode(buffer), envelope)
        }
    }

    func testDataIsASliceOfTheFrame() throws {
        let frame = ByteBuffer(bytes: nativePayload(name: [0x61], operation: [0x62], data: [7, 8, 9]))
        let data = try XCTUnwrap(NativeEnvelopeDecoder().decode(frame).data)
        let frameStart = frame.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let dataStart = data.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(dataStart, frameStart + UInt(frame.readableBytes - 3))
    }

    func testFieldTooLongIsRefused() {
        var buffer = ByteBuffer()
        let long = Envelope(name: String(repeating: "n", count: 65_536), operation: "x")
        XCTAssertThrowsError(try NativeEnvelopeEncoder().encode(long, into: &buffer)) { error in
            XCTAssertEqual(error as? WireError, .fieldTooLong(field: "name", length: 65_536, limit: 65_535))
        }
        XCTAssertEqual(buffer.readableBytes, 0)
    }

    func testFrameDecoderThroughVerifier() throws {
        let first = Envelope(name: "a", operation: "connectreq", data: ByteBuffer(string: "{}"), messageID: 1)
        let second = Envelope(name: "bé", operation: "getresp", correlationID: 1, hopLimit: 3)
        let pairs: [(ByteBuffer, [Envelope])] = [
            (frame(nativePayload(messageID: 1, name: Array("a".utf8), operation: Array("connectreq".utf8), data: Array("{}".utf8))), [first]),
            (frame(nativePayload(hopLimit: 3, correlationID: 1, name: Array("bé".utf8), operation: Array("getresp".utf8))), [second]),
            ({
                var two = frame(nativePayload(name: [], operation: [], data: []))
                two.writeImmutableBuffer(frame(nativePayload(name: [0x78], operation: [0x79])))
                return two
            }(), [Envelope(name: "", operation: "", data: ByteBuffer()), Envelope(name: "x", operation: "y")]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { NativeEnvelopeFrameDecoder() }
    }

    /// Every malformed payload, with the error it must raise.
    private var malformed: [(String, [UInt8], WireError)] {
        let valid = nativePayload(name: Array("n".utf8), operation: Array("o".utf8), data: [1])
        return [
            ("empty", [], .truncatedEnvelope),
            ("version 2", nativePayload(version: 2, name: [], operation: []), .unsupportedVersion(2)),
            ("version 0", [0], .unsupportedVersion(0)),
            ("cut header", Array(valid.prefix(10)), .truncatedEnvelope),
            ("unknown flag", nativePayload(flags: 0b10, name: [], operation: []), .malformedEnvelope("unknown flag bits 0b10 are set")),
            ("name beyond frame", Array(valid.prefix(19)) + [0xff, 0xff, 0x61], .truncatedEnvelope),
            ("operation beyond frame", Array(valid.prefix(22)) + [0x00, 0x09, 0x6f], .truncatedEnvelope),
            ("data length beyond frame", Array(valid.prefix(25)) + [0xff, 0xff, 0xff, 0xff, 1], .truncatedEnvelope),
            ("data flag without data", nativePayload(flags: 1, name: [], operation: []), .truncatedEnvelope),
            ("trailing bytes", valid + [0, 0, 0], .trailingBytes(3)),
            ("trailing byte after no data", nativePayload(name: [], operation: []) + [9], .trailingBytes(1)),
            ("invalid UTF-8 name", nativePayload(name: [0xc0, 0x80], operation: []), .invalidUTF8),
            ("invalid UTF-8 operation", nativePayload(name: [], operation: [0xed, 0xa0, 0x80]), .invalidUTF8),
            ("truncated UTF-8 name", nativePayload(name: [0xe2, 0x82], operation: []), .invalidUTF8),
        ]
    }

    func testEveryMalformedEnvelopeRaisesATypedError() {
        for (label, payload, expected) in malformed {
            XCTAssertThrowsError(try NativeEnvelopeDecoder().decode(ByteBuffer(bytes: payload)), label) { error in
                XCTAssertEqual(error as? WireError, expected, label)
            }
        }
    }

    func testMalformedEnvelopesCloseTheConnection() throws {
        for (label, payload, expected) in malformed {
            for handlers in [LengthFieldFramer.handlers() + [NativeEnvelopeCodec()], NativeWire.handlers()] {
                let channel = try connectedChannel(handlers)
                var input = frame(nativePayload(name: Array("ok".utf8), operation: Array("first".utf8)))
                input.writeImmutableBuffer(frame(payload))
                input.writeImmutableBuffer(frame(nativePayload(name: Array("never".utf8), operation: Array("read".utf8))))
                XCTAssertThrowsError(try channel.writeInbound(input), label) { error in
                    XCTAssertEqual(error as? WireError, expected, label)
                }
                XCTAssertEqual(try channel.readInbound(as: Envelope.self)?.name, "ok", label)
                XCTAssertNil(try channel.readInbound(as: Envelope.self), label)
                XCTAssertFalse(channel.isActive, label)
                XCTAssertTrue(channel.closeFuture.isFulfilled, label)
            }
        }
    }

    func testAnOversizeFrameHeaderClosesBeforeAnyPayloadIsBuffered() throws {
        for announced: UInt32 in [.max, 1025] {
            let channel = try connectedChannel(NativeWire.handlers(maximumFrameLength: 1024))
            var header = ByteBuffer()
            header.writeInteger(announced)
            // The four header bytes alone are enough to refuse it.
            assertInboundError(channel, header, LengthFieldFramerError.frameTooLarge(length: UInt64(announced), maximum: 1024))
            XCTAssertFalse(channel.isActive)
        }
        // A frame of exactly the maximum passes.
        let channel = try connectedChannel(NativeWire.handlers(maximumFrameLength: 1024))
        let payload = nativePayload(name: [], operation: [], data: Array(repeating: 5, count: 1024 - NativeWire.minimumEnvelopeLength - 4))
        XCTAssertEqual(payload.count, 1024)
        try channel.writeInbound(frame(payload))
        XCTAssertEqual(try channel.readInbound(as: Envelope.self)?.data?.readableBytes, 1024 - NativeWire.minimumEnvelopeLength - 4)
    }

    func testNativeWireWritesWholeFrames() throws {
        let channel = try connectedChannel(NativeWire.handlers())
        channel.pipeline.write(sample)
        channel.pipeline.write(Envelope(name: "x", operation: "y"))
        channel.pipeline.flush()
        var expected = frame(nativePayload(hopLimit: 7, messageID: 0x0102_0304_0506_0708, correlationID: 42,
                                           name: Array("luda".utf8), operation: Array("getreq".utf8), data: [1, 2, 3]))
        expected.writeImmutableBuffer(frame(nativePayload(name: [0x78], operation: [0x79])))
        let written = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(written, expected)

        // And reads them back.
        let reader = try connectedChannel(NativeWire.handlers())
        try reader.writeInbound(written)
        XCTAssertEqual(try reader.readInbound(as: Envelope.self), sample)
        XCTAssertEqual(try reader.readInbound(as: Envelope.self), Envelope(name: "x", operation: "y"))
    }

    func testNativeWireRefusesOversizeAndOverlongEnvelopes() throws {
        let channel = try connectedChannel(NativeWire.handlers(maximumFrameLength: 64))
        let tooBig = Envelope(name: "n", operation: "o", data: ByteBuffer(repeating: 0, count: 64))
        XCTAssertThrowsError(try channel.writeOutbound(tooBig)) { error in
            XCTAssertEqual(error as? LengthFieldFramerError, .frameTooLarge(length: UInt64(64 + 4 + 2 + NativeWire.minimumEnvelopeLength), maximum: 64))
        }
        XCTAssertThrowsError(try channel.writeOutbound(Envelope(name: "n", operation: String(repeating: "o", count: 70_000)))) { error in
            XCTAssertEqual(error as? WireError, .fieldTooLong(field: "operation", length: 70_000, limit: 65_535))
        }
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
        XCTAssertTrue(channel.isActive)
    }

    func testCodecAfterTheLengthFramerRoundTripsAndReusesItsBuffer() throws {
        let channel = try connectedChannel(LengthFieldFramer.handlers() + [NativeEnvelopeCodec()])
        let second = Envelope(name: "yo", operation: "noticeresp", data: nil, messageID: 2)
        try channel.writeOutbound(sample)
        try channel.writeOutbound(second)
        let firstFrame = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        let secondFrame = try XCTUnwrap(channel.readOutbound(as: ByteBuffer.self))
        // The second encoding reused the codec's buffer; the first frame must be unaffected.
        XCTAssertEqual(firstFrame, frame(nativePayload(hopLimit: 7, messageID: 0x0102_0304_0506_0708, correlationID: 42,
                                                       name: Array("luda".utf8), operation: Array("getreq".utf8), data: [1, 2, 3])))
        XCTAssertEqual(secondFrame, frame(nativePayload(messageID: 2, name: Array("yo".utf8), operation: Array("noticeresp".utf8))))

        var both = firstFrame
        both.writeImmutableBuffer(secondFrame)
        try channel.writeInbound(both)
        XCTAssertEqual(try channel.readInbound(as: Envelope.self), sample)
        XCTAssertEqual(try channel.readInbound(as: Envelope.self), second)
    }

    func testCodecRefusesAnOverlongField() throws {
        let channel = try connectedChannel(LengthFieldFramer.handlers() + [NativeEnvelopeCodec()])
        let promise = channel.loop.makePromise(of: Void.self)
        channel.pipeline.writeAndFlush(Envelope(name: String(repeating: "n", count: 65_536), operation: ""), promise: promise)
        XCTAssertThrowsError(try channel.throwIfErrorCaught()) { error in
            XCTAssertEqual(error as? WireError, .fieldTooLong(field: "name", length: 65_536, limit: 65_535))
        }
        XCTAssertTrue(promise.futureResult.isFulfilled)
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self))
    }
}

// MARK: - Both wires, base64, descriptions

final class WireFormatTests: XCTestCase {
    func testEveryFormatRoundTripsThroughAPipeline() throws {
        let envelope = Envelope(name: "luda", operation: "connectreq", data: Greeting(address: "127.0.0.1:12345", account: 11900).encoded(),
                                messageID: 5, correlationID: 4, hopLimit: 3)
        for format in WireFormat.allCases {
            let sender = try connectedChannel(format.handlers())
            let receiver = try connectedChannel(format.handlers())
            try sender.writeOutbound(envelope)
            try receiver.writeInbound(try XCTUnwrap(sender.readOutbound(as: ByteBuffer.self)))
            var expected = envelope
            if format == .json {
                // The JSON wire carries only the original's three fields.
                expected.messageID = 0
                expected.correlationID = 0
                expected.hopLimit = 0
            }
            XCTAssertEqual(try receiver.readInbound(as: Envelope.self), expected, "\(format)")
        }
    }

    func testBase64() throws {
        let vectors = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            XCTAssertEqual(Base64.encodeToString(Array(plain.utf8)), encoded)
            XCTAssertEqual(try Base64.decode(encoded), ByteBuffer(string: plain))
        }
        for length in 0...7 {
            let data = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 73 &+ 250) })
            var encoded = ByteBuffer()
            Base64.encode(data, into: &encoded)
            XCTAssertEqual(encoded.readableBytes, Base64.encodedLength(of: length))
            XCTAssertEqual(try Base64.decode(encoded), data)
        }
        XCTAssertEqual(try Base64.decode("Zm9v\r\nYmFy\n"), ByteBuffer(string: "foobar"))
        for bad in ["Zg=", "Zg", "Z===", "Zm9v=", "Zm 9v", "Zm-_", "=Zg=", "Zg==Zg==", "Zg=\n=x", "Zm9vY"] {
            XCTAssertThrowsError(try Base64.decode(bad), bad) { XCTAssertEqual($0 as? WireError, .invalidBase64) }
        }
    }

    func testDescriptionsAreSentences() {
        let errors: [WireError] = [
            .malformedJSON("x"), .objectTooLarge(limit: 1), .nestingTooDeep, .malformedEnvelope("x"), .invalidUTF8, .invalidBase64,
            .unsupportedVersion(2), .truncatedEnvelope, .trailingBytes(1), .malformedGreeting("x"),
            .fieldTooLong(field: "name", length: 2, limit: 1),
        ]
        for error in errors {
            XCTAssertTrue(error.description.first?.isUppercase == true && error.description.hasSuffix("."), error.description)
        }
        XCTAssertEqual(WireError.trailingBytes(3).description, "The envelope is followed by 3 unexpected bytes in its frame.")
        XCTAssertEqual(
            Envelope(name: "luda", operation: "getreq", data: ByteBuffer(bytes: [1])).description,
            #"Envelope(name: "luda", operation: "getreq", data: 1 byte)"#)
        XCTAssertEqual(
            Envelope(name: "a", operation: "b", messageID: 1).description,
            #"Envelope(name: "a", operation: "b", data: null, messageID: 1, correlationID: 0, hopLimit: 0)"#)
    }
}
