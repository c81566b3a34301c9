/// A handler's name as its context stores it: the name given when the handler was added or, for one
/// added without a name, only the number its default name (`Type#number`) is made from, when asked.
///
/// Twelve bytes, for every handler of every connection: default names are rarely asked for, and one
/// of a long type name (`BackPressureHandler#0`) would be a heap string per handler; a given name is
/// boxed, so that the common case does not carry a string's sixteen bytes.
struct HandlerName: Sendable {
    /// A given name, out of line.
    private final class Given: Sendable {
        let name: String
        init(_ name: String) { self.name = name }
    }

    private let given: Given?
    /// The number of a default name.
    private let number: UInt32

    /// A name given when the handler was added.
    init(given name: String) {
        self.given = Given(name)
        self.number = 0
    }

    /// The name of a pipeline's ends (one box for all of them).
    static let head = HandlerName(given: "head")

    /// A default name, made from the handler's type and `number`.
    init(number: UInt32) {
        self.given = nil
        self.number = number
    }

    /// The name, for the handler it belongs to.
    func resolved(for handler: any ChannelHandler) -> String {
        given?.name ?? "\(type(of: handler))#\(number)"
    }
}
