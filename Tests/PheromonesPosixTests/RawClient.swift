import Foundation
import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

/// A blocking TCP client on 127.0.0.1 made with plain system calls, for tests that need many
/// connections the test drives byte by byte: read a little, then reset (`SO_LINGER` 0) or close.
/// Every wait is bounded with `poll`.
struct RawClient {
    let fd: CInt

    /// Connects to 127.0.0.1:`port` (a blocking connect: loopback answers at once or refuses).
    static func connect(port: Int) throws -> RawClient {
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw IOError(errnoCode: errno, function: "socket(2)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw IOError(errnoCode: code, function: "connect(2)")
        }
        return RawClient(fd: fd)
    }

    /// Reads until `count` bytes have arrived, the stream ends or fails, or `seconds` pass; returns what arrived.
    @discardableResult
    func read(_ count: Int, within seconds: Double = 10) -> [UInt8] {
        var received: [UInt8] = []
        let deadline = Deadline.now() + .milliseconds(Int64(seconds * 1000))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while received.count < count {
            let remaining = deadline - Deadline.now()
            guard remaining.nanoseconds > 0 else { break }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(clamping: remaining.nanoseconds / 1_000_000 + 1)) > 0 else { continue }
            let got = recv(fd, &chunk, min(chunk.count, count - received.count), 0)
            guard got > 0 else { break }
            received += chunk.prefix(got)
        }
        return received
    }

    /// Sends all of `bytes`.
    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let result = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, CInt(MSG_NOSIGNAL)) }
            guard result > 0 else { throw IOError(errnoCode: errno, function: "send(2)") }
            sent += result
        }
    }

    /// Closes with a reset (`SO_LINGER` on, timeout 0): the peer's next read or write fails with
    /// `ECONNRESET` or `EPIPE`.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }

    /// Closes normally (the peer sees end of stream).
    func close() { Glibc.close(fd) }
}

/// Raises the soft descriptor limit to `needed` if it is lower; skips the test if the hard limit is too low.
func raiseDescriptorLimit(atLeast needed: Int) throws {
    var limit = rlimit()
    guard getrlimit(CInt(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    if limit.rlim_cur >= rlim_t(needed) { return }
    guard limit.rlim_max >= rlim_t(needed) else {
        throw XCTSkip("the descriptor limit (\(limit.rlim_max)) is below the \(needed) this test needs")
    }
    limit.rlim_cur = rlim_t(needed)
    guard setrlimit(CInt(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
        throw XCTSkip("could not raise the descriptor limit to \(needed)")
    }
}

/// Weak references to channels, to check that closed channels are freed.
final class WeakChannels: Sendable {
    // Unchecked: `channel` is a weak reference, which Swift reads and clears atomically.
    private final class Box: @unchecked Sendable {
        weak var channel: SocketChannel?
        init(_ channel: SocketChannel) { self.channel = channel }
    }

    private let boxes = LockedValue<[Box]>([])

    func track(_ channel: SocketChannel) { boxes.withLock { $0.append(Box(channel)) } }

    /// How many were tracked.
    var count: Int { boxes.withLock { $0.count } }
    /// How many of them are still alive.
    var alive: Int { boxes.withLock { $0.filter { $0.channel != nil }.count } }
}
