import PheromonesCore
import PheromonesPosix
import ServiceLifecycle

/// A server run by swift-service-lifecycle's `ServiceGroup`, with signal handling and ordered
/// shutdown: it serves until the group shuts down gracefully (a SIGTERM, say), then quiesces
/// (see ``ServerQuiescingHelper``): it stops accepting, tells every connection, gives them
/// `gracePeriod` to finish, and closes what is left. Cancelled instead, it closes everything at once.
///
/// ```swift
/// let quiescing = ServerQuiescingHelper()
/// let server = try await ServerBootstrap(group: group)
///     .childChannelInitializer { channel in
///         quiescing.track(channel)
///         try channel.pipeline.addHandler(RequestHandler())
///     }
///     .bind(host: "0.0.0.0", port: 8080)
/// let services = ServiceGroup(configuration: .init(
///     services: [ServerService(server: server, quiescing: quiescing)],
///     gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await services.run()
/// ```
///
/// The event loop group is the application's: shut it down after the service group has returned.
public struct ServerService: Service {
    /// The listening channel.
    public let server: ServerSocketChannel
    /// The helper that tracks the server's connections (its child initializer calls `track`).
    public let quiescing: ServerQuiescingHelper
    /// How long connections may take to finish once told to.
    public let gracePeriod: TimeAmount

    /// A service for `server`, whose connections `quiescing` tracks.
    public init(server: ServerSocketChannel, quiescing: ServerQuiescingHelper, gracePeriod: TimeAmount = .seconds(30)) {
        self.server = server
        self.quiescing = quiescing
        self.gracePeriod = gracePeriod
    }

    /// Serves until the server closes, a graceful shutdown is asked for, or the task is cancelled;
    /// returns once every connection has closed.
    public func run() async throws {
        let server = server, quiescing = quiescing, gracePeriod = gracePeriod
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await server.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            // Cancellation and graceful shutdown come through the same door; a cancelled task has
            // no time to give, so it closes everything at once.
            let grace = Task.isCancelled ? TimeAmount.zero : gracePeriod
            _ = quiescing.shutdown(server: server, gracePeriod: grace)
        }
        // The server has closed (by the shutdown, or by someone else): let its connections finish.
        try await quiescing.shutdown(server: server, gracePeriod: gracePeriod).get()
    }
}
