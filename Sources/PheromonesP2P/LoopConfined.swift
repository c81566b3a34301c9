import Pheromones

/// A loop-confined object owned by a `Sendable` one (the node's core, owned by ``Node``).
///
/// Unlike `LoopBound`, it can be made off the loop: the owner creates the object, hands it over
/// here, and from then on reaches it only on the loop.
// Unchecked: the object is handed over (`sending`) when the box is made, before the box is shared,
// and is reachable afterwards only through `value`, which traps off `loop`.
struct LoopConfined<Value: AnyObject>: @unchecked Sendable {
    let loop: any EventLoop
    private let object: Value

    init(_ object: sending Value, loop: any EventLoop) {
        self.loop = loop
        self.object = object
    }

    /// The object; traps when called off the loop.
    var value: Value {
        loop.preconditionInEventLoop()
        return object
    }
}
