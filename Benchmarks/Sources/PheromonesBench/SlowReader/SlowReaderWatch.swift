/// Samples the server's resident memory (and, if asked, its open file descriptors) at a fixed
/// interval during one stage of a slow-reader run, keeping the peak, and notices when the server
/// process is gone.
final class SlowReaderWatch {
    let pid: Int32
    private let interval: UInt64
    private var nextSample: UInt64 = 0
    /// Whether each reading also counts the open descriptors (a directory listing of /proc/PID/fd:
    /// worth it where a client holds many connections, as p2p-slow-peer's short-router flooder).
    private let countsFiles: Bool

    /// The largest `VmRSS` read, in KiB (nil until one reading succeeded).
    private(set) var peakKiB: Int?
    /// The most open file descriptors read (nil unless `countsFiles`, or until one reading succeeded).
    private(set) var peakFDs: Int?
    /// Readings taken, successful or not.
    private(set) var samples = 0
    /// False once the server process has exited.
    private(set) var serverAlive = true

    init(pid: Int32, interval: Double, countsFiles: Bool = false) {
        self.pid = pid
        self.interval = ChaosDriver.nanoseconds(interval)
        self.countsFiles = countsFiles
    }

    /// Takes a reading if one is due at `now` (the first call always takes one).
    func tick(now: UInt64) {
        guard serverAlive, now >= nextSample else { return }
        nextSample = now + interval
        samples += 1
        // The liveness check first: a zombie's /proc entry has no VmRSS, and the loop must stop.
        guard ProcessStats.isAlive(pid) else {
            serverAlive = false
            return
        }
        if let kib = ProcessStats.residentKiB(of: pid) { peakKiB = max(peakKiB ?? 0, kib) }
        if countsFiles, let count = ProcessStats.openFileCount(of: pid) { peakFDs = max(peakFDs ?? 0, count) }
    }
}
