import Glibc

/// SplitMix64: a small, fast generator from a seed, so that what a chaos run chooses is
/// reproducible. Each client slot has its own, seeded from the run's seed and its index, so the
/// sequence of sessions a slot runs does not depend on how the slots' events interleave.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    /// The generator of one client slot of a run seeded with `seed`.
    init(seed: UInt64, stream: Int) {
        var mixer = SeededGenerator(seed: seed ^ (UInt64(truncatingIfNeeded: stream) &* 0xD6E8_FEB8_6659_FD93))
        state = mixer.next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// An integer in `range` whose logarithm is uniform: small values as likely per decade as large ones.
    mutating func logUniform(_ range: ClosedRange<Int>) -> Int {
        let low = log(Double(max(1, range.lowerBound))), high = log(Double(max(1, range.upperBound)))
        let value = Int(exp(Double.random(in: low...high, using: &self)).rounded())
        return min(max(value, range.lowerBound), range.upperBound)
    }

    /// True with probability `probability`.
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }

    /// A duration drawn uniformly from `seconds`, in nanoseconds.
    mutating func nanoseconds(_ seconds: ClosedRange<Double>) -> UInt64 {
        UInt64(Double.random(in: seconds, using: &self) * 1e9)
    }

    /// One of `choices`, each as likely as its weight.
    mutating func weighted<Choice>(_ choices: [(weight: Int, value: Choice)]) -> Choice {
        var pick = Int.random(in: 0..<choices.reduce(0) { $0 + $1.weight }, using: &self)
        for choice in choices {
            if pick < choice.weight { return choice.value }
            pick -= choice.weight
        }
        return choices[choices.count - 1].value
    }
}
