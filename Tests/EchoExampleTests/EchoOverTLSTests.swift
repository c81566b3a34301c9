import Foundation
import Pheromones
import PheromonesTLS
import PheromonesTestSupport
import XCTest

@testable import EchoExample

/// `pheromones-echo --tls-cert FILE --tls-key FILE`: the example's pipeline with TLS, with the test
/// certificates as files.
final class EchoOverTLSTests: XCTestCase {
    func testTheEchoServerSpeaksTLSAndAnswersAHalfClosingClientBeforeClosingCleanly() async throws {
        let files = try CertificateFiles()
        let server = try EchoServer.parse(["--tls-cert", files.path("server.pem"), "--tls-key", files.path("server.key")])
        let serverContext = try XCTUnwrap(try server.tlsContext())
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .file(files.path("ca.pem"))
        let clientContext = try TLSContext(configuration: clientConfiguration)

        let group = try MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group)
            .childOptions(EchoProtocol.connectionOptions)
            .childChannelInitializer { channel in
                try channel.pipeline.addHandlers(EchoProtocol.echo.handlers(maximumFrameLength: 0, tls: serverContext))
            }
            .bind(host: "127.0.0.1", port: 0)
        let collector = Collector(loop: group.nextLoop())
        var options = SocketOptions()
        options.allowRemoteHalfClosure = true
        let client = try await value(of: ClientBootstrap(group: group)
            .options(options)
            .channelInitializer { channel in
                try channel.pipeline.addHandlers([TLSHandler(clientWith: clientContext, serverHostname: "localhost", allowRemoteHalfClosure: true), collector])
            }
            .connect(to: XCTUnwrap(listener.localAddress)), "the connection", on: group.nextLoop())

        let request = ByteBuffer(bytes: Traffic.pattern(from: 0, count: 300_000))
        try await value(of: client.writeAndFlush(request), "the request's write", on: client.eventLoop)
        try await value(of: client.close(mode: .output), "the half-close", on: client.eventLoop)
        let echoed = try await value(of: collector.inputClosed.futureResult, "the server's close_notify", on: client.eventLoop)
        XCTAssertEqual(echoed, request, "every byte came back before the server ended its output")
        try await value(of: client.closeFuture, "the close", on: client.eventLoop)
        try await listener.close().get()
        try await group.shutdownGracefully()
    }

    func testTLSOptionsGoTogetherAndUnusableFilesAreUsageErrors() throws {
        for arguments in [["--tls-cert", "/nonexistent"], ["--tls-key", "/nonexistent"]] {
            XCTAssertThrowsError(try EchoServer.parse(arguments), "\(arguments)") { error in
                XCTAssertEqual(EchoServer.exitCode(for: error), .validationFailure)
            }
        }
        let server = try EchoServer.parse(["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"])
        XCTAssertThrowsError(try server.tlsContext()) { error in
            XCTAssertEqual(EchoServer.exitCode(for: error), .validationFailure)
            XCTAssertTrue(EchoServer.message(for: error).contains("cannot open"), EchoServer.message(for: error))
        }
    }
}

/// Collects what a client reads, and completes `inputClosed` with it when the peer's output ends.
private final class Collector: ChannelInboundHandler, @unchecked Sendable {
    // Unchecked: the promise is thread-safe; `received` is touched on the loop only.
    typealias InboundIn = ByteBuffer
    let inputClosed: Promise<ByteBuffer>
    private var received = ByteBuffer()

    init(loop: any EventLoop) { inputClosed = loop.makePromise(of: ByteBuffer.self) }

    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        var data = data
        received.writeBuffer(&data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed.trySucceed(received)
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inputClosed.tryFail(error)
    }
}
