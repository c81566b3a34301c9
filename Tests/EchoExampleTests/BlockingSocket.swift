import Glibc
import Pheromones

/// Why a blocking socket call failed.
struct SocketFailure: Error, CustomStringConvertible {
    var call: String
    var code: CInt
    var description: String { "\(call) failed: \(String(cString: strerror(code))) (\(code))" }
}

/// A blocking TCP client on 127.0.0.1, for driving a server the way a plain client program does.
/// Every send and receive gives up after `timeout` seconds (`SO_SNDTIMEO`/`SO_RCVTIMEO`), so a
/// test using it cannot hang.
// Unchecked: the only state is the descriptor, fixed at creation; the socket calls are thread-safe,
// and a test uses at most one sending and one receiving thread.
final class BlockingSocket: @unchecked Sendable {
    let fd: CInt

    /// Connects to `127.0.0.1:port`, with the receive buffer set to `receiveBufferSize` (before
    /// connecting, so the window is small from the start) when given.
    init(port: Int, receiveBufferSize: Int? = nil, timeout seconds: Int = 20) throws {
        fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SocketFailure(call: "socket", code: errno) }
        var time = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        if var size = receiveBufferSize.map(CInt.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketFailure(call: "connect", code: code)
        }
    }

    /// Sends every byte of `bytes`.
    func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = send(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset, CInt(MSG_NOSIGNAL))
                if sent < 0 {
                    if errno == EINTR { continue }
                    throw SocketFailure(call: "send", code: errno)
                }
                offset += sent
            }
        }
    }

    /// Receives up to `maximum` bytes; an empty result means end of stream.
    func receive(maximum: Int = 64 * 1024) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: maximum)
        while true {
            let count = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SocketFailure(call: "recv", code: errno)
            }
            bytes.removeSubrange(count...)
            return bytes
        }
    }

    /// Receives exactly `count` bytes (fewer only if the stream ends first).
    func receive(exactly count: Int) throws -> [UInt8] {
        var received: [UInt8] = []
        while received.count < count {
            let chunk = try receive(maximum: count - received.count)
            if chunk.isEmpty { break }
            received += chunk
        }
        return received
    }

    /// Receives until the peer ends the stream.
    func receiveToEnd() throws -> [UInt8] {
        var received: [UInt8] = []
        while true {
            let chunk = try receive()
            if chunk.isEmpty { return received }
            received += chunk
        }
    }

    /// Shuts down the write side (the peer reads end of stream); a send blocked on another thread
    /// returns `EPIPE`.
    func shutdownOutput() {
        shutdown(fd, CInt(SHUT_WR))
    }

    /// Closes with a reset (`SO_LINGER` 0), as a client that crashes or gives up does.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        Glibc.close(fd)
    }

    /// Closes normally.
    func close() {
        Glibc.close(fd)
    }
}
