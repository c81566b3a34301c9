import FuzzSupport
import Pheromones
import PheromonesNoise

// Fuzzes what a Noise peer sends: the bytes a `NoiseHandler` reads from the network, to a responder
// before the handshake (message 1 onwards), to an initiator after its first message (message 2
// onwards), or to either side after a real handshake (the transport decoder, under keys the input
// cannot know).
//
// Input: byte 0 = mode (bit 0: complete a real handshake first; bit 1: the initiator is fuzzed, not
// the responder; bit 2, with bit 0: the honest peer's real transport message "hello" goes first,
// so that the fuzzed bytes follow a message that decrypts), byte 1 = how the bytes are cut into
// reads (`ChunkPlan`), the rest = the bytes.
//
// Properties:
// - nothing is delivered as plaintext but the honest "hello" (forging a message needs the keys;
//   before the handshake no plaintext exists), and no handshake completes from the input;
// - at most one frame is held: never more than a header and the largest message the stage's state
//   accepts (1,024 bytes while handshaking, 65,535 after);
// - at most one `NoiseError` is reported, and after one the connection is closed;
// - after the input the connection is either still open (waiting for more) or closed with an error.

enum Configurations {
    static let initiator = configuration(seed: 1)
    static let responder = configuration(seed: 2)

    private static func configuration(seed: UInt8) -> NoiseConfiguration {
        do {
            return try NoiseConfiguration(identity: try NodeIdentity(seed: [UInt8](repeating: seed, count: 32)))
        } catch {
            fatalError("the fuzz target's identities do not load: \(error)")
        }
    }
}

/// What reached the stage after a Noise handler.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var plaintext = ByteBuffer()
    var handshakes = 0
    var errors: [NoiseError] = []

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { plaintext.writeImmutableBuffer(data) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? NoiseEvent { handshakes += 1 }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? NoiseError { errors.append(error) }
    }
}

/// Carries flushed bytes between two embedded channels until neither has more.
func exchange(_ a: EmbeddedChannel, _ b: EmbeddedChannel) {
    var moved = true
    while moved {
        moved = false
        while let bytes = try? a.readOutbound(as: ByteBuffer.self) {
            moved = true
            try? b.writeInbound(bytes)
        }
        while let bytes = try? b.readOutbound(as: ByteBuffer.self) {
            moved = true
            try? a.writeInbound(bytes)
        }
    }
}

/// Everything `channel` has flushed, as one buffer.
func drain(_ channel: EmbeddedChannel) -> ByteBuffer {
    var all = ByteBuffer()
    while var bytes = try? channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&bytes) }
    return all
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    var plan = ChunkPlan(selector: input.byte())
    let handshakeFirst = mode & 1 == 1, fuzzInitiator = mode & 2 == 2, honestFirst = handshakeFirst && mode & 4 == 4
    let loop = EmbeddedEventLoop()
    let initiatorHandler = NoiseHandler(initiatorWith: Configurations.initiator)
    let responderHandler = NoiseHandler(responderWith: Configurations.responder)
    let initiatorRecorder = Recorder(), responderRecorder = Recorder()
    guard let initiator = try? EmbeddedChannel(handlers: [initiatorHandler, initiatorRecorder], loop: loop),
          let responder = try? EmbeddedChannel(handlers: [responderHandler, responderRecorder], loop: loop)
    else {
        fuzzCheck(false, "the handlers could not be set up")
        return 0
    }
    responder.connect()
    initiator.connect()
    if handshakeFirst {
        exchange(initiator, responder)
        fuzzCheck(initiatorRecorder.handshakes == 1 && responderRecorder.handshakes == 1, "the real handshake did not complete")
    }
    let victim = fuzzInitiator ? initiator : responder
    let honest = fuzzInitiator ? responder : initiator
    let victimHandler = fuzzInitiator ? initiatorHandler : responderHandler
    let recorder = fuzzInitiator ? initiatorRecorder : responderRecorder
    // Whatever the honest side had to say is dropped (the initiator's message 1 included): from
    // here on only the input speaks to the victim, after the honest "hello" when asked for.
    _ = drain(initiator)
    _ = drain(responder)
    var stream = ByteBuffer()
    if honestFirst {
        honest.pipeline.writeAndFlush(ByteBuffer(string: "hello"), promise: nil)
        stream = drain(honest)
    }
    stream.writeBytes(input.rest())
    let frameLimit = 2 + (handshakeFirst ? 65_535 : NoiseHandler.maximumHandshakeMessageLength)
    stream.withUnsafeReadableBytes { bytes in
        plan.forEachChunk(of: bytes) { chunk in
            guard victim.isActive else { return false }
            try? victim.writeInbound(ByteBuffer(bytes: chunk))
            fuzzCheck(victimHandler.bufferedInboundBytes <= frameLimit, "\(victimHandler.bufferedInboundBytes) bytes held, more than one frame")
            return true
        }
    }
    let expected = honestFirst ? ByteBuffer(string: "hello") : ByteBuffer()
    fuzzCheck(recorder.plaintext == expected, "\(recorder.plaintext.readableBytes) bytes of plaintext delivered; only \(expected.readableBytes) were honest")
    fuzzCheck(recorder.errors.count <= 1, "more than one Noise error: \(recorder.errors)")
    fuzzCheck(recorder.errors.isEmpty || !victim.isActive, "the connection stayed open after \(recorder.errors)")
    fuzzCheck(recorder.handshakes == (handshakeFirst ? 1 : 0), "a handshake completed with bytes no peer could have sent")
    // Whatever is still open closes, as a connection's end would, and the virtual clock runs out
    // the timers (an embedded loop dropped with tasks pending keeps them): nothing may be left behind.
    initiator.pipeline.close(promise: nil)
    responder.pipeline.close(promise: nil)
    loop.advanceTime(by: .minutes(60))
    return 0
}
