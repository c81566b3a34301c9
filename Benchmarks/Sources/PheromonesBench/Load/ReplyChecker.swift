/// Reads reply bytes as they arrive: counts the replies they complete and, when verifying, checks
/// every byte against what was sent.
struct ReplyChecker {
    let pattern: MessagePattern
    let proto: WireProtocol
    let size: Int
    let verify: Bool

    /// Consumes `bytes` received on `connection` and returns how many replies they completed, or
    /// nil if they are not what was sent (wrong bytes, a wrong frame length, more than was asked).
    func consume(_ bytes: UnsafeRawBufferPointer, on connection: LoadConnection) -> Int? {
        switch proto {
        case .echo: return consumeEcho(bytes, on: connection)
        case .framed: return consumeFrames(bytes, on: connection)
        }
    }

    /// Echo: byte `n` of the reply stream must be byte `n` of the request stream.
    private func consumeEcho(_ bytes: UnsafeRawBufferPointer, on connection: LoadConnection) -> Int? {
        let wireLength = pattern.wireLength
        if verify {
            var index = 0
            while index < bytes.count {
                let offset = (connection.bytesReceived + index) % wireLength
                let length = min(wireLength - offset, bytes.count - index)
                guard pattern.matches(UnsafeRawBufferPointer(rebasing: bytes[index..<index + length]), at: offset) else {
                    return nil
                }
                index += length
            }
        }
        let before = connection.bytesReceived / wireLength
        connection.bytesReceived += bytes.count
        let completed = connection.bytesReceived / wireLength - before
        return completed <= connection.outstanding ? completed : nil
    }

    /// Framed: each reply is a 4-byte big-endian length equal to the request's, then the payload.
    private func consumeFrames(_ bytes: UnsafeRawBufferPointer, on connection: LoadConnection) -> Int? {
        connection.bytesReceived += bytes.count
        var completed = 0
        var index = 0
        while index < bytes.count {
            if connection.headerBytesSeen < 4 {
                connection.header = connection.header << 8 | UInt32(bytes[index])
                connection.headerBytesSeen += 1
                index += 1
                guard connection.headerBytesSeen == 4 else { continue }
                guard connection.header == UInt32(size) else { return nil }
                connection.payloadLeft = size
                connection.payloadOffset = 0
            } else {
                let length = min(connection.payloadLeft, bytes.count - index)
                if verify {
                    let received = UnsafeRawBufferPointer(rebasing: bytes[index..<index + length])
                    guard pattern.matches(received, at: pattern.headerLength + connection.payloadOffset) else { return nil }
                }
                connection.payloadLeft -= length
                connection.payloadOffset += length
                index += length
            }
            if connection.headerBytesSeen == 4 && connection.payloadLeft == 0 {
                completed += 1
                guard completed <= connection.outstanding else { return nil }
                connection.headerBytesSeen = 0
                connection.header = 0
            }
        }
        return completed
    }
}
