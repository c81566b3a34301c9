import ArgumentParser
import Pheromones
import PheromonesTLS

/// What `pheromones-echo` speaks on a connection, and the pipeline and options that speak it.
///
/// The server builds every connection from here, and so do the tests: they run exactly the
/// example's pipeline.
enum EchoProtocol: String, ExpressibleByArgument, CaseIterable {
    /// Writes back every byte.
    case echo
    /// Answers each 4-byte length-prefixed frame with a frame carrying the same payload.
    case framed

    /// The options of every accepted connection: the defaults, plus half-closure, so that a peer
    /// that shuts its write side still gets every answer (see ``EchoHandler``).
    static var connectionOptions: SocketOptions {
        var options = SocketOptions()
        options.allowRemoteHalfClosure = true
        return options
    }

    /// The handlers of one connection, head side first.
    ///
    /// A ``BackPressureHandler`` sits next to the socket in both modes: a client that sends without
    /// reading the answers makes the connection stop reading once its write queue passes the high
    /// watermark, so the server holds at most that plus one read batch for it (rather than
    /// everything the client sends), and serves its other clients meanwhile.
    ///
    /// With `tls`, a ``TLSHandler`` follows it: the echo then speaks TLS (a client's `close_notify`
    /// ends its input as a half-closure would).
    ///
    /// - Parameters:
    ///   - maximumFrameLength: `framed` only: the largest payload accepted; a larger frame closes
    ///     the connection. Must not be negative (``EchoServer`` validates it).
    ///   - tls: the server's TLS context, or nil for plaintext.
    func handlers(maximumFrameLength: Int, tls: TLSContext? = nil) throws -> [any ChannelHandler] {
        var handlers: [any ChannelHandler] = [BackPressureHandler()]
        if let tls { handlers.append(try TLSHandler(serverWith: tls, allowRemoteHalfClosure: true)) }
        switch self {
        case .echo:
            return handlers + [EchoHandler()]
        case .framed:
            return handlers + LengthFieldFramer.handlers(maximumFrameLength: maximumFrameLength) + [EchoHandler()]
        }
    }
}
