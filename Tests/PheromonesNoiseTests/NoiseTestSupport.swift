import Crypto
import Pheromones
import PheromonesNoise
import XCTest

/// What the stage after a ``NoiseHandler`` saw: plaintext, events, errors.
final class NoiseRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    var received = ByteBuffer()
    var reads = 0
    var handshakes: [NoiseHandshakeResult] = []
    var errors: [any Error] = []

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        var data = data
        reads += 1
        received.writeBuffer(&data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let result)? = event as? NoiseEvent { handshakes.append(result) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        errors.append(error)
    }

    var noiseErrors: [NoiseError] { errors.compactMap { $0 as? NoiseError } }
}

/// An initiator and a responder, each an `EmbeddedChannel` with a ``NoiseHandler`` and a recorder,
/// wired to each other by ``exchange(through:)``: no sockets, virtual time.
struct EmbeddedNoisePair {
    let initiator: EmbeddedChannel
    let responder: EmbeddedChannel
    let initiatorHandler: NoiseHandler
    let responderHandler: NoiseHandler
    let initiatorRecorder = NoiseRecorder()
    let responderRecorder = NoiseRecorder()
    let initiatorIdentity: NodeIdentity
    let responderIdentity: NodeIdentity
    let loop = EmbeddedEventLoop()

    init(
        initiatorIdentity: NodeIdentity = Identities.alice, responderIdentity: NodeIdentity = Identities.bob,
        configure: (inout NoiseConfiguration, inout NoiseConfiguration) -> Void = { _, _ in }
    ) throws {
        self.initiatorIdentity = initiatorIdentity
        self.responderIdentity = responderIdentity
        var initiatorConfiguration = try NoiseConfiguration(identity: initiatorIdentity)
        var responderConfiguration = try NoiseConfiguration(identity: responderIdentity)
        configure(&initiatorConfiguration, &responderConfiguration)
        initiatorHandler = NoiseHandler(initiatorWith: initiatorConfiguration)
        responderHandler = NoiseHandler(responderWith: responderConfiguration)
        initiator = try EmbeddedChannel(handlers: [initiatorHandler, initiatorRecorder], loop: loop)
        responder = try EmbeddedChannel(handlers: [responderHandler, responderRecorder], loop: loop)
    }

    /// Connects both (the initiator's first message goes out) and runs the handshake.
    func connect() throws {
        responder.connect()
        initiator.connect()
        try exchange()
    }

    /// Carries the bytes each side flushed to the other until neither has more; `relay` may change
    /// each buffer on the way (its direction: true from the initiator).
    func exchange(through relay: (ByteBuffer, Bool) -> ByteBuffer? = { bytes, _ in bytes }) throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try initiator.readOutbound(as: ByteBuffer.self) {
                moved = true
                guard responder.isActive, let relayed = relay(bytes, true) else { continue }
                try? responder.writeInbound(relayed)
            }
            while let bytes = try responder.readOutbound(as: ByteBuffer.self) {
                moved = true
                guard initiator.isActive, let relayed = relay(bytes, false) else { continue }
                try? initiator.writeInbound(relayed)
            }
        }
    }

    /// Everything `channel` has flushed so far, as one buffer.
    static func drain(_ channel: EmbeddedChannel) throws -> ByteBuffer {
        var all = ByteBuffer()
        while var bytes = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&bytes) }
        return all
    }
}

/// Fixed identities, so that failures name the same peer ids on every run.
enum Identities {
    static let alice = identity(1)
    static let bob = identity(2)
    static let mallory = identity(3)

    static func identity(_ byte: UInt8) -> NodeIdentity {
        // A 32-byte seed is always a valid Ed25519 key.
        (try? NodeIdentity(seed: [UInt8](repeating: byte, count: 32))) ?? NodeIdentity()
    }
}

/// A deterministic random number generator (SplitMix64) for the split points of the stream tests.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One side of a handshake driven by hand with the Noise core, to send what our stage never
/// would: payloads of another version, bad signatures, forged identities.
struct ScriptedNoisePeer {
    var handshake: HandshakeState
    let identity: NodeIdentity
    let staticKey: Curve25519.KeyAgreement.PrivateKey

    init(role: HandshakeState.Role, identity: NodeIdentity, staticKey: Curve25519.KeyAgreement.PrivateKey = .init()) {
        self.identity = identity
        self.staticKey = staticKey
        handshake = HandshakeState(role: role, prologue: NoiseConfiguration.prologue, staticKey: staticKey)
    }

    /// Our honest payload: `identity` signing `staticKey`.
    func honestPayload() throws -> [UInt8] {
        try HandshakePayload(identity: identity, staticKey: staticKey.publicKey).encoded
    }

    /// The next handshake message with `payload`, framed.
    mutating func write(payload: [UInt8]) throws -> ByteBuffer {
        let message = try handshake.writeMessage(payload: payload)
        var framed = ByteBuffer()
        framed.writeInteger(UInt16(message.count))
        framed.writeBytes(message)
        return framed
    }

    /// Reads the framed handshake message in `bytes`; returns its payload.
    mutating func read(_ bytes: ByteBuffer) throws -> [UInt8] {
        var bytes = bytes
        let length = try XCTUnwrap(bytes.readInteger(as: UInt16.self))
        return try handshake.readMessage(try XCTUnwrap(bytes.readBytes(length: Int(length))))
    }
}
