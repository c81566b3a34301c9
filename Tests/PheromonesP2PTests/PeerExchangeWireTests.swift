import Pheromones
import PheromonesNoise
@testable import PheromonesP2P
import XCTest

/// The peer-exchange answer's encoding: a round trip, and every way a hostile answer can be
/// malformed, each refused with `unknownProtocol` before anything is kept.
final class PeerExchangeWireTests: XCTestCase {
    private let id = PeerID(digest: [UInt8](repeating: 7, count: PeerID.byteCount))!

    private func answer(_ bytes: [UInt8]) -> Envelope {
        var data = ByteBuffer()
        data.writeBytes(bytes)
        return Envelope(name: "peer", operation: PeerExchangeWire.answerOperation, data: data)
    }

    private func entryBytes(_ text: String, flags: UInt8 = 0, peerID: [UInt8] = []) -> [UInt8] {
        [flags] + peerID + [UInt8(text.utf8.count)] + Array(text.utf8)
    }

    private func assertMalformed(_ bytes: [UInt8], maximum: Int = 32, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try PeerExchangeWire.parseAnswer(answer(bytes), maximumEntries: maximum), file: file, line: line) { error in
            guard case .unknownProtocol? = error as? P2PError else { return XCTFail("\(error)", file: file, line: line) }
        }
    }

    func testAnAnswerRoundTripsWithAndWithoutPeerIDsOnBothFamilies() throws {
        let entries = [
            PeerExchangeEntry(address: .loopbackV4(port: 7001), peerID: id),
            PeerExchangeEntry(address: .loopbackV6(port: 7002), peerID: nil),
        ]
        let message = PeerExchangeWire.answer(entries, from: "me")
        XCTAssertEqual(message.operation, "\u{0}peers")
        XCTAssertEqual(try PeerExchangeWire.parseAnswer(message, maximumEntries: 2), entries)
    }

    func testAnEmptyAnswerIsNoEntries() throws {
        XCTAssertEqual(try PeerExchangeWire.parseAnswer(answer([]), maximumEntries: 0), [])
        XCTAssertEqual(try PeerExchangeWire.parseAnswer(Envelope(name: "p", operation: PeerExchangeWire.answerOperation), maximumEntries: 0), [])
    }

    func testAnAnswerWithOneEntryMoreThanTheMaximumIsRefused() throws {
        let three = entryBytes("127.0.0.1:1") + entryBytes("127.0.0.1:2") + entryBytes("127.0.0.1:3")
        XCTAssertEqual(try PeerExchangeWire.parseAnswer(answer(three), maximumEntries: 3).count, 3)
        assertMalformed(three, maximum: 2)
    }

    func testMalformedEntriesAreRefused() {
        assertMalformed(entryBytes("127.0.0.1:1", flags: 2))  // unknown flag
        assertMalformed(entryBytes("127.0.0.1:1", flags: 1, peerID: [1, 2, 3]))  // peer id cut short
        assertMalformed([1] + [UInt8](repeating: 0, count: 31))  // flagged, 31 bytes in all
        assertMalformed([0])  // no length
        assertMalformed([0, 0])  // empty address
        assertMalformed([0, 200] + Array("127.0.0.1:1".utf8))  // length past the end
        assertMalformed(entryBytes("localhost:80"))  // not numeric
        assertMalformed(entryBytes("127.0.0.1"))  // no port
        assertMalformed([0, 4, 0xFF, 0xFE, 0x3A, 0x31])  // not UTF-8
        assertMalformed(entryBytes("127.0.0.1:1") + [0])  // a good entry, then a truncated one
    }

    func testAddressesThatDoNotFitAnEntryAreLeftOutOfAnAnswer() throws {
        let unix = try SocketAddress.unixDomain(path: "/tmp/pex-wire-test.sock")
        let message = PeerExchangeWire.answer([PeerExchangeEntry(address: unix, peerID: nil)], from: "me")
        XCTAssertEqual(message.data?.readableBytes ?? 0, 0)
    }
}
