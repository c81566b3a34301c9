import Glibc
import PheromonesCore

/// The outcome of a non-blocking system call that did not fail.
package enum IOResult<T> {
    /// The call did its work; the payload is its result (a byte count, a file descriptor, ...).
    case processed(T)
    /// The call would have blocked (`EAGAIN`/`EWOULDBLOCK`): wait for readiness and try again.
    case wouldBlock
}

extension IOResult: Sendable where T: Sendable {}
extension IOResult: Equatable where T: Equatable {}

/// Thin wrappers over the Linux socket, epoll and eventfd system calls.
///
/// Every wrapper retries on `EINTR` where retrying is correct, reports "would block" as
/// ``IOResult/wouldBlock`` instead of an error, and throws every other failure as an `IOError` that
/// names the call. Nothing here allocates on the read/write path.
///
/// The wrappers make their calls through a ``SystemCalls`` table: ``live`` uses the kernel's, and
/// each event loop holds the `Posix` its group was given, so fault-injection tests can script
/// `EINTR`, short writes, resets or a failing `epoll_ctl` for one group of loops.
///
/// Sockets are always created with `SOCK_NONBLOCK | SOCK_CLOEXEC`. Writes go through `send`/`sendmsg`
/// with `MSG_NOSIGNAL`, so a write to a reset socket fails with `EPIPE` instead of raising `SIGPIPE`;
/// the event loop still calls ``ignoreSIGPIPE()`` when it starts, to cover non-socket descriptors too.
///
/// Glibc's Swift module does not import `<sys/epoll.h>` or `<sys/eventfd.h>`, nor `accept4`,
/// `recvmmsg` and `sendmmsg` (they sit behind `_GNU_SOURCE`), so those calls are
/// looked up once in the already-loaded libc with `dlsym` and called through C function pointers,
/// and ``EpollEvent`` and the `EPOLL*` constants are declared here by hand with the kernel's layout
/// and values.
// A final class, not a struct: a loop's channels reach it on every read and write, and copying a
// table of twenty closures to call one would retain and release each of them.
package final class Posix: Sendable {
    /// The raw calls these wrappers make: ``SystemCalls/live``, or a table a test scripts.
    package let calls: SystemCalls
    /// Whether `calls` is the kernel's own table: then the calls on the per-message path
    /// (`read`, `send`, `sendmsg`, `epoll_wait`) go to Glibc directly, without the indirection.
    private let isLive: Bool
    /// `isLive`, for the wrappers in other files.
    var isLiveTable: Bool { isLive }

    /// Wrappers over `calls`.
    package init(calls: SystemCalls) {
        self.calls = calls
        self.isLive = false
    }

    /// Wrappers over the kernel's own calls.
    private init() {
        self.calls = .live
        self.isLive = true
    }

    /// Wrappers over the kernel's own calls.
    package static let live = Posix()

    // MARK: - Constants

    /// `EPOLLIN`: the descriptor is readable (or a listener has a connection to accept).
    package static let EPOLLIN: UInt32 = 0x001
    /// `EPOLLPRI`: urgent (out-of-band) data is readable.
    package static let EPOLLPRI: UInt32 = 0x002
    /// `EPOLLOUT`: the descriptor is writable (or a non-blocking connect finished).
    package static let EPOLLOUT: UInt32 = 0x004
    /// `EPOLLERR`: an error is pending (read it with ``socketError(_:)``); always reported.
    package static let EPOLLERR: UInt32 = 0x008
    /// `EPOLLHUP`: both directions are shut down; always reported.
    package static let EPOLLHUP: UInt32 = 0x010
    /// `EPOLLRDHUP`: the peer shut down its writing half (we will read EOF).
    package static let EPOLLRDHUP: UInt32 = 0x2000
    /// `EPOLLEXCLUSIVE`: wake only one of several epoll instances waiting on the same descriptor.
    package static let EPOLLEXCLUSIVE: UInt32 = 1 << 28
    /// `EPOLLONESHOT`: report the descriptor once, then disarm it until `EPOLL_CTL_MOD`.
    package static let EPOLLONESHOT: UInt32 = 1 << 30
    /// `EPOLLET`: edge-triggered: report only changes in readiness.
    package static let EPOLLET: UInt32 = 1 << 31

    /// `EPOLL_CTL_ADD`: register a descriptor.
    package static let EPOLL_CTL_ADD: CInt = 1
    /// `EPOLL_CTL_DEL`: deregister a descriptor.
    package static let EPOLL_CTL_DEL: CInt = 2
    /// `EPOLL_CTL_MOD`: change a registered descriptor's events or data.
    package static let EPOLL_CTL_MOD: CInt = 3

    /// The `SOCK_NONBLOCK | SOCK_CLOEXEC` flags that ``socket(domain:type:protocol:)`` and
    /// ``accept(_:)`` always add.
    @usableFromInline
    static let nonBlockingCloseOnExec = CInt(bitPattern: SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)

    /// Linux `struct epoll_event`, declared by hand because Glibc's Swift module lacks `<sys/epoll.h>`.
    ///
    /// On x86_64 the C struct is packed: 12 bytes, `events` at offset 0 and the 64-bit `data` at
    /// offset 4, so `data` is stored as two 32-bit halves there. Elsewhere `data` is 8-byte aligned
    /// (16 bytes in all). Use ``data`` to read or write the 64-bit user data (`epoll_data_t.u64`).
    package struct EpollEvent: Sendable, Hashable {
        /// The `EPOLL*` event bits: requested ones for `epoll_ctl`, ready ones from `epoll_wait`.
        package var events: UInt32
        #if arch(x86_64)
        /// Low 32 bits of `data` (offset 4, little-endian).
        @usableFromInline var dataLow: UInt32
        /// High 32 bits of `data` (offset 8).
        @usableFromInline var dataHigh: UInt32
        #else
        /// Alignment padding before `data`.
        @usableFromInline var padding: UInt32
        /// `data` (offset 8).
        @usableFromInline var dataWord: UInt64
        #endif

        /// Makes an event with `events` bits and 64-bit user `data`.
        @inlinable
        package init(events: UInt32 = 0, data: UInt64 = 0) {
            self.events = events
            #if arch(x86_64)
            self.dataLow = UInt32(truncatingIfNeeded: data)
            self.dataHigh = UInt32(truncatingIfNeeded: data >> 32)
            #else
            self.padding = 0
            self.dataWord = data
            #endif
        }

        /// The 64-bit user data registered with the descriptor (`epoll_data_t.u64`).
        @inlinable
        package var data: UInt64 {
            get {
                #if arch(x86_64)
                return UInt64(dataHigh) << 32 | UInt64(dataLow)
                #else
                return dataWord
                #endif
            }
            set {
                #if arch(x86_64)
                dataLow = UInt32(truncatingIfNeeded: newValue)
                dataHigh = UInt32(truncatingIfNeeded: newValue >> 32)
                #else
                dataWord = newValue
                #endif
            }
        }
    }

    /// Which direction(s) ``shutdown(_:how:)`` closes.
    package enum ShutdownHow: Sendable, Hashable {
        /// `SHUT_RD`: no more reads.
        case read
        /// `SHUT_WR`: no more writes; the peer reads EOF once queued data is sent.
        case write
        /// `SHUT_RDWR`: both.
        case both

        /// The `SHUT_*` constant.
        @inlinable
        package var rawValue: CInt {
            switch self {
            case .read: return CInt(SHUT_RD)
            case .write: return CInt(SHUT_WR)
            case .both: return CInt(SHUT_RDWR)
            }
        }
    }

    // MARK: - Process-wide setup

    /// Runs `signal(SIGPIPE, SIG_IGN)` once per process, on first use.
    private static let sigpipeIgnored: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Sets `SIGPIPE` to be ignored for the whole process, so a write to a closed pipe or socket
    /// fails with `EPIPE` instead of killing the process.
    ///
    /// Idempotent and cheap after the first call (it runs once per process, through a `static let`).
    /// The event loop calls it when it starts; socket writes here use `MSG_NOSIGNAL` anyway.
    package static func ignoreSIGPIPE() {
        _ = sigpipeIgnored
    }

    /// The kernel's listen backlog cap, read from `/proc/sys/net/core/somaxconn`; 4096 if unreadable.
    package static func somaxconn() -> CInt {
        let fallback: CInt = 4096
        let fd = Glibc.open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return fallback }
        defer { _ = Glibc.close(fd) }
        var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &buffer) { bytes -> CInt in
            var count: Int
            repeat {
                count = Glibc.read(fd, bytes.baseAddress, bytes.count)
            } while count < 0 && errno == EINTR
            guard count > 0 else { return fallback }
            var value: Int64 = 0
            var sawDigit = false
            for byte in bytes.prefix(count) {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
                value = min(value * 10 + Int64(byte - UInt8(ascii: "0")), Int64(CInt.max))
                sawDigit = true
            }
            return sawDigit && value > 0 ? CInt(value) : fallback
        }
    }

    // MARK: - Sockets

    /// `socket(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` always added to `type`.
    ///
    /// `SOCK_STREAM` and friends import as `__socket_type` enum values: pass `CInt(SOCK_STREAM.rawValue)`.
    /// - Returns: the new descriptor.
    package func socket(domain: CInt, type: CInt, protocol: CInt = 0) throws(IOError) -> CInt {
        let fd = calls.socket(domain, type | Self.nonBlockingCloseOnExec, `protocol`)
        guard fd >= 0 else { throw IOError(errnoCode: errno, function: "socket(2)") }
        return fd
    }

    /// `close(2)`. Not retried on `EINTR`: Linux has already released the descriptor then, and a
    /// retry could close a descriptor another thread just got. `EINTR` is therefore ignored.
    package func close(_ fd: CInt) throws(IOError) {
        guard calls.close(fd) != 0 else { return }
        let code = errno
        guard code != EINTR else { return }
        throw IOError(errnoCode: code, function: "close(2)")
    }

    /// `bind(2)` to `address`.
    package func bind(_ fd: CInt, to address: SocketAddress) throws(IOError) {
        let code = address.withSockAddr { sockaddr, length -> CInt in
            calls.bind(fd, sockaddr, length) == 0 ? 0 : errno
        }
        guard code == 0 else { throw IOError(errnoCode: code, function: "bind(2)") }
    }

    /// `listen(2)` with `backlog` (see ``somaxconn()`` for the kernel's cap).
    package func listen(_ fd: CInt, backlog: CInt) throws(IOError) {
        guard calls.listen(fd, backlog) == 0 else { throw IOError(errnoCode: errno, function: "listen(2)") }
    }

    /// `accept4(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: the accepted descriptor, or
    /// ``IOResult/wouldBlock`` when no connection is pending.
    ///
    /// Connections that died while queued (`ECONNABORTED`, `EPROTO`) and, as `accept(2)` advises on
    /// Linux, network errors the kernel passes on from the new socket (`ENETDOWN`, `ENOPROTOOPT`,
    /// `EHOSTDOWN`, `ENONET`, `EHOSTUNREACH`, `EOPNOTSUPP`, `ENETUNREACH`) are skipped: the call is
    /// retried, which returns the next queued connection or ``IOResult/wouldBlock``. Each skip consumes
    /// one queued connection, so the retries are bounded by the backlog.
    ///
    /// - Throws: `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` (the caller should pause accepting for a
    ///   while) and any other failure.
    package func accept(_ fd: CInt) throws(IOError) -> IOResult<CInt> {
        try accept(fd, address: nil, length: nil)
    }

    /// ``accept(_:)`` that also reads the peer's address, which `accept4(2)` fills in at no extra
    /// cost (a `getpeername(2)` afterwards would be a system call more per connection). `peer` is
    /// set when a connection was accepted (nil for a family other than IPv4 and IPv6).
    package func accept(_ fd: CInt, peer: inout SocketAddress?) throws(IOError) -> IOResult<CInt> {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let attempt = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                Result { () throws(IOError) in try accept(fd, address: address, length: &length) }
            }
        }
        let result = try attempt.get()
        if case .processed = result {
            // With the length the kernel wrote: a Unix peer is often unnamed (no path at all).
            peer = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0, length: length) }
            }
        }
        return result
    }

    private func accept(
        _ fd: CInt, address: UnsafeMutablePointer<sockaddr>?, length: UnsafeMutablePointer<socklen_t>?
    ) throws(IOError) -> IOResult<CInt> {
        while true {
            let accepted = calls.accept4(fd, address, length, Self.nonBlockingCloseOnExec)
            if accepted >= 0 { return .processed(accepted) }
            let code = errno
            switch code {
            case EINTR, ECONNABORTED, EPROTO,
                 ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                continue
            case EAGAIN, EWOULDBLOCK:
                return .wouldBlock
            default:
                throw IOError(errnoCode: code, function: "accept4(2)")
            }
        }
    }

    /// `connect(2)` to `address` on a non-blocking socket.
    ///
    /// - Returns: `true` when connected at once (common on loopback), `false` when the connection is
    ///   in progress (`EINPROGRESS`, or `EINTR`, after which the kernel goes on connecting): wait for
    ///   `EPOLLOUT`, then check ``socketError(_:)``.
    /// - Throws: an immediate failure, for example `ECONNREFUSED` or `ENETUNREACH`.
    package func connect(_ fd: CInt, to address: SocketAddress) throws(IOError) -> Bool {
        let code = address.withSockAddr { sockaddr, length -> CInt in
            calls.connect(fd, sockaddr, length) == 0 ? 0 : errno
        }
        switch code {
        case 0: return true
        case EINPROGRESS, EINTR: return false
        default: throw IOError(errnoCode: code, function: "connect(2)")
        }
    }

    /// The pending socket error (`getsockopt(SO_ERROR)`), 0 if none; reading it clears it.
    ///
    /// After a non-blocking ``connect(_:to:)`` becomes writable this is 0 on success or the reason
    /// it failed (say `ECONNREFUSED`).
    package func socketError(_ fd: CInt) throws(IOError) -> CInt {
        try getOption(fd, level: SOL_SOCKET, name: SO_ERROR)
    }

    /// `shutdown(2)`: closes one or both directions of a connected socket.
    package func shutdown(_ fd: CInt, how: ShutdownHow) throws(IOError) {
        guard calls.shutdown(fd, how.rawValue) == 0 else {
            throw IOError(errnoCode: errno, function: "shutdown(2)")
        }
    }

    /// `setsockopt(2)` with an integer `value`.
    ///
    /// Some levels import as `Int` rather than `CInt` (`IPPROTO_TCP`, `IPPROTO_IPV6`): wrap them in `CInt(...)`.
    package func setOption(_ fd: CInt, level: CInt, name: CInt, value: CInt) throws(IOError) {
        var value = value
        guard calls.setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
            throw IOError(errnoCode: errno, function: "setsockopt(2)")
        }
    }

    /// `getsockopt(2)` of an integer option.
    package func getOption(_ fd: CInt, level: CInt, name: CInt) throws(IOError) -> CInt {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard calls.getsockopt(fd, level, name, &value, &length) == 0 else {
            throw IOError(errnoCode: errno, function: "getsockopt(2)")
        }
        return value
    }

    /// `setsockopt(2)` with `value`'s bytes, as the option's C type lays them out.
    package func setOption(_ fd: CInt, level: CInt, name: CInt, bytes value: [UInt8]) throws(IOError) {
        let result = value.withUnsafeBytes { bytes in
            calls.setsockopt(fd, level, name, bytes.baseAddress, socklen_t(bytes.count))
        }
        guard result == 0 else { throw IOError(errnoCode: errno, function: "setsockopt(2)") }
    }

    /// `getsockopt(2)`: the option's bytes, at most `capacity` of them.
    package func getOption(_ fd: CInt, level: CInt, name: CInt, capacity: Int) throws(IOError) -> [UInt8] {
        var value = [UInt8](repeating: 0, count: capacity)
        var length = socklen_t(capacity)
        let result = value.withUnsafeMutableBytes { bytes in
            calls.getsockopt(fd, level, name, bytes.baseAddress, &length)
        }
        guard result == 0 else { throw IOError(errnoCode: errno, function: "getsockopt(2)") }
        return Array(value.prefix(Int(length)))
    }

    /// Removes the socket file of a Unix domain listener (nothing for an abstract or unnamed one).
    package func removeSocketFile(_ address: SocketAddress.UnixDomain) {
        guard !address.isAbstract, !address.path.isEmpty else { return }
        _ = unlink(String(decoding: address.path, as: UTF8.self))
    }

    /// Whether the file at a Unix domain listener's path is a socket nobody listens on any more (a
    /// server that died without removing it): it is a socket, and connecting to it is refused.
    package func isStaleSocketFile(_ address: SocketAddress.UnixDomain) -> Bool {
        guard !address.isAbstract, !address.path.isEmpty else { return false }
        var status = stat()
        guard stat(String(decoding: address.path, as: UTF8.self), &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else { return false }
        let probe = Glibc.socket(AF_UNIX, CInt(bitPattern: SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { Glibc.close(probe) }
        let refused = SocketAddress.unix(address).withSockAddr { Glibc.connect(probe, $0, $1) } != 0 && errno == ECONNREFUSED
        return refused
    }

    /// The socket's own address (`getsockname(2)`), for example the port the kernel chose for port 0.
    ///
    /// - Throws: `EAFNOSUPPORT` when the socket is neither IPv4 nor IPv6 (a Unix socket, say).
    package func localAddress(_ fd: CInt) throws(IOError) -> SocketAddress {
        try address(of: fd, function: "getsockname(2)", calls.getsockname)
    }

    /// The peer's address (`getpeername(2)`).
    ///
    /// - Throws: `ENOTCONN` when not connected; `EAFNOSUPPORT` for families other than IPv4 and IPv6.
    package func remoteAddress(_ fd: CInt) throws(IOError) -> SocketAddress {
        try address(of: fd, function: "getpeername(2)", calls.getpeername)
    }

    /// Reads an address with `getsockname`/`getpeername` into a `sockaddr_storage`.
    private func address(
        of fd: CInt,
        function: String,
        _ call: (CInt, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> CInt
    ) throws(IOError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let code = withUnsafeMutablePointer(to: &storage) { pointer -> CInt in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { call(fd, $0, &length) == 0 ? 0 : errno }
        }
        guard code == 0 else { throw IOError(errnoCode: code, function: function) }
        let read = withUnsafePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { SocketAddress(sockaddr: $0, length: length) }
        }
        guard let address = read else {
            throw IOError(errnoCode: EAFNOSUPPORT, function: function)
        }
        return address
    }

    // MARK: - Reading and writing

    /// `read(2)` into `buffer`: the byte count (0 means end of file), or ``IOResult/wouldBlock``.
    package func read(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> IOResult<Int> {
        while true {
            let count = isLive ? Glibc.read(fd, buffer.baseAddress, buffer.count) : calls.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return .processed(count) }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw IOError(errnoCode: code, function: "read(2)")
            }
        }
    }

    /// Writes `buffer` with `send(2)` and `MSG_NOSIGNAL` (falling back to `write(2)` for a
    /// non-socket descriptor): the count written, which may be short, or ``IOResult/wouldBlock``.
    ///
    /// - Throws: `EPIPE`/`ECONNRESET` when the peer is gone (never `SIGPIPE` on a socket).
    package func write(_ fd: CInt, from buffer: UnsafeRawBufferPointer) throws(IOError) -> IOResult<Int> {
        var useSend = true
        while true {
            let count = useSend
                ? (isLive
                    ? Glibc.send(fd, buffer.baseAddress, buffer.count, CInt(MSG_NOSIGNAL))
                    : calls.send(fd, buffer.baseAddress, buffer.count, CInt(MSG_NOSIGNAL)))
                : calls.write(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return .processed(count) }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ENOTSOCK where useSend:
                useSend = false
                continue
            default: throw IOError(errnoCode: code, function: useSend ? "send(2)" : "write(2)")
            }
        }
    }

    /// Gathering write of `count` buffers with `sendmsg(2)` and `MSG_NOSIGNAL` (falling back to
    /// `writev(2)` for a non-socket descriptor): the total written, which may be short, or
    /// ``IOResult/wouldBlock``. `count` must not exceed `IOV_MAX` (1024).
    ///
    /// - Throws: `EPIPE`/`ECONNRESET` when the peer is gone (never `SIGPIPE` on a socket).
    package func writev(_ fd: CInt, _ iov: UnsafePointer<iovec>, count: CInt) throws(IOError) -> IOResult<Int> {
        var message = msghdr()
        message.msg_iov = UnsafeMutablePointer(mutating: iov)
        message.msg_iovlen = Int(count)
        var useSend = true
        while true {
            let written = useSend
                ? (isLive ? Glibc.sendmsg(fd, &message, CInt(MSG_NOSIGNAL)) : calls.sendmsg(fd, &message, CInt(MSG_NOSIGNAL)))
                : calls.writev(fd, iov, count)
            if written >= 0 { return .processed(written) }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ENOTSOCK where useSend:
                useSend = false
                continue
            default: throw IOError(errnoCode: code, function: useSend ? "sendmsg(2)" : "writev(2)")
            }
        }
    }

    // MARK: - epoll and eventfd

    /// `epoll_create1(EPOLL_CLOEXEC)`: a new epoll descriptor.
    package func epollCreate() throws(IOError) -> CInt {
        let fd = calls.epollCreate1(O_CLOEXEC)  // EPOLL_CLOEXEC == O_CLOEXEC
        guard fd >= 0 else { throw IOError(errnoCode: errno, function: "epoll_create1(2)") }
        return fd
    }

    /// `epoll_ctl(2)`: `op` is ``EPOLL_CTL_ADD``, ``EPOLL_CTL_MOD`` or ``EPOLL_CTL_DEL``; `events` are
    /// `EPOLL*` bits and `data` is returned with each readiness report for `fd`.
    package func epollControl(_ epfd: CInt, op: CInt, fd: CInt, events: UInt32, data: UInt64) throws(IOError) {
        var event = EpollEvent(events: events, data: data)
        guard calls.epollCtl(epfd, op, fd, &event) == 0 else {
            throw IOError(errnoCode: errno, function: "epoll_ctl(2)")
        }
    }

    /// `epoll_wait(2)`: fills up to `maxEvents` entries of `events` and returns how many; waits at most
    /// `timeoutMs` milliseconds (-1 forever, 0 not at all). An interrupted wait (`EINTR`) returns 0.
    package func epollWait(
        _ epfd: CInt, events: UnsafeMutablePointer<EpollEvent>, maxEvents: CInt, timeoutMs: CInt
    ) throws(IOError) -> Int {
        let ready = isLive
            ? LinuxSymbols.epollWait(epfd, UnsafeMutableRawPointer(events), maxEvents, timeoutMs)
            : calls.epollWait(epfd, UnsafeMutableRawPointer(events), maxEvents, timeoutMs)
        if ready >= 0 { return Int(ready) }
        let code = errno
        guard code == EINTR else { throw IOError(errnoCode: code, function: "epoll_wait(2)") }
        return 0
    }

    /// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`: a counter descriptor used to wake an `epoll_wait`.
    package func eventfdCreate() throws(IOError) -> CInt {
        let fd = calls.eventfd(0, O_NONBLOCK | O_CLOEXEC)  // EFD_NONBLOCK/EFD_CLOEXEC == O_*
        guard fd >= 0 else { throw IOError(errnoCode: errno, function: "eventfd(2)") }
        return fd
    }

    /// Adds 1 to the eventfd counter, making it readable (waking any `epoll_wait` on it).
    ///
    /// `EAGAIN` (the counter is saturated) is not an error: the descriptor is readable already.
    package func eventfdWrite(_ fd: CInt) throws(IOError) {
        var one: UInt64 = 1
        while true {
            if calls.write(fd, &one, MemoryLayout<UInt64>.size) >= 0 { return }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return
            default: throw IOError(errnoCode: code, function: "eventfd write(2)")
            }
        }
    }

    /// Reads and resets the eventfd counter so the descriptor stops being readable.
    ///
    /// - Returns: the count of writes since the last drain (0 if there were none).
    @discardableResult
    package func eventfdDrain(_ fd: CInt) throws(IOError) -> UInt64 {
        var value: UInt64 = 0
        while true {
            if calls.read(fd, &value, MemoryLayout<UInt64>.size) >= 0 { return value }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return 0
            default: throw IOError(errnoCode: code, function: "eventfd read(2)")
            }
        }
    }
}

/// libc functions that Glibc's Swift module does not import, looked up once with `dlsym`.
///
/// They live in libc itself, which is always loaded, so `dlsym(RTLD_DEFAULT, ...)` (a `nil` handle
/// on glibc) always finds them; a missing one is a broken platform and stops the process.
@usableFromInline
enum LinuxSymbols {
    /// `int accept4(int, struct sockaddr *, socklen_t *, int)`.
    @usableFromInline typealias Accept4 = @convention(c) (
        CInt, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, CInt
    ) -> CInt
    /// `int epoll_create1(int flags)`.
    @usableFromInline typealias EpollCreate1 = @convention(c) (CInt) -> CInt
    /// `int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)`.
    @usableFromInline typealias EpollCtl = @convention(c) (CInt, CInt, CInt, UnsafeMutableRawPointer?) -> CInt
    /// `int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)`.
    @usableFromInline typealias EpollWait = @convention(c) (CInt, UnsafeMutableRawPointer?, CInt, CInt) -> CInt
    /// `int eventfd(unsigned int initval, int flags)`.
    @usableFromInline typealias Eventfd = @convention(c) (CUnsignedInt, CInt) -> CInt

    /// `int recvmmsg(int, struct mmsghdr *, unsigned int, int, struct timespec *)`.
    @usableFromInline typealias RecvMMsg = @convention(c) (
        CInt, UnsafeMutableRawPointer?, CUnsignedInt, CInt, UnsafeMutableRawPointer?
    ) -> CInt
    /// `int sendmmsg(int, struct mmsghdr *, unsigned int, int)`.
    @usableFromInline typealias SendMMsg = @convention(c) (CInt, UnsafeMutableRawPointer?, CUnsignedInt, CInt) -> CInt
    /// libc's `recvmmsg`.
    @usableFromInline static let recvmmsg = load("recvmmsg", as: RecvMMsg.self)
    /// libc's `sendmmsg`.
    @usableFromInline static let sendmmsg = load("sendmmsg", as: SendMMsg.self)
    /// libc's `accept4`.
    @usableFromInline static let accept4 = load("accept4", as: Accept4.self)
    /// libc's `epoll_create1`.
    @usableFromInline static let epollCreate1 = load("epoll_create1", as: EpollCreate1.self)
    /// libc's `epoll_ctl`.
    @usableFromInline static let epollCtl = load("epoll_ctl", as: EpollCtl.self)
    /// libc's `epoll_wait`.
    @usableFromInline static let epollWait = load("epoll_wait", as: EpollWait.self)
    /// libc's `eventfd`.
    @usableFromInline static let eventfd = load("eventfd", as: Eventfd.self)

    /// The symbol `name` from the loaded libc, as a C function pointer of `type`.
    private static func load<Function>(_ name: String, as type: Function.Type) -> Function {
        guard let symbol = dlsym(nil, name) else {
            fatalError("libc has no \(name): Pheromones needs Linux with glibc")
        }
        return unsafeBitCast(symbol, to: type)
    }
}
