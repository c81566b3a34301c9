import Glibc

/// The raw system calls the reactor makes, as a table of functions: the seam where tests inject
/// faults.
///
/// Each entry has the C call's shape and contract: it returns what the call returns and, on
/// failure, returns -1 with `errno` set. ``Posix`` wraps the entries (retrying `EINTR`, turning
/// `EAGAIN` into ``IOResult/wouldBlock``, throwing the rest as `IOError`), and every loop makes its
/// calls through its own table (``EpollEventLoop/posix``), so a test can give one group of loops a
/// table whose `writev` is short, whose `read` says `ECONNRESET` on the third call, or whose
/// `epoll_ctl` fails, and watch the channels above cope, deterministically, without touching the
/// kernel's sockets. SwiftNIO's SyscallAbstractionLayer tests work the same way.
///
/// ``live`` calls the kernel. An entry is one indirect call in front of a system call that costs
/// hundreds of nanoseconds or more: nothing measurable.
package struct SystemCalls: Sendable {
    package var socket: @Sendable (_ domain: CInt, _ type: CInt, _ protocol: CInt) -> CInt
    package var close: @Sendable (_ fd: CInt) -> CInt
    package var bind: @Sendable (_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt
    package var listen: @Sendable (_ fd: CInt, _ backlog: CInt) -> CInt
    package var accept4: @Sendable (
        _ fd: CInt, _ address: UnsafeMutablePointer<sockaddr>?, _ length: UnsafeMutablePointer<socklen_t>?, _ flags: CInt
    ) -> CInt
    package var connect: @Sendable (_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt
    package var shutdown: @Sendable (_ fd: CInt, _ how: CInt) -> CInt
    package var setsockopt: @Sendable (
        _ fd: CInt, _ level: CInt, _ name: CInt, _ value: UnsafeRawPointer?, _ length: socklen_t
    ) -> CInt
    package var getsockopt: @Sendable (
        _ fd: CInt, _ level: CInt, _ name: CInt, _ value: UnsafeMutableRawPointer?, _ length: UnsafeMutablePointer<socklen_t>?
    ) -> CInt
    package var getsockname: @Sendable (
        _ fd: CInt, _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>
    ) -> CInt
    package var getpeername: @Sendable (
        _ fd: CInt, _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>
    ) -> CInt
    package var read: @Sendable (_ fd: CInt, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int
    package var write: @Sendable (_ fd: CInt, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int
    package var send: @Sendable (_ fd: CInt, _ buffer: UnsafeRawPointer?, _ count: Int, _ flags: CInt) -> Int
    package var sendmsg: @Sendable (_ fd: CInt, _ message: UnsafePointer<msghdr>, _ flags: CInt) -> Int
    package var writev: @Sendable (_ fd: CInt, _ iov: UnsafePointer<iovec>, _ count: CInt) -> Int
    /// `recvmmsg(2)` (no timeout): receives up to `count` datagrams, one per `MMsgHdr`.
    package var recvmmsg: @Sendable (_ fd: CInt, _ messages: UnsafeMutablePointer<MMsgHdr>, _ count: CUnsignedInt, _ flags: CInt) -> CInt
    /// `sendmmsg(2)`: sends up to `count` datagrams and returns how many went.
    package var sendmmsg: @Sendable (_ fd: CInt, _ messages: UnsafeMutablePointer<MMsgHdr>, _ count: CUnsignedInt, _ flags: CInt) -> CInt
    package var epollCreate1: @Sendable (_ flags: CInt) -> CInt
    package var epollCtl: @Sendable (_ epfd: CInt, _ op: CInt, _ fd: CInt, _ event: UnsafeMutableRawPointer?) -> CInt
    package var epollWait: @Sendable (
        _ epfd: CInt, _ events: UnsafeMutableRawPointer?, _ maxEvents: CInt, _ timeoutMs: CInt
    ) -> CInt
    package var eventfd: @Sendable (_ initialValue: CUnsignedInt, _ flags: CInt) -> CInt

    /// The kernel's calls (through Glibc, and `dlsym` for the ones Glibc's module lacks).
    package static let live = SystemCalls(
        socket: { Glibc.socket($0, $1, $2) },
        close: { Glibc.close($0) },
        bind: { Glibc.bind($0, $1, $2) },
        listen: { Glibc.listen($0, $1) },
        accept4: { LinuxSymbols.accept4($0, $1, $2, $3) },
        connect: { Glibc.connect($0, $1, $2) },
        shutdown: { Glibc.shutdown($0, $1) },
        setsockopt: { Glibc.setsockopt($0, $1, $2, $3, $4) },
        getsockopt: { Glibc.getsockopt($0, $1, $2, $3, $4) },
        getsockname: { Glibc.getsockname($0, $1, $2) },
        getpeername: { Glibc.getpeername($0, $1, $2) },
        read: { Glibc.read($0, $1, $2) },
        write: { Glibc.write($0, $1, $2) },
        send: { Glibc.send($0, $1, $2, $3) },
        sendmsg: { Glibc.sendmsg($0, $1, $2) },
        writev: { Glibc.writev($0, $1, $2) },
        recvmmsg: { LinuxSymbols.recvmmsg($0, UnsafeMutableRawPointer($1), $2, $3, nil) },
        sendmmsg: { LinuxSymbols.sendmmsg($0, UnsafeMutableRawPointer($1), $2, $3) },
        epollCreate1: { LinuxSymbols.epollCreate1($0) },
        epollCtl: { LinuxSymbols.epollCtl($0, $1, $2, $3) },
        epollWait: { LinuxSymbols.epollWait($0, $1, $2, $3) },
        eventfd: { LinuxSymbols.eventfd($0, $1) }
    )
}
