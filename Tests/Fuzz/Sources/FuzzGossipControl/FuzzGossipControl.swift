import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes gossip's control messages (IHAVE, IWANT, IDONTWANT, GRAFT, PRUNE, CHOKE, UNCHOKE), which
// any peer of a gossiping node can send, as the router's parser reads them.
//
// Input: byte 0 = the operation (one of the seven, or a near miss); byte 1 = the most ids a
// message may carry (0-255); the rest = the envelope's data.
//
// Properties:
// - the parser returns or throws `P2PError`, never traps, whatever the data;
// - a message it accepts, encoded again, parses to itself;
// - a near-miss operation is not taken for a gossip message.

let operations = ["\u{0}ihave", "\u{0}iwant", "\u{0}idontwant", "\u{0}graft", "\u{0}prune", "\u{0}choke", "\u{0}unchoke"]
let nearMisses = ["ihave", "\u{0}ihav", "\u{0}IHAVE", "\u{0}ihave\u{0}", "\u{0}"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let choice = Int(input.byte())
    let maximumIDs = Int(input.byte())
    let bytes = input.rest()
    let isGossip = choice % 12 < operations.count
    let operation = isGossip ? operations[choice % 12] : nearMisses[(choice % 12 - operations.count) % nearMisses.count]
    let envelope = Envelope(name: "peer", operation: operation, data: bytes.isEmpty && choice & 0x80 != 0 ? nil : ByteBuffer(bytes: bytes))
    do {
        let roundTrip = try gossipControlRoundTripForFuzzing(envelope, maximumIDs: maximumIDs)
        fuzzCheck((roundTrip != nil) == isGossip, "'\(operation.escapedForTerminal)' taken for gossip: \(isGossip ? "no" : "yes")")
        if let roundTrip { fuzzCheck(roundTrip, "an accepted \(operation.dropFirst()) does not survive a round trip") }
    } catch {
        fuzzCheck(isGossip, "a near miss was parsed as gossip and refused: \(error)")
    }
    return 0
}
