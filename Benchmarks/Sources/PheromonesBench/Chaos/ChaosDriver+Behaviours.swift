import Glibc

/// What each kind of client does at each step of its session.
extension ChaosDriver {
    /// The connection is established: start the behaviour.
    func connected(_ client: ChaosClient, now: UInt64) {
        let wireLength = client.stream.wireLength
        switch client.session.behaviour {
        case .pingPong:
            client.target = wireLength
            send(client, now: now)
        case .resetBeforeAccept:
            end(client, reset: true, now: now)
        case .resetBeforeFirstReply(let bytes):
            client.target = bytes
            send(client, now: now)
            if client.isOpen { end(client, reset: true, now: now) }
        case .resetMidStream(let depth, _, let deadline):
            client.target = depth * wireLength
            client.actionAt = now + deadline
            send(client, now: now)
        case .slowReader(let bytes, let readEvery, _, let lifetime, _):
            client.target = bytes
            client.leaveAt = now + lifetime
            client.actionAt = min(client.leaveAt, readEvery.map { now + $0 } ?? client.leaveAt)
            send(client, now: now)
        case .halfClose(let messages):
            client.target = messages * wireLength
            send(client, now: now)
        case .idle(let lifetime, _):
            client.actionAt = now + lifetime
        }
    }

    /// Verified reply bytes arrived.
    func replied(_ client: ChaosClient, now: UInt64) {
        switch client.session.behaviour {
        case .pingPong(let roundTrips, let resetAtEnd):
            guard client.received == client.target else { return }
            if client.messagesAnswered >= roundTrips {
                end(client, reset: resetAtEnd, now: now)
            } else {
                client.target += client.stream.wireLength
                send(client, now: now)
            }
        case .resetMidStream(let depth, let replyBytes, _):
            if client.received >= replyBytes {
                end(client, reset: true, now: now)
            } else {
                client.target = max(client.target, (client.messagesAnswered + depth) * client.stream.wireLength)
                send(client, now: now)
            }
        default:
            break
        }
    }

    /// The server closed its side. Expected only after a half-close, and then only once every
    /// byte came back (a short reply is counted apart, not as a failure: see `ChaosCounters`).
    func endOfInput(on client: ChaosClient, now: UInt64) {
        guard client.phase == .draining else {
            abort(client, unexpected: "the server closed the connection (\(client.received) of \(client.written) bytes back)", now: now)
            return
        }
        if client.received == client.written {
            countCompleteHalfClose()
            end(client, reset: false, now: now)
        } else {
            countShortHalfClose("EOF after \(client.received) of \(client.written) bytes")
            end(client, reset: false, now: now)
        }
    }

    func readFailed(on client: ChaosClient, error: CInt, now: UInt64) {
        if client.phase == .draining && error == ECONNRESET {
            countShortHalfClose("reset after \(client.received) of \(client.written) bytes")
            abort(client, now: now)
        } else {
            abort(client, unexpected: "read: \(Self.describe(error)) (\(client.received) of \(client.written) bytes back)", now: now)
        }
    }

    /// The behaviour's timed step is due.
    func timerFired(on client: ChaosClient, now: UInt64) {
        switch client.session.behaviour {
        case .resetMidStream:
            end(client, reset: true, now: now)
        case .slowReader(_, let readEvery, let readChunk, _, let resetAtEnd):
            if now >= client.leaveAt {
                end(client, reset: resetAtEnd, now: now)
                return
            }
            readAvailable(on: client, limit: readChunk, now: now)
            guard client.isOpen else { return }
            client.actionAt = min(client.leaveAt, readEvery.map { now + $0 } ?? client.leaveAt)
        case .idle(_, let resetAtEnd):
            end(client, reset: resetAtEnd, now: now)
        default:
            break
        }
    }
}
