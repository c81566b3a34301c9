import FuzzSupport
import Pheromones
import PheromonesTLS
import PheromonesTestSupport

// Fuzzes what a TLS peer sends: the bytes a `TLSHandler` reads from the network, before the
// handshake (a server reading a ClientHello, a client reading a ServerHello) or after a real one
// (records under keys the input cannot know).
//
// Input: byte 0 = mode (bit 0: complete a real handshake first; bit 1: the client is fuzzed, not
// the server), byte 1 = how the bytes are cut into reads (`ChunkPlan`), the rest = the bytes.
//
// Properties:
// - nothing is delivered as plaintext (forging a record needs the keys; before the handshake no
//   plaintext exists);
// - at most one `TLSError` is reported, and after one the connection is closed;
// - after the input the connection is either still open (waiting for more) or closed with an error
//   (or by a close_notify, which no input can forge either).

enum Contexts {
    static let server: TLSContext = {
        do {
            let identity = TLSIdentity(
                certificateChain: try TLSCertificate.chain(pem: TestCertificates.serverCertificate),
                privateKey: try TLSPrivateKey(pem: TestCertificates.serverKey))
            return try TLSContext(configuration: .makeServerConfiguration(identity: identity))
        } catch {
            fatalError("the fuzz target's server certificate does not load: \(error)")
        }
    }()

    static let client: TLSContext = {
        do {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .certificates(try TLSCertificate.chain(pem: TestCertificates.caCertificate))
            configuration.sessionResumption = false
            return try TLSContext(configuration: configuration)
        } catch {
            fatalError("the fuzz target's client configuration does not load: \(error)")
        }
    }()
}

/// What reached the stage after a TLS handler.
final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var plaintextBytes = 0
    var handshakes = 0
    var errors: [TLSError] = []

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) { plaintextBytes += data.readableBytes }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSEvent { handshakes += 1 }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? TLSError { errors.append(error) }
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

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let mode = input.byte()
    var plan = ChunkPlan(selector: input.byte())
    let handshakeFirst = mode & 1 == 1, fuzzClient = mode & 2 == 2
    let loop = EmbeddedEventLoop()
    let clientRecorder = Recorder(), serverRecorder = Recorder()
    guard let client = try? EmbeddedChannel(handlers: [TLSHandler(clientWith: Contexts.client, serverHostname: "localhost"), clientRecorder], loop: loop),
          let server = try? EmbeddedChannel(handlers: [TLSHandler(serverWith: Contexts.server), serverRecorder], loop: loop)
    else {
        fuzzCheck(false, "the handlers could not be set up")
        return 0
    }
    server.connect()
    client.connect()
    if handshakeFirst {
        exchange(client, server)
        fuzzCheck(clientRecorder.handshakes == 1 && serverRecorder.handshakes == 1, "the real handshake did not complete")
    }
    // Whatever the honest side had to say is dropped: from here on only the input speaks to the victim.
    while (try? client.readOutbound(as: ByteBuffer.self)) != nil {}
    while (try? server.readOutbound(as: ByteBuffer.self)) != nil {}
    let victim = fuzzClient ? client : server
    let recorder = fuzzClient ? clientRecorder : serverRecorder
    plan.forEachChunk(of: input.rest()) { chunk in
        guard victim.isActive else { return false }
        try? victim.writeInbound(ByteBuffer(bytes: chunk))
        return true
    }
    fuzzCheck(recorder.plaintextBytes == 0, "\(recorder.plaintextBytes) bytes of plaintext from bytes that cannot be under the session's keys")
    fuzzCheck(recorder.errors.count <= 1, "more than one TLS error: \(recorder.errors)")
    fuzzCheck(recorder.errors.isEmpty || !victim.isActive, "the connection stayed open after \(recorder.errors)")
    fuzzCheck(recorder.handshakes == (handshakeFirst ? 1 : 0), "a handshake completed with bytes no peer could have sent")
    // Whatever is still open closes, as a connection's end would, and the virtual clock runs out
    // the timers (an embedded loop dropped with tasks pending keeps them): nothing may be left behind.
    client.pipeline.close(promise: nil)
    server.pipeline.close(promise: nil)
    loop.advanceTime(by: .minutes(60))
    return 0
}
