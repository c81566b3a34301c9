import Pheromones

/// The bytes of incomplete messages that all of a node's connections may hold together
/// (``Node/Configuration/maximumPartialMessageBytes``).
///
/// Each connection's framer may hold up to one message of the largest size, so many connections
/// that each send most of a large message and hold back the rest would otherwise make the node hold
/// their number times the largest message. Shared by the node's connections, on the node's loop.
final class PartialMessageBudget {
    /// The most bytes held over every connection.
    let limit: Int
    /// The bytes held now.
    private(set) var held = 0

    init(limit: Int) { self.limit = max(0, limit) }

    /// Moves a connection's share from `old` to `new` bytes; returns whether the total is within the limit.
    func update(from old: Int, to new: Int) -> Bool {
        held += new - old
        return held <= limit
    }
}

/// Keeps its connection's framer within the node's ``PartialMessageBudget``: after each read it
/// charges the bytes the framer holds, and a read that takes the node past the budget closes this
/// connection (the one that just grew), reporting ``P2PError/limitReached(_:)`` with
/// ``AdmissionLimit/partialMessageBytes``.
final class PartialMessageBudgetStage: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// Read completions go past this stage.
    static var passThroughEvents: PassThroughEvents { [.channelReadComplete] }

    private let budget: PartialMessageBudget
    private let framer: any PartialMessageProbe
    /// The bytes this connection has charged to the budget.
    private var charged = 0

    init(budget: PartialMessageBudget, framer: any PartialMessageProbe) {
        self.budget = budget
        self.framer = framer
    }

    /// Passes the bytes to the framer, then charges what it holds.
    func channelRead(context: ChannelHandlerContext, data: ByteBuffer) {
        context.fireChannelRead(data)
        guard !context.isRemoved, context.channel.isActive else { return }
        let holding = framer.bufferedByteCount
        let withinBudget = budget.update(from: charged, to: holding)
        charged = holding
        guard !withinBudget, holding > 0 else { return }
        release()
        context.fireErrorCaught(P2PError.limitReached(.partialMessageBytes))
        context.close()
    }

    /// Gives the connection's share back.
    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    /// Gives the connection's share back.
    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        _ = budget.update(from: charged, to: 0)
        charged = 0
    }
}
