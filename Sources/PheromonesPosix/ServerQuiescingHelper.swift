import PheromonesCore

/// Graceful shutdown for a server: it keeps track of the server's connections and, when asked,
/// stops accepting, tells every connection (`ChannelShouldQuiesceEvent`), waits for them to close
/// within a grace period, and closes those still open then.
///
/// ```swift
/// let quiescing = ServerQuiescingHelper()
/// let server = try await ServerBootstrap(group: group)
///     .childChannelInitializer { channel in
///         quiescing.track(channel)
///         try channel.pipeline.addHandler(RequestHandler())
///     }
///     .bind(host: "0.0.0.0", port: 8080)
/// // ... on SIGTERM:
/// try await quiescing.shutdown(server: server, gracePeriod: .seconds(30)).get()
/// ```
///
/// Opt-in, and per server: tracking costs each connection an entry in a table and its close
/// future, which connections of servers that never quiesce do not pay.
// Unchecked: `state` is only touched under its lock; channels are only used through their
// thread-safe members (`closeFuture`, `close`, `eventLoop.execute`).
public final class ServerQuiescingHelper: @unchecked Sendable {
    private struct State {
        var connections: [ObjectIdentifier: SocketChannel] = [:]
        var shuttingDown = false
        /// Completed once shutting down and no connection is left.
        var allClosed: Promise<Void>?
    }

    private let state = LockedValue(State())

    /// A helper tracking no connection yet.
    public init() {}

    /// How many tracked connections are open.
    public var openConnections: Int { state.withLock { $0.connections.count } }

    /// Tracks `channel` (call it from the child channel initializer). A connection accepted after
    /// the shutdown began is closed at once.
    public func track(_ channel: SocketChannel) {
        let id = ObjectIdentifier(channel)
        let tooLate = state.withLock { state -> Bool in
            guard !state.shuttingDown else { return true }
            state.connections[id] = channel
            return false
        }
        if tooLate {
            // After the initializer: the channel is not registered yet while it runs.
            channel.loop.execute { _ = channel.close() }
            return
        }
        channel.closeFuture.whenComplete { [self] _ in forget(id) }
    }

    /// Stops `server` accepting, fires `ChannelShouldQuiesceEvent` on every tracked connection,
    /// and closes those still open after `gracePeriod`. The future succeeds once every tracked
    /// connection has closed. Calling it again returns the same future.
    public func shutdown(server: ServerSocketChannel, gracePeriod: TimeAmount) -> Future<Void> {
        let (promise, connections, first) = state.withLock { state in
            if let promise = state.allClosed { return (promise, [SocketChannel](), false) }
            let promise = server.loop.makePromise(of: Void.self)
            state.shuttingDown = true
            state.allClosed = promise
            return (promise, Array(state.connections.values), true)
        }
        guard first else { return promise.futureResult }
        server.close().whenComplete { [self] _ in
            for connection in connections {
                connection.loop.execute { connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
            }
            server.loop.scheduleTask(in: gracePeriod) { [self] in closeRemaining() }
            completeIfEmpty()
        }
        return promise.futureResult
    }

    private func forget(_ id: ObjectIdentifier) {
        state.withLock { _ = $0.connections.removeValue(forKey: id) }
        completeIfEmpty()
    }

    private func completeIfEmpty() {
        let promise = state.withLock { state -> Promise<Void>? in
            state.shuttingDown && state.connections.isEmpty ? state.allClosed : nil
        }
        _ = promise?.trySucceed(())
    }

    private func closeRemaining() {
        let remaining = state.withLock { Array($0.connections.values) }
        for connection in remaining { _ = connection.close() }
    }
}
