import Logging
import Pheromones

/// The Go original's example protocol (`_example/protocal/protocal.go`): a connect, get, fetch,
/// notice exchange.
///
/// The initiator sends `connectreq` carrying a ``Greeting`` (its listening address and an
/// account); each side answers what it receives:
///
/// | received      | answer        | and                                                 |
/// |---------------|---------------|-----------------------------------------------------|
/// | `connectreq`  | `connectresp` | adds the sender's route (`addRoute`, by the greeting) |
/// | `getreq`      | `getresp`     |                                                     |
/// | `fetchreq`    | `fetchresp`   |                                                     |
/// | `noticereq`   | `noticeresp`  |                                                     |
/// | `connectresp` | `getreq`      |                                                     |
/// | `getresp`     | `fetchreq`    |                                                     |
/// | `fetchresp`   | `noticereq`   |                                                     |
/// | `noticeresp`  | nothing       | the conversation is complete                        |
/// | anything else | `unknownop`   |                                                     |
///
/// A message that is not an envelope is answered `unknownop` too, and reported as
/// ``P2PError/mismatchedRequest(_:)`` (the original's `ErrMismatchProtocalReq`); a `connectreq`
/// whose greeting does not parse is answered with nothing and reported as
/// ``P2PError/mismatchedResponse(_:)`` (the original's `ErrMismatchProtocalResp`). Failing to add
/// the route is reported but does not stop the exchange, as in the original.
///
/// One deliberate difference: `unknownop` itself is answered with nothing. The original answers it
/// with `unknownop` (its default case), so two instances of it bounce `unknownop` forever.
///
/// Every step and every completed conversation is reported to the observer, for transcripts and
/// tests. The object is confined to its node's loop, like any ``PeerProtocol``; the observer is
/// called there, so it should hand events off rather than block.
public final class ExampleProtocol: PeerProtocol {
    /// The operations (the original's constants).
    public enum Operation {
        /// Asks to connect; carries a ``Greeting``.
        public static let connectRequest = "connectreq"
        /// Asks for one item.
        public static let getRequest = "getreq"
        /// Asks for a batch.
        public static let fetchRequest = "fetchreq"
        /// Announces an update.
        public static let noticeRequest = "noticereq"
        /// Answers `connectreq`.
        public static let connectResponse = "connectresp"
        /// Answers `getreq`.
        public static let getResponse = "getresp"
        /// Answers `fetchreq`.
        public static let fetchResponse = "fetchresp"
        /// Answers `noticereq`.
        public static let noticeResponse = "noticeresp"
        /// Answers what the protocol does not know.
        public static let unknown = "unknownop"
    }

    /// What the protocol reports to its observer.
    public enum Event: Sendable, CustomStringConvertible {
        /// `node` received `message` and answered `answer` (nil: nothing).
        case handled(node: String, message: Envelope, answer: Envelope?)
        /// A conversation `node` started with `peer` is complete (its `noticeresp` arrived).
        case conversationFinished(node: String, peer: String)
        /// A `connectreq` added a route to `name` at `address`.
        case routeAdded(node: String, name: String, address: String)
        /// A `connectreq` could not add its route (the exchange goes on).
        case routeNotAdded(node: String, name: String, address: String, error: P2PError)
        /// Input that does not fit the protocol arrived at `node`.
        case rejected(node: String, error: P2PError)

        /// One line, for a transcript. Names, operations and addresses (which peers choose) are
        /// escaped for the terminal, as the errors' descriptions are.
        public var description: String {
            switch self {
            case .handled(let node, let message, let answer):
                let answered = answer?.operation.escapedForTerminal ?? "(nothing)"
                return "@\(node.escapedForTerminal)@ \(message.operation.escapedForTerminal) from @\(message.name.escapedForTerminal)@ -> \(answered)"
            case .conversationFinished(let node, let peer):
                return "@\(node.escapedForTerminal)@ conversation with @\(peer.escapedForTerminal)@ finished"
            case .routeAdded(let node, let name, let address):
                return "@\(node.escapedForTerminal)@ added route @\(name.escapedForTerminal)@ at \(address.escapedForTerminal)"
            case .routeNotAdded(let node, let name, let address, let error):
                return "@\(node.escapedForTerminal)@ did not add route @\(name.escapedForTerminal)@ at \(address.escapedForTerminal): \(error)"
            case .rejected(let node, let error):
                return "@\(node.escapedForTerminal)@ rejected a message: \(error)"
            }
        }
    }

    private let observer: (@Sendable (Event) -> Void)?
    private let logger: Logger

    /// Creates the protocol; `observer` sees every step (called on the node's loop).
    public init(observer: (@Sendable (Event) -> Void)? = nil, logger: Logger = Logger(label: "pheromones.example")) {
        self.observer = observer
        self.logger = logger
    }

    /// The message that starts a conversation: `connectreq` from `name`, greeting with the address
    /// its server listens on and `account` (the original's example uses 11900).
    public static func connectRequest(from name: String, listeningAddress: String, account: Int = 11900) -> Envelope {
        Envelope(name: name, operation: Operation.connectRequest, data: Greeting(address: listeningAddress, account: account).encoded())
    }

    /// The message that starts a conversation, with the listening address as a ``SocketAddress``.
    public static func connectRequest(from name: String, listeningAddress: SocketAddress, account: Int = 11900) -> Envelope {
        connectRequest(from: name, listeningAddress: listeningAddress.description, account: account)
    }

    /// Answers `message` by the table in the type's documentation.
    ///
    /// - Throws: ``P2PError/mismatchedResponse(_:)`` for a `connectreq` whose greeting does not parse.
    public func handle(_ message: Envelope, context: PeerContext) throws -> Envelope? {
        let answer: String?
        switch message.operation {
        case Operation.connectRequest:
            try connect(message, context: context)
            answer = Operation.connectResponse
        case Operation.getRequest: answer = Operation.getResponse
        case Operation.fetchRequest: answer = Operation.fetchResponse
        case Operation.noticeRequest: answer = Operation.noticeResponse
        case Operation.connectResponse: answer = Operation.getRequest
        case Operation.getResponse: answer = Operation.fetchRequest
        case Operation.fetchResponse: answer = Operation.noticeRequest
        case Operation.noticeResponse:
            answer = nil
            logger.debug("conversation finished", metadata: ["node": "\(context.localName)", "peer": "\(message.name.escapedForTerminal)"])
            observer?(.conversationFinished(node: context.localName, peer: message.name))
        case Operation.unknown: answer = nil
        default: answer = Operation.unknown
        }
        let reply = answer.map { Envelope(name: context.localName, operation: $0) }
        logger.debug("handled", metadata: ["node": "\(context.localName)", "operation": "\(message.operation.escapedForTerminal)", "from": "\(message.name.escapedForTerminal)", "answer": "\(answer ?? "-")"])
        observer?(.handled(node: context.localName, message: message, answer: reply))
        return reply
    }

    /// Answers a message that is not an envelope with `unknownop`, reporting it.
    public func handleMalformedMessage(_ error: WireError, context: PeerContext) throws -> Envelope? {
        let rejection = P2PError.mismatchedRequest(error.description)
        logger.notice("a message does not parse", metadata: ["node": "\(context.localName)", "error": "\(escapedDescription(of: error))"])
        observer?(.rejected(node: context.localName, error: rejection))
        return Envelope(name: context.localName, operation: Operation.unknown)
    }

    /// Reads the greeting and adds the sender's route (short: by the greeting's address;
    /// persistent: this connection, keyed by it).
    private func connect(_ message: Envelope, context: PeerContext) throws(P2PError) {
        let greeting: Greeting
        do {
            greeting = try Greeting(json: message.data ?? ByteBuffer())
        } catch {
            let rejection = P2PError.mismatchedResponse("the connect greeting does not parse: \(error)")
            observer?(.rejected(node: context.localName, error: rejection))
            throw rejection
        }
        do {
            try context.addRoute(name: message.name, address: greeting.address)
            observer?(.routeAdded(node: context.localName, name: message.name, address: greeting.address))
        } catch {
            logger.debug("route not added", metadata: ["node": "\(context.localName)", "name": "\(message.name.escapedForTerminal)", "error": "\(escapedDescription(of: error))"])
            observer?(.routeNotAdded(node: context.localName, name: message.name, address: greeting.address, error: error))
        }
    }
}
