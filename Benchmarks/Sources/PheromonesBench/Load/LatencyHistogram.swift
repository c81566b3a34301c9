/// A log-linear histogram of nanosecond latencies (HDR-style, about 1.6% precision), allocated once.
///
/// Values below 128 have a bucket each; above, each power of two is split into 64 buckets.
struct LatencyHistogram {
    private static let linearBuckets = 128
    private static let subBuckets = 64
    private static let bucketCount = linearBuckets + 48 * subBuckets

    fileprivate var counts = [UInt64](repeating: 0, count: bucketCount)
    fileprivate(set) var total: UInt64 = 0

    mutating func record(nanoseconds value: UInt64) {
        counts[Self.index(of: value)] &+= 1
        total &+= 1
    }

    /// The value below which `fraction` of the recorded values lie, in nanoseconds (0 if empty).
    func percentile(_ fraction: Double) -> Double {
        guard total > 0 else { return 0 }
        let target = UInt64((fraction * Double(total)).rounded(.up))
        var cumulative: UInt64 = 0
        for (index, count) in counts.enumerated() {
            cumulative += count
            if cumulative >= target { return Self.midpoint(of: index) }
        }
        return Self.midpoint(of: counts.count - 1)
    }

    private static func index(of value: UInt64) -> Int {
        if value < UInt64(linearBuckets) { return Int(value) }
        let exponent = 63 - value.leadingZeroBitCount  // >= 7
        let mantissa = Int((value >> UInt64(exponent - 6)) & UInt64(subBuckets - 1))
        return min(linearBuckets + (exponent - 7) * subBuckets + mantissa, bucketCount - 1)
    }

    private static func midpoint(of index: Int) -> Double {
        if index < linearBuckets { return Double(index) }
        let exponent = 7 + (index - linearBuckets) / subBuckets
        let mantissa = (index - linearBuckets) % subBuckets
        let low = Double(UInt64(subBuckets + mantissa) << UInt64(exponent - 6))
        return low + Double(UInt64(1) << UInt64(exponent - 6)) / 2
    }
}

extension LatencyHistogram {
    /// Adds every value recorded in `other`.
    mutating func merge(_ other: LatencyHistogram) {
        for (index, count) in other.counts.enumerated() where count > 0 { counts[index] &+= count }
        total &+= other.total
    }
}
