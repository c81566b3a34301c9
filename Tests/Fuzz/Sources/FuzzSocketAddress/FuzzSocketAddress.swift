import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes the `host:port` parsing that peers and the command line reach: `splitHostPort`,
// `SocketAddress(parsing:)` (a greeting's `add`, a route's address, `pheromones node --peer`), the
// numeric `SocketAddress(ipAddress:port:)`, and the native hello, whose data carries the sender's
// listening address as text after an 8-byte generation.
//
// Input: bytes 0-7 = a port number for `init(ipAddress:port:)` (any `Int`, most out of range),
// then the text (invalid UTF-8 repaired, as a Swift `String` always is).
//
// Properties:
// - a split port is in 0...65535, and joining host and port again (bracketed when the host has a
//   colon) splits back to the same host and port;
// - a parsed address has the split's port, and parsing its `description` gives the same address;
// - `init(ipAddress:port:)` refuses ports outside 0...65535 and otherwise agrees with the parser;
// - a hello carrying the text parses exactly when the text parses as an address, to that address,
//   and a parsed hello made again parses to itself.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let port = input.integer(Int.self)
    let textBytes = input.rest()
    let text = String(decoding: textBytes, as: UTF8.self)

    let split = try? SocketAddress.splitHostPort(text)
    if let split {
        fuzzCheck((0...65535).contains(split.port), "split port \(split.port) is out of range")
        let joined = split.host.contains(":") ? "[\(split.host)]:\(split.port)" : "\(split.host):\(split.port)"
        let again = try? SocketAddress.splitHostPort(joined)
        fuzzCheck(again?.host == split.host && again?.port == split.port,
                  "\(joined.debugDescription) splits to \(String(describing: again)), not \(split)")
    }

    let address = try? SocketAddress(parsing: text)
    if let address {
        fuzzCheck(split != nil, "an address parsed from text that does not split")
        fuzzCheck(address.port == split?.port, "the address's port \(address.port) is not the split's")
        let reparsed = try? SocketAddress(parsing: address.description)
        fuzzCheck(reparsed == address, "\(address.description.debugDescription) parses to \(String(describing: reparsed))")
    }

    if let split {
        let numeric = try? SocketAddress(ipAddress: split.host, port: port)
        if !(0...65535).contains(port) {
            fuzzCheck(numeric == nil, "port \(port) was accepted")
        } else if let numeric {
            fuzzCheck(numeric.port == port, "the port \(port) became \(numeric.port)")
            fuzzCheck((address != nil) && numeric.withPortForFuzzing(split.port) == address,
                      "init(ipAddress:port:) and init(parsing:) disagree on \(text.debugDescription)")
        } else {
            fuzzCheck(address == nil, "init(parsing:) accepts \(text.debugDescription), init(ipAddress:port:) does not")
        }
    }

    // The hello: 8 bytes of generation, then the address as text (empty for none).
    var helloData = ByteBuffer()
    helloData.writeInteger(UInt64(truncatingIfNeeded: port))
    helloData.writeBytes(textBytes)
    let hello = try? ControlMessage.parseHello(
        Envelope(name: "fuzz", operation: ControlMessage.helloOperation, data: helloData))
    if textBytes.isEmpty {
        fuzzCheck(hello?.listeningAddress == nil && hello != nil, "a hello without an address does not parse")
    } else {
        fuzzCheck(hello?.listeningAddress == address, "the hello's address is \(String(describing: hello)), the parser's \(String(describing: address))")
    }
    if let hello {
        let again = try? ControlMessage.parseHello(ControlMessage.hello(hello))
        fuzzCheck(again == hello, "a parsed hello, made again, parses to \(String(describing: again))")
    }
    return 0
}

extension SocketAddress {
    /// This address with another port (the P2P layer's `withPort` is internal).
    func withPortForFuzzing(_ port: Int) -> SocketAddress {
        switch self {
        case .v4(var address):
            address.port = UInt16(truncatingIfNeeded: port)
            return .v4(address)
        case .v6(var address):
            address.port = UInt16(truncatingIfNeeded: port)
            return .v6(address)
        case .unix:
            return self
        }
    }
}
