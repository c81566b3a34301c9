import Pheromones
import PheromonesP2P

/// Prints lines from any thread (node loops, tasks) without interleaving them (through ``Console``),
/// and counts what the example protocol reports.
final class Transcript: Sendable {
    private struct Counts {
        var handled = 0
        var finished: [String] = []
        var rejected = 0
    }

    private let counts = LockedValue(Counts())
    private let start = Deadline.now()
    private let prefix: String

    init(prefix: String = "") {
        self.prefix = prefix
    }

    /// Prints `line`, stamped with the time since the transcript began, made safe for the terminal
    /// and at once, even when standard output is a pipe (see ``Console``: what the line quotes
    /// from peers is escaped where it entered it).
    func say(_ line: String) {
        let elapsed = Double((Deadline.now() - start).nanoseconds) / 1e6
        Console.printLine("\(prefix)\(format3(elapsed)) ms  \(line)")
    }

    /// An observer for ``ExampleProtocol`` that prints and counts every step.
    var protocolObserver: @Sendable (ExampleProtocol.Event) -> Void {
        { [self] event in
            counts.withLock { counts in
                switch event {
                case .handled: counts.handled += 1
                case .conversationFinished(let node, let peer): counts.finished.append("\(node)->\(peer)")
                case .rejected: counts.rejected += 1
                case .routeAdded, .routeNotAdded: break
                }
            }
            say(event.description)
        }
    }

    /// An observer for a node's connection events.
    var nodeObserver: @Sendable (NodeEvent) -> Void {
        { [self] event in say(event.description) }
    }

    /// How many messages the protocols handled so far.
    var messagesHandled: Int { counts.withLock { $0.handled } }
    /// The conversations that finished so far, as "initiator->peer".
    var conversationsFinished: [String] { counts.withLock { $0.finished } }
    /// The time since the transcript began.
    var elapsed: TimeAmount { Deadline.now() - start }

    /// Waits until `count` conversations have finished or `timeout` passed; returns how many have.
    func waitForConversations(count: Int, timeout: TimeAmount) async -> Int {
        let deadline = Deadline.now() + timeout
        while conversationsFinished.count < count, Deadline.now() < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return conversationsFinished.count
    }
}

/// A number with three decimals at most, without Foundation.
func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded()
    let whole = Int(scaled) / 1000
    let fraction = abs(Int(scaled) % 1000)
    let digits = String(fraction)
    return "\(whole).\(String(repeating: "0", count: 3 - digits.count))\(digits)"
}

/// A duration in milliseconds, three decimals at most.
func milliseconds(_ amount: TimeAmount) -> String {
    format3(Double(amount.nanoseconds) / 1e6)
}
