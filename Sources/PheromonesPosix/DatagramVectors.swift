import Glibc
import PheromonesCore

/// The headers one `recvmmsg` or `sendmmsg` call fills or reads: per datagram an `mmsghdr`, one
/// `iovec` (receives), a `sockaddr_storage` for the peer's address and room for one control
/// message (the GRO or GSO segment size).
///
/// A ``DatagramChannel`` holds two sets, one for receiving and one for sending, allocated once
/// when it is created (about 240 bytes per datagram of the batch each; 15 KiB for a batch of 32):
/// a handler may write and flush from `channelRead` while the channel is still going through the
/// batch it received, so the two must not share. Loop-confined, like the channel.
final class DatagramVectors {
    /// How many datagrams one call may carry.
    let capacity: Int
    let messages: UnsafeMutablePointer<MMsgHdr>
    let iovecs: UnsafeMutablePointer<iovec>
    let addresses: UnsafeMutablePointer<sockaddr_storage>
    /// `capacity` control buffers of ``controlSize`` bytes, 8-byte aligned.
    let controls: UnsafeMutableRawPointer
    /// Sends only: how many queued datagrams entry `index` carries (more than one with GSO).
    let runs: UnsafeMutablePointer<Int>

    /// `CMSG_SPACE(sizeof(int))`: a header (16 bytes) and an `int`, rounded to 8.
    static let controlSize = 24
    /// The size of a control message header (`struct cmsghdr` on 64-bit Linux).
    static let controlHeaderSize = MemoryLayout<cmsghdr>.size

    init(capacity: Int) {
        self.capacity = capacity
        messages = .allocate(capacity: capacity)
        messages.initialize(repeating: MMsgHdr(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        iovecs.initialize(repeating: iovec(), count: capacity)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: sockaddr_storage(), count: capacity)
        controls = .allocate(byteCount: capacity * Self.controlSize, alignment: 8)
        controls.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * Self.controlSize)
        runs = .allocate(capacity: capacity)
        runs.initialize(repeating: 0, count: capacity)
    }

    deinit {
        messages.deallocate()
        iovecs.deallocate()
        addresses.deallocate()
        controls.deallocate()
        runs.deallocate()
    }

    /// Sets entry `index` up to receive one datagram into `slot`, with room for the sender's
    /// address and, if `wantsControl`, a GRO control message.
    @inline(__always)
    func prepareReceive(_ index: Int, into slot: UnsafeMutableRawPointer, size: Int, wantsControl: Bool) {
        iovecs[index] = iovec(iov_base: slot, iov_len: size)
        var header = msghdr()
        header.msg_name = UnsafeMutableRawPointer(addresses + index)
        header.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
        header.msg_iov = iovecs + index
        header.msg_iovlen = 1
        if wantsControl {
            header.msg_control = controls + index * Self.controlSize
            header.msg_controllen = Self.controlSize
        }
        messages[index].header = header
        messages[index].length = 0
    }

    /// The sender of received datagram `index`, or nil if the kernel gave no address it knows.
    @inline(__always)
    func sender(of index: Int) -> SocketAddress? {
        let length = messages[index].header.msg_namelen
        return UnsafeRawPointer(addresses + index).withMemoryRebound(to: sockaddr.self, capacity: 1) {
            SocketAddress(sockaddr: $0, length: length)
        }
    }

    /// The GRO segment size the kernel attached to received datagram `index`, or nil if none:
    /// then the datagram is one datagram, else a run of datagrams of that size (the last may be shorter).
    func receivedSegmentSize(of index: Int) -> Int? {
        let header = messages[index].header
        guard let control = header.msg_control else { return nil }
        var offset = 0
        let total = min(header.msg_controllen, Self.controlSize)
        // Walks the control messages as CMSG_NXTHDR does, never past what the kernel filled in.
        while offset + Self.controlHeaderSize <= total {
            let message = control.loadUnaligned(fromByteOffset: offset, as: cmsghdr.self)
            let length = message.cmsg_len
            guard length >= Self.controlHeaderSize, offset + length <= total else { return nil }
            if message.cmsg_level == Posix.SOL_UDP, message.cmsg_type == Posix.UDP_GRO,
               length >= Self.controlHeaderSize + MemoryLayout<CInt>.size {
                let size = control.loadUnaligned(fromByteOffset: offset + Self.controlHeaderSize, as: CInt.self)
                return size > 0 ? Int(size) : nil
            }
            offset += (length + 7) & ~7
        }
        return nil
    }

    /// Writes a `UDP_SEGMENT` control message of `segmentSize` into entry `index`'s control buffer
    /// and returns its start and length, for a `msghdr` that sends a run of datagrams at once.
    func segmentControl(_ index: Int, segmentSize: Int) -> (UnsafeMutableRawPointer, Int) {
        let control = controls + index * Self.controlSize
        var message = cmsghdr()
        message.cmsg_len = Self.controlHeaderSize + MemoryLayout<UInt16>.size
        message.cmsg_level = Posix.SOL_UDP
        message.cmsg_type = Posix.UDP_SEGMENT
        control.storeBytes(of: message, as: cmsghdr.self)
        control.storeBytes(of: UInt16(truncatingIfNeeded: segmentSize), toByteOffset: Self.controlHeaderSize, as: UInt16.self)
        return (control, Self.controlSize)
    }
}
