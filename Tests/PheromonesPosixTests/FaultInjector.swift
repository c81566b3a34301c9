import Glibc
import PheromonesCore
@testable import PheromonesPosix

/// Scripts failures into the system calls of a loop group, through the ``SystemCalls`` seam.
///
/// Give a group ``systemCalls`` and add rules: "the next 3 reads on a socket fail with `EINTR`",
/// "every `writev` takes at most 7 bytes", "the first `epoll_ctl(MOD)` fails with `ENOMEM`". Calls
/// that no rule matches go to the kernel. Read and write rules apply only to sockets the group
/// opened or accepted, never to the loops' own eventfds. Rules are matched in the order they were
/// added; each applies `times` times (or for ever) after letting `skip` matching calls through.
final class FaultInjector: Sendable {
    /// The calls a rule can target.
    enum Call: Hashable, Sendable {
        case socket, accept, connect, shutdown, read, write, writev
        /// `recvmmsg` and `sendmmsg` (`atMost`: at most that many datagrams).
        case recvmmsg, sendmmsg
        case epollAdd, epollModify, epollDelete, epollWait
    }

    /// What happens to a matched call.
    enum Fault: Sendable {
        /// The call fails with `errno` set to the code, doing nothing.
        case error(CInt)
        /// A read or write moves at most this many bytes (a short read or write).
        case atMost(Int)
        /// The call is made, then reports this error anyway: a `connect` interrupted by a signal
        /// goes on in the background, as the kernel does it.
        case errorAfterCalling(CInt)
    }

    private struct Rule {
        var call: Call
        var fault: Fault
        var skip: Int
        var remaining: Int?
    }

    private struct State {
        var rules: [Rule] = []
        var sockets: Set<CInt> = []
        var counts: [Call: Int] = [:]
        var injected: [Call: Int] = [:]
    }

    private let state = LockedValue(State())

    /// Adds a rule: after `skip` matching calls, the next `times` ones (nil: all) suffer `fault`.
    func inject(_ fault: Fault, into call: Call, skip: Int = 0, times: Int? = 1) {
        state.withLock { $0.rules.append(Rule(call: call, fault: fault, skip: skip, remaining: times)) }
    }

    /// Drops every rule that has not run out yet.
    func clear() { state.withLock { $0.rules.removeAll() } }

    /// How many times `call` was made (on sockets, for reads and writes).
    func count(_ call: Call) -> Int { state.withLock { $0.counts[call, default: 0] } }

    /// How many faults were injected into `call`.
    func injectedCount(_ call: Call) -> Int { state.withLock { $0.injected[call, default: 0] } }

    /// The fault for this call, if a rule takes it; counts the call.
    private func fault(for call: Call, fd: CInt? = nil) -> Fault? {
        state.withLock { state -> Fault? in
            if let fd, !state.sockets.contains(fd) { return nil }
            state.counts[call, default: 0] += 1
            guard let index = state.rules.firstIndex(where: { $0.call == call && $0.remaining != 0 }) else { return nil }
            if state.rules[index].skip > 0 {
                state.rules[index].skip -= 1
                return nil
            }
            if let remaining = state.rules[index].remaining { state.rules[index].remaining = remaining - 1 }
            state.injected[call, default: 0] += 1
            return state.rules[index].fault
        }
    }

    private func noteSocket(_ fd: CInt) {
        guard fd >= 0 else { return }
        state.withLock { _ = $0.sockets.insert(fd) }
    }

    private func forgetSocket(_ fd: CInt) {
        state.withLock { _ = $0.sockets.remove(fd) }
    }

    /// Fails the call the C way: -1 with `errno` set.
    private static func fail<Result: BinaryInteger>(_ code: CInt) -> Result {
        errno = code
        return -1
    }

    /// The table to give a group: the kernel's calls, behind this injector's rules.
    var systemCalls: SystemCalls {
        var calls = SystemCalls.live
        let live = SystemCalls.live
        calls.socket = { [self] domain, type, proto in
            if case .error(let code) = fault(for: .socket) { return Self.fail(code) }
            let fd = live.socket(domain, type, proto)
            noteSocket(fd)
            return fd
        }
        calls.accept4 = { [self] fd, address, length, flags in
            if case .error(let code) = fault(for: .accept) { return Self.fail(code) }
            let accepted = live.accept4(fd, address, length, flags)
            noteSocket(accepted)
            return accepted
        }
        calls.close = { [self] fd in
            forgetSocket(fd)
            return live.close(fd)
        }
        calls.connect = { [self] fd, address, length in
            switch fault(for: .connect) {
            case .error(let code): return Self.fail(code)
            case .errorAfterCalling(let code):
                let result = live.connect(fd, address, length)
                return result == 0 || errno == EINPROGRESS ? Self.fail(code) : result
            case .atMost, nil: return live.connect(fd, address, length)
            }
        }
        calls.shutdown = { [self] fd, how in
            if case .error(let code) = fault(for: .shutdown, fd: fd) { return Self.fail(code) }
            return live.shutdown(fd, how)
        }
        calls.read = { [self] fd, buffer, count in
            switch fault(for: .read, fd: fd) {
            case .error(let code), .errorAfterCalling(let code): return Self.fail(code)
            case .atMost(let limit): return live.read(fd, buffer, min(count, limit))
            case nil: return live.read(fd, buffer, count)
            }
        }
        calls.send = { [self] fd, buffer, count, flags in
            switch fault(for: .write, fd: fd) {
            case .error(let code), .errorAfterCalling(let code): return Self.fail(code)
            case .atMost(let limit): return live.send(fd, buffer, min(count, limit), flags)
            case nil: return live.send(fd, buffer, count, flags)
            }
        }
        calls.sendmsg = { [self] fd, message, flags in
            switch fault(for: .writev, fd: fd) {
            case .error(let code), .errorAfterCalling(let code): return Self.fail(code)
            case .atMost(let limit): return Self.sendAtMost(limit, fd: fd, message: message, flags: flags)
            case nil: return live.sendmsg(fd, message, flags)
            }
        }
        calls.recvmmsg = { [self] fd, messages, count, flags in
            switch fault(for: .recvmmsg, fd: fd) {
            case .error(let code), .errorAfterCalling(let code): return Self.fail(code)
            case .atMost(let limit): return live.recvmmsg(fd, messages, min(count, CUnsignedInt(limit)), flags)
            case nil: return live.recvmmsg(fd, messages, count, flags)
            }
        }
        calls.sendmmsg = { [self] fd, messages, count, flags in
            switch fault(for: .sendmmsg, fd: fd) {
            case .error(let code), .errorAfterCalling(let code): return Self.fail(code)
            case .atMost(let limit): return live.sendmmsg(fd, messages, min(count, CUnsignedInt(limit)), flags)
            case nil: return live.sendmmsg(fd, messages, count, flags)
            }
        }
        calls.epollCtl = { [self] epfd, op, fd, event in
            let call: Call = op == Posix.EPOLL_CTL_ADD ? .epollAdd : op == Posix.EPOLL_CTL_MOD ? .epollModify : .epollDelete
            if case .error(let code) = fault(for: call) { return Self.fail(code) }
            return live.epollCtl(epfd, op, fd, event)
        }
        calls.epollWait = { [self] epfd, events, maxEvents, timeout in
            if case .error(let code) = fault(for: .epollWait) { return Self.fail(code) }
            return live.epollWait(epfd, events, maxEvents, timeout)
        }
        return calls
    }

    /// A gathering send that takes at most `limit` bytes: the first buffers, the last one cut.
    private static func sendAtMost(_ limit: Int, fd: CInt, message: UnsafePointer<msghdr>, flags: CInt) -> Int {
        var remaining = limit
        var vectors: [iovec] = []
        let source = UnsafeBufferPointer(start: message.pointee.msg_iov, count: Int(message.pointee.msg_iovlen))
        for vector in source where remaining > 0 {
            let length = min(vector.iov_len, remaining)
            vectors.append(iovec(iov_base: vector.iov_base, iov_len: length))
            remaining -= length
        }
        return vectors.withUnsafeMutableBufferPointer { buffer in
            var cut = msghdr()
            cut.msg_iov = buffer.baseAddress
            cut.msg_iovlen = buffer.count
            return SystemCalls.live.sendmsg(fd, &cut, flags)
        }
    }
}
