import Glibc

/// Readings of another process from `/proc`.
enum ProcessStats {
    /// CPU time (user + system, all threads) of process `pid` in seconds, from `/proc/PID/stat`
    /// (`utime` and `stime`, in clock ticks of usually 10 ms).
    static func cpuSeconds(of pid: Int32) -> Double? {
        guard let stat = readFile("/proc/\(pid)/stat"),
              let afterName = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm) " the fields are: state(3) ppid pgrp session tty tpgid flags minflt
        // cminflt majflt cmajflt utime(14) stime(15).
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(CInt(_SC_CLK_TCK)))
    }

    /// Resident memory of process `pid` in KiB, from the `VmRSS:` line of `/proc/PID/status`.
    static func residentKiB(of pid: Int32) -> Int? {
        guard let status = readFile("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        return nil
    }

    /// Open file descriptors of process `pid`: the entries of `/proc/PID/fd` (nil if unreadable).
    static func openFileCount(of pid: Int32) -> Int? {
        guard let directory = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
            }
            if !isDot { count += 1 }
        }
        return count
    }

    /// Whether process `pid` still exists (and is not a zombie waiting to be reaped).
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = readFile("/proc/\(pid)/stat"), let afterName = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: afterName)...].split(separator: " ").first != "Z"
    }

    /// A small text file, read whole (`/proc` files report size 0, so this reads until EOF).
    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The monotonic clock in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
}
