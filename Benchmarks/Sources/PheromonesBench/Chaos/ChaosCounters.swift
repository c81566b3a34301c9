/// What the chaos clients did and saw, counted over the whole run.
struct ChaosCounters: Codable, Sendable {
    /// Connections attempted (sessions started), in all and by kind.
    var sessions = 0
    var sessionsByKind: [String: Int] = [:]
    /// Ping-pong messages whose reply came back complete, every byte verified (the other kinds'
    /// replies are verified too, and counted in `bytesReceived`).
    var roundTrips = 0
    /// Bytes written to the server, and reply bytes received (and verified).
    var bytesSent = 0
    var bytesReceived = 0
    /// Replies that differed from what was sent, or more bytes than were sent.
    var verificationFailures = 0
    /// Resets the clients chose to make (SO_LINGER 0, then close).
    var resets = 0
    /// Connects refused, failed or timed out.
    var connectFailures = 0
    /// What should not happen to a well-behaved client: the server closing or resetting a
    /// connection on its own, a failed write, a reply that stalls.
    var unexpectedErrors = 0
    /// Half-closing clients that got EOF (or a reset) before every byte they sent came back.
    var shortHalfCloses = 0
    /// Half-closing clients that got every byte back, then EOF.
    var completeHalfCloses = 0
    /// The first of each problem, for the report.
    var firstVerificationFailure: String?
    var firstUnexpectedError: String?
    var firstConnectFailure: String?
    var firstShortHalfClose: String?

    mutating func countSession(_ kind: ChaosKind) {
        sessions += 1
        sessionsByKind[kind.rawValue, default: 0] += 1
    }

    mutating func verificationFailed(_ what: String) {
        verificationFailures += 1
        if firstVerificationFailure == nil { firstVerificationFailure = what }
    }

    mutating func unexpected(_ what: String) {
        unexpectedErrors += 1
        if firstUnexpectedError == nil { firstUnexpectedError = what }
    }

    mutating func connectFailed(_ what: String) {
        connectFailures += 1
        if firstConnectFailure == nil { firstConnectFailure = what }
    }

    mutating func halfCloseWasShort(_ what: String) {
        shortHalfCloses += 1
        if firstShortHalfClose == nil { firstShortHalfClose = what }
    }
}
