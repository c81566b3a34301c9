import Glibc

/// A plain blocking TCP client on loopback, for benchmarks whose server runs in the same process:
/// it makes system calls only, so every allocation counted is the server's.
public final class BlockingClient {
    private let fd: CInt
    private let message: UnsafeMutableRawBufferPointer
    private let reply: UnsafeMutableRawBufferPointer

    /// Connects to 127.0.0.1:`port` with TCP_NODELAY; messages are `messageSize` bytes.
    public init(port: Int, messageSize: Int) throws(ClientError) {
        fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError(call: "socket", code: errno) }
        message = .allocate(byteCount: max(1, messageSize), alignment: 8)
        message.initializeMemory(as: UInt8.self, repeating: 0x61)
        reply = .allocate(byteCount: max(1, messageSize), alignment: 8)
        var one: CInt = 1
        setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close()
            throw ClientError(call: "connect", code: code)
        }
    }

    deinit {
        message.deallocate()
        reply.deallocate()
    }

    /// Sends one message and waits until the whole echo has come back.
    public func roundTrip() throws(ClientError) {
        var sent = 0
        while sent < message.count {
            let count = write(fd, message.baseAddress! + sent, message.count - sent)
            guard count > 0 else { throw ClientError(call: "write", code: errno) }
            sent += count
        }
        var received = 0
        while received < reply.count {
            let count = read(fd, reply.baseAddress! + received, reply.count - received)
            guard count > 0 else { throw ClientError(call: "read", code: count == 0 ? ECONNRESET : errno) }
            received += count
        }
    }

    /// Closes the connection (an orderly FIN).
    public func close() {
        Glibc.close(fd)
    }
}

public struct ClientError: Error, CustomStringConvertible {
    public var call: String
    public var code: CInt
    public init(call: String, code: CInt) {
        self.call = call
        self.code = code
    }
    public var description: String { "\(call) failed: \(String(cString: strerror(code)))" }
}
