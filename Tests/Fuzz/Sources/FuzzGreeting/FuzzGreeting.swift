import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes the connect greeting (`{"add":"host:port","account":N}`), which a peer sends as the data
// of its `connectreq`, and the address parser its `add` then goes through.
//
// Input: byte 0 = mode (bit 0: 0 decodes the rest as a greeting's JSON, 1 builds a greeting from
// the rest: an account and an address).
//
// Properties:
// - a greeting that decodes re-encodes (Go's way) to JSON that decodes to the same greeting, and
//   that JSON is a fixed point;
// - `decode(encode(g)) == g` for any greeting;
// - the greeting's address goes through `SocketAddress(parsing:)` without trapping (the address
//   fuzz target checks what it returns).

func checkEncoding(of greeting: Greeting) {
    let json = greeting.encoded()
    let decoded: Greeting
    do {
        decoded = try Greeting(json: json)
    } catch {
        fuzzCheck(false, "the encoder wrote a greeting its decoder refuses (\(error)): \(String(decoding: json.readableBytesView, as: UTF8.self))")
        return
    }
    fuzzCheck(decoded == greeting, "decode(encode(g)) != g: \(decoded) for \(greeting)")
    fuzzCheck(decoded.encoded() == json, "the greeting's encoding is not a fixed point")
    _ = try? SocketAddress(parsing: decoded.address)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    if input.byte() & 1 == 0 {
        if let greeting = try? Greeting(json: ByteBuffer(bytes: input.rest())) {
            checkEncoding(of: greeting)
        }
    } else {
        let account = input.integer(Int.self)
        let address = String(decoding: input.rest(), as: UTF8.self)
        checkEncoding(of: Greeting(address: address, account: account))
    }
    return 0
}
