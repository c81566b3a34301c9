/// One client connection of the load generator: where it is in its life, how far it has written
/// and read its stream, and when each message in flight was sent.
final class LoadConnection {
    enum State {
        case idle, connecting
        /// TLS: connected, the handshake under way.
        case handshaking
        case connected
        /// conns mode: connected, its one message sent, the reply not yet complete.
        case awaitingFirstReply
        /// conns mode: the round trip is done; the connection is held open.
        case answered
        case closed
    }

    /// The connection's place in the generator's table, and its epoll tag.
    let index: Int
    var fd: CInt = -1
    /// TLS: the client's connection (a `ctls_connection`), from the handshake until closed.
    var tls: OpaquePointer?
    /// When its connect started (churn mode: the start of its cycle).
    var startedAt: UInt64 = 0
    var state = State.idle
    /// Whether EPOLLOUT is requested (only while the kernel refuses bytes).
    var wantsOutput = false
    /// Bytes queued but not yet written.
    var bytesOwed = 0
    /// Bytes written so far: the position in the periodic message stream.
    var bytesWritten = 0
    /// Reply bytes received so far.
    var bytesReceived = 0
    /// Messages sent (or queued) whose reply is not complete.
    private(set) var outstanding = 0

    /// Framed replies: how much of the current frame's header and payload has arrived.
    var headerBytesSeen = 0
    var header: UInt32 = 0
    var payloadLeft = 0
    var payloadOffset = 0

    /// Send times of the messages in flight, oldest first (a ring of fixed capacity).
    private var sendTimes: [UInt64]
    private var oldest = 0

    init(index: Int, messagesInFlight: Int) {
        self.index = index
        sendTimes = [UInt64](repeating: 0, count: messagesInFlight + 1)
    }

    var isOpen: Bool { fd >= 0 }

    /// Whether the connection is still on its way to being usable (or, in conns mode, answered).
    var isUnsettled: Bool { state == .idle || isPending }

    /// Whether the generator is waiting on it: connecting, or (conns mode) awaiting its reply.
    var isPending: Bool { state == .connecting || state == .handshaking || state == .awaitingFirstReply }

    /// Forgets the previous connection's stream (churn mode reuses the slot).
    func reset() {
        bytesOwed = 0
        bytesWritten = 0
        bytesReceived = 0
        outstanding = 0
        oldest = 0
        headerBytesSeen = 0
        header = 0
        payloadLeft = 0
        payloadOffset = 0
        wantsOutput = false
    }

    /// Queues one more message of `wireLength` bytes, sent at `time`.
    func queueMessage(wireLength: Int, at time: UInt64) {
        sendTimes[(oldest + outstanding) % sendTimes.count] = time
        outstanding += 1
        bytesOwed += wireLength
    }

    /// Marks the oldest message in flight answered and returns when it was sent.
    func completeOldest() -> UInt64 {
        let sent = sendTimes[oldest]
        oldest = (oldest + 1) % sendTimes.count
        outstanding -= 1
        return sent
    }
}
