/// A value confined to an event loop, that may be carried through `@Sendable` closures that run on
/// that loop (timers, `execute`, future callbacks).
///
/// Reading or writing ``value`` off the loop traps, in every build: the check is what makes passing
/// a non-`Sendable` handler or context through a `Sendable` closure safe.
///
/// ```swift
/// let bound = LoopBound((self, context), eventLoop: context.eventLoop)
/// context.eventLoop.scheduleTask(in: .seconds(5)) { bound.value.0.timeout(context: bound.value.1) }
/// ```
// Unchecked: `value` is only reachable through accessors that check `eventLoop.inEventLoop`.
public struct LoopBound<Value>: @unchecked Sendable {
    /// The loop the value belongs to.
    public let eventLoop: any EventLoop
    @usableFromInline var storage: Value

    /// Binds `value` to `eventLoop`. Must be called on that loop.
    @inlinable
    public init(_ value: Value, eventLoop: any EventLoop) {
        eventLoop.preconditionInEventLoop()
        self.eventLoop = eventLoop
        self.storage = value
    }

    /// The value; trap if called off the loop.
    @inlinable
    public var value: Value {
        get {
            eventLoop.preconditionInEventLoop()
            return storage
        }
        set {
            eventLoop.preconditionInEventLoop()
            storage = newValue
        }
    }
}
