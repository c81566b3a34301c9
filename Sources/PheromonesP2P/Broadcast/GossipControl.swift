import Pheromones

/// The gossip router's control messages (gossipsub's, plus the choke extension), and their
/// encoding as router control envelopes on the native wire (see `ControlMessage`).
///
/// Each is an envelope whose operation starts with U+0000:
///
/// | message     | operation        | data                                                   |
/// |-------------|------------------|--------------------------------------------------------|
/// | IHAVE       | `\0ihave`        | message ids, each a `UInt64` big-endian, no count      |
/// | IWANT       | `\0iwant`        | message ids, as IHAVE                                  |
/// | IDONTWANT   | `\0idontwant`    | message ids, as IHAVE                                  |
/// | GRAFT       | `\0graft`        | none                                                   |
/// | PRUNE       | `\0prune`        | the backoff in whole seconds, `UInt32` big-endian      |
/// | CHOKE       | `\0choke`        | none                                                   |
/// | UNCHOKE     | `\0unchoke`      | none                                                   |
///
/// A list of ids is at most ``GossipParameters/maximumIHaveLength`` long, and never holds id 0
/// (which means "no id" on the native wire).
enum GossipControl: Hashable, Sendable {
    /// "I have these messages": ids a peer can ask for with IWANT.
    case iHave([UInt64])
    /// "Send me these messages": ids announced with IHAVE.
    case iWant([UInt64])
    /// "Do not send me these messages": I already have them, or they are on their way to me.
    case iDontWant([UInt64])
    /// "Add me to your mesh": the sender added the receiver to its own.
    case graft
    /// "I removed you from my mesh; do not graft again within `backoff`".
    case prune(backoff: TimeAmount)
    /// "Send me IHAVE instead of full messages": the sender's copies from the receiver arrive as
    /// duplicates.
    case choke
    /// "Send me full messages again".
    case unchoke

    static let iHaveOperation = "\u{0}ihave"
    static let iWantOperation = "\u{0}iwant"
    static let iDontWantOperation = "\u{0}idontwant"
    static let graftOperation = "\u{0}graft"
    static let pruneOperation = "\u{0}prune"
    static let chokeOperation = "\u{0}choke"
    static let unchokeOperation = "\u{0}unchoke"

    /// The bytes of one id in a list.
    static let idLength = 8

    /// The envelope's operation.
    var operation: String {
        switch self {
        case .iHave: return Self.iHaveOperation
        case .iWant: return Self.iWantOperation
        case .iDontWant: return Self.iDontWantOperation
        case .graft: return Self.graftOperation
        case .prune: return Self.pruneOperation
        case .choke: return Self.chokeOperation
        case .unchoke: return Self.unchokeOperation
        }
    }

    /// The ids the message carries (none for GRAFT, PRUNE, CHOKE and UNCHOKE).
    var ids: [UInt64] {
        switch self {
        case .iHave(let ids), .iWant(let ids), .iDontWant(let ids): return ids
        case .graft, .prune, .choke, .unchoke: return []
        }
    }

    /// The envelope that carries this message, sent by the node `name`.
    func envelope(from name: String) -> Envelope {
        Envelope(name: name, operation: operation, data: data)
    }

    /// The envelope's data: the ids, the backoff, or nil.
    private var data: ByteBuffer? {
        switch self {
        case .iHave(let ids), .iWant(let ids), .iDontWant(let ids):
            var data = ByteBuffer()
            data.reserveCapacity(ids.count &* Self.idLength)
            for id in ids { data.writeInteger(id) }
            return data
        case .prune(let backoff):
            var data = ByteBuffer()
            data.writeInteger(Self.wholeSeconds(backoff))
            return data
        case .graft, .choke, .unchoke:
            return nil
        }
    }

    /// `amount` in whole seconds (rounded down), clamped to what a `UInt32` holds.
    private static func wholeSeconds(_ amount: TimeAmount) -> UInt32 {
        let seconds = max(amount.nanoseconds, 0) / 1_000_000_000
        return UInt32(clamping: seconds)
    }

    /// The bytes this message takes on the native wire, for statistics: its whole frame (length
    /// prefix, envelope header, operation and data) except the sender's name, which the router
    /// does not know (add `name.utf8.count` for the exact frame size).
    var encodedSize: Int {
        let dataLength: Int
        switch self {
        case .iHave(let ids), .iWant(let ids), .iDontWant(let ids): dataLength = 4 &+ ids.count &* Self.idLength
        case .prune: dataLength = 4 &+ 4
        case .graft, .choke, .unchoke: dataLength = 0
        }
        return 4 &+ NativeWire.minimumEnvelopeLength &+ operation.utf8.count &+ dataLength
    }

    /// Reads the gossip message `envelope` carries.
    ///
    /// - Returns: nil when the envelope's operation is not a gossip operation (another control
    ///   message, or a protocol's).
    /// - Throws: ``P2PError/unknownProtocol(_:)`` when it is a gossip operation whose data is
    ///   malformed: a list whose length is not a multiple of 8, that holds more than
    ///   `limits.maximumIHaveLength` ids or id 0; a PRUNE whose data is not 4 bytes; data on a
    ///   GRAFT, CHOKE or UNCHOKE. The size is checked before the list is allocated.
    static func parse(_ envelope: Envelope, limits: GossipParameters) throws(P2PError) -> GossipControl? {
        switch envelope.operation {
        case iHaveOperation: return .iHave(try parseIDs(envelope.data, maximumCount: limits.maximumIHaveLength))
        case iWantOperation: return .iWant(try parseIDs(envelope.data, maximumCount: limits.maximumIHaveLength))
        case iDontWantOperation: return .iDontWant(try parseIDs(envelope.data, maximumCount: limits.maximumIHaveLength))
        case graftOperation: try parseEmpty(envelope.data, "graft"); return .graft
        case chokeOperation: try parseEmpty(envelope.data, "choke"); return .choke
        case unchokeOperation: try parseEmpty(envelope.data, "unchoke"); return .unchoke
        case pruneOperation: return .prune(backoff: try parseBackoff(envelope.data))
        default: return nil
        }
    }

    /// A list of ids: nil data is the empty list.
    private static func parseIDs(_ data: ByteBuffer?, maximumCount: Int) throws(P2PError) -> [UInt64] {
        guard var data else { return [] }
        let length = data.readableBytes
        guard length % idLength == 0 else {
            throw .unknownProtocol("a gossip id list of \(length) bytes, not a multiple of \(idLength)")
        }
        let count = length / idLength
        guard count <= maximumCount else {
            throw .unknownProtocol("a gossip id list of \(count) ids, more than \(maximumCount)")
        }
        var ids: [UInt64] = []
        ids.reserveCapacity(count)
        while let id = data.readInteger(as: UInt64.self) {
            guard id != 0 else { throw .unknownProtocol("a gossip id list holds id 0") }
            ids.append(id)
        }
        return ids
    }

    /// Checks that a message that carries nothing carries nothing (nil or empty data).
    private static func parseEmpty(_ data: ByteBuffer?, _ what: String) throws(P2PError) {
        guard let data, data.readableBytes > 0 else { return }
        throw .unknownProtocol("a gossip \(what) with \(data.readableBytes) bytes of data")
    }

    /// A PRUNE's backoff: exactly 4 bytes.
    private static func parseBackoff(_ data: ByteBuffer?) throws(P2PError) -> TimeAmount {
        guard var data, data.readableBytes == 4, let seconds = data.readInteger(as: UInt32.self) else {
            throw .unknownProtocol("a gossip prune whose backoff is not 4 bytes")
        }
        return .seconds(Int64(seconds))
    }
}

/// Parses `envelope` as a gossip control message with `maximumIDs` ids at most, for the fuzz
/// targets (Tests/Fuzz), which see the module's `package` symbols only.
///
/// - Returns: nil when the envelope is not a gossip control message (another operation);
///   otherwise whether the message survives a round trip: encoded again, it parses to itself.
/// - Throws: ``P2PError/unknownProtocol(_:)`` when it is a malformed one.
package func gossipControlRoundTripForFuzzing(_ envelope: Envelope, maximumIDs: Int) throws(P2PError) -> Bool? {
    var limits = GossipParameters()
    limits.maximumIHaveLength = maximumIDs
    guard let control = try GossipControl.parse(envelope, limits: limits) else { return nil }
    return try GossipControl.parse(control.envelope(from: envelope.name), limits: limits) == control
}
