/// One client slot of a chaos run: it runs sessions one after another, each on a new connection
/// with a behaviour drawn from its own seeded generator, until the run ends.
final class ChaosClient {
    enum Phase {
        /// Between sessions, waiting for `actionAt` to connect again.
        case pausing
        /// The connect is in flight.
        case connecting
        /// Connected, running its behaviour.
        case open
        /// Write side shut (half-close): reading until EOF.
        case draining
    }

    /// The slot's place in the driver's table, and its epoll tag.
    let index: Int
    var random: SeededGenerator
    var phase = Phase.pausing
    var session: ChaosSession
    var stream: ChaosStream
    var fd: CInt = -1
    /// The events registered with epoll (0 when not registered).
    var registered: UInt32 = 0

    /// When the behaviour's next timed step is due (monotonic nanoseconds; 0: none).
    var actionAt: UInt64 = 0
    /// slow readers: when to leave.
    var leaveAt: UInt64 = 0
    /// The last time bytes moved either way (for stall detection).
    var lastProgress: UInt64 = 0

    /// Bytes the session asked to send so far; bytes written; reply bytes received and verified.
    var target = 0
    var written = 0
    var received = 0
    /// Whether the last write hit EAGAIN (so the client waits for EPOLLOUT).
    var blocked = false

    /// Bytes of the stream from `written`, copied and waiting to be written.
    let staging: UnsafeMutableRawBufferPointer
    var stagedOffset = 0
    var stagedCount = 0

    init(index: Int, seed: UInt64, reference: ReferenceBytes, proto: WireProtocol) {
        self.index = index
        random = SeededGenerator(seed: seed, stream: index)
        session = ChaosSession(behaviour: .idle(lifetime: 0, resetAtEnd: false), messageSize: 1, streamStart: 0)
        stream = ChaosStream(reference: reference, proto: proto)
        staging = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit { staging.deallocate() }

    var isOpen: Bool { fd >= 0 }

    /// Messages whose reply has fully arrived.
    var messagesAnswered: Int { received / stream.wireLength }

    /// Whether the client is waiting for reply bytes that should come (a stall if they do not).
    var awaitsReply: Bool {
        guard phase == .open || phase == .draining, session.readsContinuously else { return false }
        if phase == .draining { return true }
        if case .idle = session.behaviour { return false }
        return received < written
    }

    /// Starts `session` on a fresh stream position.
    func begin(_ session: ChaosSession) {
        self.session = session
        stream.messageSize = session.messageSize
        stream.start = session.streamStart
        target = 0
        written = 0
        received = 0
        blocked = false
        stagedOffset = 0
        stagedCount = 0
        registered = 0
        actionAt = 0
        leaveAt = 0
    }
}
