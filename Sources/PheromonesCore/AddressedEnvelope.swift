/// A message and the address it came from or goes to: what a datagram pipeline carries.
///
/// A datagram channel fires `channelRead` with `AddressedEnvelope<ByteBuffer>` (the sender's
/// address and one whole datagram) and sends the `AddressedEnvelope<ByteBuffer>`s written to it,
/// each as one datagram to its `remoteAddress`. Handlers above may carry decoded payloads in
/// envelopes of their own type, keeping the address next to the message, as SwiftNIO's do.
public struct AddressedEnvelope<Payload> {
    /// The peer: where the datagram came from (inbound) or where it goes (outbound).
    public var remoteAddress: SocketAddress
    /// The message.
    public var data: Payload

    /// An envelope of `data` for (or from) `remoteAddress`.
    @inlinable
    public init(remoteAddress: SocketAddress, data: Payload) {
        self.remoteAddress = remoteAddress
        self.data = data
    }
}

extension AddressedEnvelope: Sendable where Payload: Sendable {}
extension AddressedEnvelope: Equatable where Payload: Equatable {}
extension AddressedEnvelope: Hashable where Payload: Hashable {}

extension AddressedEnvelope: CustomStringConvertible {
    /// `AddressedEnvelope { remoteAddress: 127.0.0.1:9000, data: ... }`.
    public var description: String { "AddressedEnvelope { remoteAddress: \(remoteAddress), data: \(data) }" }
}
