/// The kinds of client a chaos run mixes.
enum ChaosKind: String, Codable, Sendable, CaseIterable {
    /// One message at a time, every reply byte verified, then a close (sometimes a reset).
    case pingPong = "pingpong"
    /// Resets (SO_LINGER 0, close) at a random moment: before the server accepts, before the first
    /// reply, or in the middle of a pipelined stream.
    case reset
    /// Pipelines a lot (up to 16 MiB), reads rarely and slowly or never, then leaves.
    case slowReader = "slow-reader"
    /// Sends whole messages (up to 8 MiB), shuts its write side, reads until EOF and expects every byte back.
    case halfClose = "half-close"
    /// Connects, sends nothing, closes (or resets) after a while.
    case idle
}

/// What one connection of a chaos client does, chosen at random each time the client reconnects.
struct ChaosSession {
    enum Behaviour {
        /// `roundTrips` messages one at a time; then a close, or a reset if `resetAtEnd`.
        case pingPong(roundTrips: Int, resetAtEnd: Bool)
        /// A reset right after `connect`, before the server can have accepted the connection.
        case resetBeforeAccept
        /// `bytes` sent (possibly part of a message), then a reset without waiting for a reply.
        case resetBeforeFirstReply(bytes: Int)
        /// `depth` messages kept in flight; a reset once `replyBytes` reply bytes have arrived, or
        /// after `deadline` nanoseconds, whichever comes first.
        case resetMidStream(depth: Int, replyBytes: Int, deadline: UInt64)
        /// Writes up to `bytes` as fast as the server takes them; every `readEvery` nanoseconds
        /// (never, if nil) reads at most `readChunk` bytes; leaves after `lifetime` nanoseconds,
        /// with a reset if `resetAtEnd`, otherwise with a close (which the kernel turns into a
        /// reset when reply bytes are left unread).
        case slowReader(bytes: Int, readEvery: UInt64?, readChunk: Int, lifetime: UInt64, resetAtEnd: Bool)
        /// `messages` whole messages, then `shutdown(SHUT_WR)`, then reads until EOF.
        case halfClose(messages: Int)
        /// Nothing sent for `lifetime` nanoseconds; then a close, or a reset if `resetAtEnd`.
        case idle(lifetime: UInt64, resetAtEnd: Bool)
    }

    var behaviour: Behaviour
    /// Payload bytes per message (the framed protocol adds a 4-byte length).
    var messageSize: Int
    /// Where in the reference bytes this connection's stream starts.
    var streamStart: Int

    var kind: ChaosKind {
        switch behaviour {
        case .pingPong: return .pingPong
        case .resetBeforeAccept, .resetBeforeFirstReply, .resetMidStream: return .reset
        case .slowReader: return .slowReader
        case .halfClose: return .halfClose
        case .idle: return .idle
        }
    }

    /// Whether the client reads everything the server sends as it arrives.
    var readsContinuously: Bool {
        switch behaviour {
        case .slowReader: return false
        default: return true
        }
    }
}

extension ChaosSession {
    /// How often each kind is chosen.
    static let weights: [(weight: Int, value: ChaosKind)] = [
        (35, .pingPong), (20, .reset), (10, .slowReader), (20, .halfClose), (15, .idle),
    ]

    /// Payload sizes, small ones more often.
    private static let messageSizes: [(weight: Int, value: Int)] = [
        (2, 1), (3, 16), (8, 64), (3, 256), (3, 1024), (2, 4096), (1, 16_384), (1, 65_536),
    ]

    /// A session drawn from `random`; `wireOverhead` is the bytes the protocol adds per message.
    static func random(using random: inout SeededGenerator, wireOverhead: Int) -> ChaosSession {
        let size = random.weighted(messageSizes)
        let wireLength = size + wireOverhead
        let behaviour: Behaviour
        switch random.weighted(weights) {
        case .pingPong:
            behaviour = .pingPong(roundTrips: random.logUniform(1...1000), resetAtEnd: random.chance(0.2))
        case .reset:
            behaviour = randomReset(using: &random, wireLength: wireLength)
        case .slowReader:
            behaviour = .slowReader(
                bytes: random.logUniform(64 << 10...16 << 20),
                readEvery: random.chance(1.0 / 3) ? nil : random.nanoseconds(0.05...1),
                readChunk: random.logUniform(1...16_384),
                lifetime: random.nanoseconds(0.2...5),
                resetAtEnd: random.chance(0.5))
        case .halfClose:
            behaviour = .halfClose(messages: max(1, random.logUniform(1...8 << 20) / wireLength))
        case .idle:
            behaviour = .idle(lifetime: random.nanoseconds(0.1...3), resetAtEnd: random.chance(0.5))
        }
        return ChaosSession(behaviour: behaviour, messageSize: size, streamStart: Int.random(in: 0..<ReferenceBytes.period, using: &random))
    }

    private static func randomReset(using random: inout SeededGenerator, wireLength: Int) -> Behaviour {
        switch Int.random(in: 0..<4, using: &random) {
        case 0: return .resetBeforeAccept
        case 1: return .resetBeforeFirstReply(bytes: Int.random(in: 1...2 * wireLength, using: &random))
        default:
            return .resetMidStream(
                depth: random.logUniform(1...32), replyBytes: random.logUniform(1...1 << 20),
                deadline: random.nanoseconds(0.001...2))
        }
    }
}
