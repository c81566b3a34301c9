import Pheromones
import PheromonesNoise

/// One address a peer-exchange answer announces: a connected route of the answering node, with the
/// peer id its connection proved (inside Noise; nil on a plaintext wire).
///
/// `package`, with the wire's parser, so that the native-envelope fuzz target (Tests/Fuzz) reaches it.
package struct PeerExchangeEntry: Sendable, Hashable {
    package var address: SocketAddress
    package var peerID: PeerID?

    package init(address: SocketAddress, peerID: PeerID?) {
        self.address = address
        self.peerID = peerID
    }
}

/// The two router control messages of peer exchange, on the native wire (see ``ControlMessage``):
///
/// - `\0peersreq`, no data: "tell me your peers".
/// - `\0peers`, the answer: its data is a sequence of entries with no count in front, each
///   1 byte of flags (bit 0: a peer id follows; the other bits must be 0), the 32-byte peer id if
///   flagged, then a 1-byte length and the address as `ip:port` UTF-8 (numeric host).
///
/// Neither awaits an answer in the router's sense (like `\0goaway`, they are not owed a reply or a
/// "no reply" marker): the answer is matched to the request by the connection it arrives on. A
/// node without peer exchange ignores both (one that predates them logs them as unknown control
/// messages and ignores them).
package enum PeerExchangeWire {
    /// The request's operation.
    package static let requestOperation = "\u{0}peersreq"
    /// The answer's operation.
    package static let answerOperation = "\u{0}peers"

    /// Flag bit 0: a peer id follows the flags.
    private static let carriesPeerID: UInt8 = 1
    /// The longest address text an entry can carry (its length is one byte).
    static let maximumAddressLength = Int(UInt8.max)

    /// Whether `message` is one of peer exchange's control messages.
    static func isPeerExchange(_ message: Envelope) -> Bool {
        message.operation == requestOperation || message.operation == answerOperation
    }

    /// The request, from the node named `name`.
    static func request(from name: String) -> Envelope {
        Envelope(name: name, operation: requestOperation)
    }

    /// The answer announcing `entries`, from the node named `name`. An entry whose address is not
    /// an IP address or does not fit its one-byte length is left out (none a node routes to is).
    package static func answer(_ entries: [PeerExchangeEntry], from name: String) -> Envelope {
        var data = ByteBuffer()
        for entry in entries {
            switch entry.address {
            case .v4, .v6: write(entry, text: entry.address.description, into: &data)
            case .unix: continue
            }
        }
        return Envelope(name: name, operation: answerOperation, data: data)
    }

    private static func write(_ entry: PeerExchangeEntry, text: String, into data: inout ByteBuffer) {
        let length = text.utf8.count
        guard length > 0, length <= maximumAddressLength else { return }
        data.writeInteger(entry.peerID == nil ? 0 : carriesPeerID)
        if let peerID = entry.peerID { data.writeBytes(peerID.bytes) }
        data.writeInteger(UInt8(length))
        data.writeString(text)
    }

    /// Reads an answer's entries, at most `maximumEntries` of them.
    ///
    /// Every length is checked before anything is read or allocated, and nothing is kept of an
    /// answer that does not parse.
    ///
    /// - Throws: ``P2PError/unknownProtocol(_:)`` for an answer with more entries than the maximum,
    ///   unknown flag bits, a truncated entry, or an address that is not a numeric `ip:port`.
    package static func parseAnswer(_ message: Envelope, maximumEntries: Int) throws(P2PError) -> [PeerExchangeEntry] {
        guard var data = message.data else { return [] }
        var entries: [PeerExchangeEntry] = []
        while data.readableBytes > 0 {
            guard entries.count < maximumEntries else {
                throw .unknownProtocol("a peer-exchange answer carries more than \(maximumEntries) entries")
            }
            entries.append(try readEntry(from: &data))
        }
        return entries
    }

    private static func readEntry(from data: inout ByteBuffer) throws(P2PError) -> PeerExchangeEntry {
        guard let flags = data.readInteger(as: UInt8.self), flags & ~carriesPeerID == 0 else {
            throw .unknownProtocol("a peer-exchange entry has unknown flags")
        }
        var peerID: PeerID?
        if flags & carriesPeerID != 0 {
            guard data.readableBytes >= PeerID.byteCount, let bytes = data.readBytes(length: PeerID.byteCount) else {
                throw .unknownProtocol("a peer-exchange entry's peer id is cut short")
            }
            guard let id = PeerID(digest: bytes) else { throw .unknownProtocol("a peer-exchange entry's peer id is cut short") }
            peerID = id
        }
        guard let length = data.readInteger(as: UInt8.self), length > 0, data.readableBytes >= Int(length),
            let text = data.readString(length: Int(length))
        else {
            throw .unknownProtocol("a peer-exchange entry's address is missing or cut short")
        }
        guard let address = try? SocketAddress(parsing: text) else {
            throw .unknownProtocol("a peer-exchange entry's address is not a numeric ip:port")
        }
        return PeerExchangeEntry(address: address, peerID: peerID)
    }
}
