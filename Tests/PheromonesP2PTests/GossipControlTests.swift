import Pheromones
@testable import PheromonesP2P
import XCTest

/// The gossip router's control messages survive their encoding, and every malformed encoding a
/// peer can send is a typed error, refused before anything is allocated for it.
final class GossipControlTests: XCTestCase {
    private let limits = GossipParameters()

    func testEveryControlMessageSurvivesItsEnvelope() throws {
        let controls: [GossipControl] = [
            .iHave([1, 2, .max]), .iWant([42]), .iDontWant([7, 8]), .iHave([]),
            .graft, .prune(backoff: .seconds(60)), .choke, .unchoke,
        ]
        for control in controls {
            let envelope = control.envelope(from: "n1")
            XCTAssertEqual(envelope.name, "n1")
            XCTAssertTrue(envelope.isControl, "\(control) is a router control message")
            XCTAssertEqual(try GossipControl.parse(envelope, limits: limits), control)
        }
    }

    func testIDsAreConsecutiveBigEndianIntegersWithoutACount() {
        let envelope = GossipControl.iWant([1, 0x0102_0304_0506_0708]).envelope(from: "n1")
        XCTAssertEqual(envelope.operation, "\u{0}iwant")
        XCTAssertEqual(
            envelope.data.map { Array($0.readableBytesView) },
            [0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8])
    }

    func testAPruneCarriesItsBackoffInWholeSeconds() throws {
        let envelope = GossipControl.prune(backoff: .milliseconds(2_900)).envelope(from: "n1")
        XCTAssertEqual(envelope.data.map { Array($0.readableBytesView) }, [0, 0, 0, 2])
        XCTAssertEqual(try GossipControl.parse(envelope, limits: limits), .prune(backoff: .seconds(2)))
        // A backoff longer than a UInt32 of seconds is clamped, not wrapped.
        let long = GossipControl.prune(backoff: .nanoseconds(.max)).envelope(from: "n1")
        XCTAssertEqual(try GossipControl.parse(long, limits: limits), .prune(backoff: .seconds(Int64(UInt32.max))))
    }

    func testOtherOperationsAreNotGossip() throws {
        XCTAssertNil(try GossipControl.parse(Envelope(name: "n1", operation: "ihave"), limits: limits))
        XCTAssertNil(try GossipControl.parse(Envelope(name: "n1", operation: "\u{0}hello"), limits: limits))
        XCTAssertNil(try GossipControl.parse(Envelope(name: "n1", operation: "\u{0}ihave2"), limits: limits))
    }

    func testAnIDListWhoseLengthIsNotAMultipleOfEightIsRefused() {
        for operation in ["\u{0}ihave", "\u{0}iwant", "\u{0}idontwant"] {
            var data = ByteBuffer()
            data.writeInteger(UInt64(5))
            data.writeInteger(UInt8(1))
            assertRefused(Envelope(name: "n1", operation: operation, data: data))
        }
    }

    func testAnIDListLongerThanTheMaximumIsRefused() {
        var limits = GossipParameters()
        limits.maximumIHaveLength = 3
        XCTAssertNoThrow(try GossipControl.parse(GossipControl.iHave([1, 2, 3]).envelope(from: "n1"), limits: limits))
        for control in [GossipControl.iHave([1, 2, 3, 4]), .iWant([1, 2, 3, 4]), .iDontWant([1, 2, 3, 4])] {
            assertRefused(control.envelope(from: "n1"), limits: limits)
        }
    }

    func testIDZeroIsRefused() {
        assertRefused(GossipControl.iHave([3, 0]).envelope(from: "n1"))
        assertRefused(GossipControl.iDontWant([0]).envelope(from: "n1"))
    }

    func testAPruneWhoseBackoffIsNotFourBytesIsRefused() {
        assertRefused(Envelope(name: "n1", operation: "\u{0}prune"))
        assertRefused(Envelope(name: "n1", operation: "\u{0}prune", data: ByteBuffer(bytes: [0, 0, 1])))
        assertRefused(Envelope(name: "n1", operation: "\u{0}prune", data: ByteBuffer(bytes: [0, 0, 0, 1, 0])))
    }

    func testAGraftChokeOrUnchokeWithDataIsRefused() {
        for operation in ["\u{0}graft", "\u{0}choke", "\u{0}unchoke"] {
            assertRefused(Envelope(name: "n1", operation: operation, data: ByteBuffer(bytes: [1])))
            XCTAssertNoThrow(try GossipControl.parse(
                Envelope(name: "n1", operation: operation, data: ByteBuffer()), limits: limits))
        }
    }

    func testAnIDListWithoutDataIsEmpty() throws {
        XCTAssertEqual(try GossipControl.parse(Envelope(name: "n1", operation: "\u{0}iwant"), limits: limits), .iWant([]))
    }

    func testTheEncodedSizeIsTheNativeFrameWithoutTheName() throws {
        for control in [GossipControl.iHave([1, 2]), .graft, .prune(backoff: .seconds(1)), .iDontWant([])] {
            let envelope = control.envelope(from: "")
            let length = try NativeEnvelopeEncoder().encodedLength(of: envelope)
            XCTAssertEqual(control.encodedSize, 4 + length, "\(control)")
        }
    }

    func testTheFuzzEntryPointParsesLikeTheRouter() throws {
        XCTAssertEqual(try gossipControlRoundTripForFuzzing(GossipControl.iWant([1]).envelope(from: "n1"), maximumIDs: 1), true)
        XCTAssertNil(try gossipControlRoundTripForFuzzing(Envelope(name: "n1", operation: "get"), maximumIDs: 1))
        XCTAssertThrowsError(try gossipControlRoundTripForFuzzing(GossipControl.iWant([1, 2]).envelope(from: "n1"), maximumIDs: 1))
    }

    private func assertRefused(
        _ envelope: Envelope, limits: GossipParameters = GossipParameters(), file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try GossipControl.parse(envelope, limits: limits), file: file, line: line) { error in
            guard case .unknownProtocol = error as? P2PError else {
                return XCTFail("\(error) is not P2PError.unknownProtocol", file: file, line: line)
            }
        }
    }
}
