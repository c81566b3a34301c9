/// Fired, as a user inbound event, on every connection of a server that is shutting down
/// gracefully (see `ServerQuiescingHelper`): finish what is under way (answer the request being
/// read, flush), then close. Connections still open when the grace period ends are closed for them.
///
/// A handler that has nothing to finish can close at once; one that ignores the event is closed at
/// the deadline.
public struct ChannelShouldQuiesceEvent: Sendable, Hashable {
    /// The event.
    public init() {}
}
