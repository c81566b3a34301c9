import FuzzSupport
import Pheromones
import PheromonesP2P

// Fuzzes the JSON envelope codec: `JSONEnvelopeDecoder` on one framed object (what the Go
// original sends), and `JSONEnvelopeEncoder` on envelopes made from fuzzer values.
//
// Input: byte 0 = mode (bit 0: 0 decodes the rest as one JSON object, 1 builds an envelope from
// the rest: name, operation, whether data is present, data).
//
// Properties:
// - an object that decodes re-encodes (Go's way) to JSON that decodes to the same envelope, and
//   that JSON is a fixed point (`encode(decode(encode(e))) == encode(e)`);
// - `decode(encode(e)) == e` for any envelope (the message-id fields are not on this wire and
//   decode as 0);
// - everything the encoder writes is one object to the framer, whole, with nothing left over.

let decoder = JSONEnvelopeDecoder()
let encoder = JSONEnvelopeEncoder()

/// Encodes `envelope`, checks that it decodes back to it, frames as one object and is a fixed point.
func checkEncoding(of envelope: Envelope) {
    var json = ByteBuffer()
    encoder.encode(envelope, into: &json)
    let decoded: Envelope
    do {
        decoded = try decoder.decode(json)
    } catch {
        fuzzCheck(false, "the encoder wrote JSON its decoder refuses (\(error)): \(String(decoding: json.readableBytesView, as: UTF8.self))")
        return
    }
    var expected = envelope
    expected.messageID = 0
    expected.correlationID = 0
    expected.hopLimit = 0
    fuzzCheck(decoded == expected, "decode(encode(e)) != e: \(decoded) for \(expected)")

    var again = ByteBuffer()
    encoder.encode(decoded, into: &again)
    fuzzCheck(again == json, "the encoding is not a fixed point")

    var framer = JSONObjectFramer(maximumObjectSize: max(1, json.readableBytes))
    var stream = json
    let object = try? framer.decode(buffer: &stream)
    fuzzCheck(object == json && stream.readableBytes == 0, "the framer does not see the encoding as one whole object")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    if input.byte() & 1 == 0 {
        if let envelope = try? decoder.decode(ByteBuffer(bytes: input.rest())) {
            checkEncoding(of: envelope)
        }
    } else {
        let name = input.shortString()
        let operation = input.shortString()
        let data = input.bool() ? ByteBuffer(bytes: input.rest()) : nil
        checkEncoding(of: Envelope(name: name, operation: operation, data: data))
    }
    return 0
}
