import Pheromones

/// A random connected graph of about a given degree, drawn from a seed.
///
/// A random cycle through every node keeps it connected; the rest of each node's degree is
/// filled by pairing "stubs" at random (the configuration model), dropping self-loops and
/// repeated pairs, so most nodes end with exactly `degree` neighbours and a few with one or two
/// fewer. The cycle's edges are the ones ``removableEdges`` never offers, so any subset of those
/// can fail and the graph stays connected.
public struct RandomGraph: Sendable {
    /// The number of nodes (0 ..< nodeCount).
    public let nodeCount: Int
    /// Every edge once, as (lower, higher) node indices, in a fixed order.
    public private(set) var edges: [(Int, Int)] = []
    /// The edges of the cycle that keeps the graph connected (indices into ``edges``).
    private var cycleEdges: Set<Int> = []

    /// Draws a graph of `nodeCount` nodes of about `degree` neighbours each.
    public init(nodeCount: Int, degree: Int, random: inout some RandomNumberGenerator) {
        self.nodeCount = nodeCount
        guard nodeCount > 1 else { return }
        var seen = Set<Int>()
        func key(_ a: Int, _ b: Int) -> Int { min(a, b) * nodeCount + max(a, b) }
        func addEdge(_ a: Int, _ b: Int) -> Bool {
            guard a != b, seen.insert(key(a, b)).inserted else { return false }
            edges.append((min(a, b), max(a, b)))
            return true
        }
        let order = Array(0 ..< nodeCount).shuffled(using: &random)
        for index in order.indices where nodeCount > 2 || index == 0 {
            if addEdge(order[index], order[(index + 1) % nodeCount]) { cycleEdges.insert(edges.count - 1) }
        }
        let extra = max(0, degree - 2)
        var stubs = (0 ..< nodeCount).flatMap { Array(repeating: $0, count: extra) }
        stubs.shuffle(using: &random)
        var index = 0
        while index + 1 < stubs.count {
            _ = addEdge(stubs[index], stubs[index + 1])
            index += 2
        }
    }

    /// The edges that may fail without disconnecting the graph (indices into ``edges``).
    public var removableEdges: [Int] {
        edges.indices.filter { !cycleEdges.contains($0) }
    }

    /// Each node's neighbours.
    public var neighbours: [[Int]] {
        var result = Array(repeating: [Int](), count: nodeCount)
        for (a, b) in edges {
            result[a].append(b)
            result[b].append(a)
        }
        return result
    }

    /// The average number of neighbours.
    public var averageDegree: Double {
        nodeCount == 0 ? 0 : Double(2 * edges.count) / Double(nodeCount)
    }

    /// Whether every node reaches every other over `edges` minus `removed`.
    public func isConnected(without removed: Set<Int> = []) -> Bool {
        guard nodeCount > 0 else { return true }
        var adjacency = Array(repeating: [Int](), count: nodeCount)
        for (index, (a, b)) in edges.enumerated() where !removed.contains(index) {
            adjacency[a].append(b)
            adjacency[b].append(a)
        }
        var reached = Array(repeating: false, count: nodeCount)
        var stack = [0]
        reached[0] = true
        var count = 1
        while let node = stack.popLast() {
            for next in adjacency[node] where !reached[next] {
                reached[next] = true
                count += 1
                stack.append(next)
            }
        }
        return count == nodeCount
    }
}
