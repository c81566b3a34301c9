/// A figure read off a load result, how to show it, and which way is better.
struct Metric: Sendable {
    /// The key in the JSON report.
    var key: String
    /// The column title in the table.
    var title: String
    var decimals: Int
    var value: @Sendable (LoadResult) -> Double?

    func format(_ number: Double) -> String { NumberText.format(number, decimals: decimals) }
}

extension Scenario {
    /// The figures each scenario reports.
    var metrics: [Metric] {
        switch self {
        case .pingpong, .framed, .tlsPingpong:
            return [
                Metric(key: "messagesPerSecond", title: "msg/s", decimals: 0) { $0.messagesPerSecond },
                Metric(key: "latencyP50", title: "p50 µs", decimals: 1) { $0.latencyP50 },
                Metric(key: "latencyP99", title: "p99 µs", decimals: 1) { $0.latencyP99 },
                Metric(key: "latencyP999", title: "p999 µs", decimals: 1) { $0.latencyP999 },
                Metric(key: "serverMicrosecondsPerMessage", title: "srv CPU µs/msg", decimals: 2) { $0.serverMicrosecondsPerMessage },
            ]
        case .stream, .tlsStream:
            return [
                Metric(key: "megabytesPerSecond", title: "MB/s", decimals: 0) { $0.megabytesPerSecond },
                Metric(key: "messagesPerSecond", title: "msg/s", decimals: 0) { $0.messagesPerSecond },
                Metric(key: "latencyP99", title: "p99 µs", decimals: 0) { $0.latencyP99 },
                Metric(key: "serverMicrosecondsPerMessage", title: "srv CPU µs/msg", decimals: 2) { $0.serverMicrosecondsPerMessage },
            ]
        case .tlsHandshakes:
            return [
                Metric(key: "messagesPerSecond", title: "conn/s", decimals: 0) { $0.messagesPerSecond },
                Metric(key: "latencyP50", title: "p50 µs", decimals: 0) { $0.latencyP50 },
                Metric(key: "latencyP99", title: "p99 µs", decimals: 0) { $0.latencyP99 },
                Metric(key: "serverMicrosecondsPerMessage", title: "srv CPU µs/conn", decimals: 1) { $0.serverMicrosecondsPerMessage },
                Metric(key: "resumedPercent", title: "resumed %", decimals: 1) { $0.resumedFraction.map { $0 * 100 } },
            ]
        case .conns, .tlsIdle:
            return [
                Metric(key: "answered", title: "answered", decimals: 0) { Double($0.answered) },
                Metric(key: "secondsToAllAnswered", title: "s to all answered", decimals: 3) { $0.secondsToAllAnswered },
                Metric(key: "serverBytesPerConnection", title: "srv RSS B/conn", decimals: 0) { $0.serverBytesPerConnection },
                Metric(key: "latencyP99", title: "p99 first reply µs", decimals: 0) { $0.latencyP99 },
            ]
        }
    }
}

/// Numbers as the report prints them: thousands grouped, fixed decimals.
enum NumberText {
    static func format(_ number: Double, decimals: Int) -> String {
        guard number.isFinite else { return "-" }
        let scale = pow10(decimals)
        let total = Int((abs(number) * Double(scale)).rounded())
        var text = grouped(total / scale)
        if decimals > 0 {
            let digits = String(total % scale)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return number < 0 && total > 0 ? "-" + text : text
    }

    private static func grouped(_ value: Int) -> String {
        let digits = Array(String(value))
        var text = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { text.append(",") }
            text.append(digit)
        }
        return text
    }

    private static func pow10(_ exponent: Int) -> Int {
        (0..<exponent).reduce(1) { value, _ in value * 10 }
    }
}

/// Median, minimum and maximum of a metric over rounds.
struct Spread: Codable, Sendable {
    var rounds: [Double]
    var median: Double
    var min: Double
    var max: Double
    /// ours / NIO of the medians (set on our rows only).
    var ratio: Double?

    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        rounds = values
        median = sorted.count.isMultiple(of: 2) ? (sorted[middle - 1] + sorted[middle]) / 2 : sorted[middle]
        min = sorted[0]
        max = sorted[sorted.count - 1]
    }
}
