/// A weak reference to `Object`: for a timer or callback that must not keep a stage (and through
/// its context, its whole pipeline) alive, as a handshake timeout must not.
package final class WeakReference<Object: AnyObject> {
    /// The object, while something else holds it.
    package weak var object: Object?

    /// A weak reference to `object`.
    package init(_ object: Object) { self.object = object }
}
