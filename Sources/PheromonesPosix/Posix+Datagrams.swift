import Glibc
import PheromonesCore

/// Linux `struct mmsghdr`, declared by hand because Glibc's Swift module does not import it (it
/// sits behind `_GNU_SOURCE`): a `msghdr` and the byte count the kernel received or sent for it.
///
/// The C struct is 64 bytes on 64-bit Linux (56 for the `msghdr`, 4 for `msg_len`, 4 of padding);
/// this struct's stride is the same, so an array of it is an array of `mmsghdr`.
package struct MMsgHdr {
    /// The message: address, buffers, control data and flags.
    package var header = msghdr()
    /// Bytes received or sent for this message.
    package var length: CUnsignedInt = 0

    package init() {}
}

extension Posix {
    /// `SOL_UDP` (`IPPROTO_UDP`): the level of the UDP options below.
    package static let SOL_UDP: CInt = 17
    /// `UDP_SEGMENT`: generic segmentation offload; as a control message, the segment size of one send.
    package static let UDP_SEGMENT: CInt = 103
    /// `UDP_GRO`: generic receive offload; as a control message, the segment size of one coalesced read.
    package static let UDP_GRO: CInt = 104

    /// `recvmmsg(2)` of up to `count` datagrams into `messages`: how many arrived, or
    /// ``IOResult/wouldBlock``. Retries `EINTR`.
    ///
    /// - Throws: errors a datagram socket reports for earlier traffic (`ECONNREFUSED` on a
    ///   connected socket whose peer's port is closed, say) and any other failure.
    package func receiveMessages(_ fd: CInt, _ messages: UnsafeMutablePointer<MMsgHdr>, count: Int) throws(IOError) -> IOResult<Int> {
        while true {
            let received = isLiveTable
                ? LinuxSymbols.recvmmsg(fd, UnsafeMutableRawPointer(messages), CUnsignedInt(count), 0, nil)
                : calls.recvmmsg(fd, messages, CUnsignedInt(count), 0)
            if received >= 0 { return .processed(Int(received)) }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw IOError(errnoCode: code, function: "recvmmsg(2)")
            }
        }
    }

    /// `sendmmsg(2)` of `count` datagrams with `MSG_NOSIGNAL`: how many the kernel took (at least
    /// one; the rest should be offered again), or ``IOResult/wouldBlock``. Retries `EINTR`.
    ///
    /// - Throws: the first datagram's failure (`EMSGSIZE`, `ECONNREFUSED`, ...): nothing was sent.
    package func sendMessages(_ fd: CInt, _ messages: UnsafeMutablePointer<MMsgHdr>, count: Int) throws(IOError) -> IOResult<Int> {
        while true {
            let sent = isLiveTable
                ? LinuxSymbols.sendmmsg(fd, UnsafeMutableRawPointer(messages), CUnsignedInt(count), CInt(MSG_NOSIGNAL))
                : calls.sendmmsg(fd, messages, CUnsignedInt(count), CInt(MSG_NOSIGNAL))
            if sent >= 0 { return .processed(Int(sent)) }
            let code = errno
            switch code {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw IOError(errnoCode: code, function: "sendmmsg(2)")
            }
        }
    }
}
