import Pheromones
import PheromonesP2P

/// An in-memory network in virtual time: hosts (IPv4 addresses), the links between them with a
/// latency each, listeners and connections, all on one `EmbeddedEventLoop`.
///
/// Nothing here touches a socket or a clock, and every random draw of the network and of nodes
/// configured with a seed comes from it, so a run is reproducible: the same seed and the same
/// calls give the same events in the same order. (Noise's ephemeral keys are drawn from the
/// system's generator: inside Noise the bytes differ from run to run, their sizes and order do not.)
/// Thousands of nodes fit in one process; each is a real node stack (its stages, routers, wire
/// and protocol), only its connections are simulated (``SimulatedChannel``).
///
/// Drive it by advancing the loop's time (``run(for:)``, ``run(until:)``). Links can fail and be
/// restored while it runs (``cut(between:and:)``, ``restore(between:and:)``): a failed link loses
/// what is on its way, resets the connections over it, and lets no connection through (a dial
/// times out) until it is restored.
///
/// Not `Sendable`: it belongs to the one thread that drives its loop.
public final class SimulatedNetwork {
    /// The loop every node and connection of the network runs on.
    public let loop: EmbeddedEventLoop
    /// The range one-way latencies are drawn from, when a link is first used.
    public let latency: ClosedRange<TimeAmount>
    private var random: SplitMix64
    private var listeners: [SocketAddress: SimulatedListener] = [:]
    private var links: [HostPair: SimulatedLink] = [:]
    private var nextEphemeralPort: [UInt32: UInt16] = [:]
    private var connectionCount = 0

    /// A network whose link latencies are drawn from `latency` with randomness from `seed`.
    public init(seed: UInt64, latency: ClosedRange<TimeAmount> = .milliseconds(5) ... .milliseconds(50), loop: EmbeddedEventLoop = EmbeddedEventLoop()) {
        self.loop = loop
        self.latency = latency
        self.random = SplitMix64(seed: seed)
    }

    // MARK: Time

    /// Runs everything due within `amount` of virtual time.
    public func run(for amount: TimeAmount) {
        loop.advanceTime(by: amount)
    }

    /// Runs everything due up to `deadline`.
    public func run(until deadline: Deadline) {
        loop.advanceTime(to: deadline)
    }

    /// The network's current virtual time.
    public var now: Deadline { loop.now }

    // MARK: Links

    /// The link between the hosts of `a` and `b` (ports are ignored), made on first use.
    func link(between a: SocketAddress, and b: SocketAddress) -> SimulatedLink {
        let pair = HostPair(a, b)
        if let link = links[pair] { return link }
        let link = SimulatedLink(latency: drawLatency())
        links[pair] = link
        return link
    }

    private func drawLatency() -> TimeAmount {
        let low = latency.lowerBound.nanoseconds
        let span = UInt64(max(0, latency.upperBound.nanoseconds - low))
        guard span > 0 else { return latency.lowerBound }
        return .nanoseconds(low + Int64(random.next() % (span + 1)))
    }

    /// Sets the one-way latency between the hosts of `a` and `b`.
    public func setLatency(_ latency: TimeAmount, between a: SocketAddress, and b: SocketAddress) {
        link(between: a, and: b).latency = latency
    }

    /// The one-way latency between the hosts of `a` and `b`.
    public func latency(between a: SocketAddress, and b: SocketAddress) -> TimeAmount {
        link(between: a, and: b).latency
    }

    /// Fails the link between the hosts of `a` and `b`: what is on its way is lost, the
    /// connections over it are reset at both ends, and dials across it time out until it is
    /// restored.
    public func cut(between a: SocketAddress, and b: SocketAddress) {
        link(between: a, and: b).fail()
    }

    /// Restores the link between the hosts of `a` and `b`.
    public func restore(between a: SocketAddress, and b: SocketAddress) {
        link(between: a, and: b).restore()
    }

    /// Bytes carried between the hosts of `a` and `b`, both ways.
    public func bytesCarried(between a: SocketAddress, and b: SocketAddress) -> Int {
        links[HostPair(a, b)]?.bytesCarried ?? 0
    }

    // MARK: Hosts

    /// The network as seen from the host of `address`: what a node there listens and dials through.
    package func host(_ address: SocketAddress) -> SimulatedHost {
        SimulatedHost(network: self, address: address)
    }

    func listen(
        at address: SocketAddress, options: SocketOptions, childInitializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel> {
        guard listeners[address] == nil else {
            return loop.makeFailedFuture(SimulatedNetworkError.addressInUse(address))
        }
        let listener = SimulatedListener(network: self, address: address, options: options, childInitializer: childInitializer)
        listeners[address] = listener
        return loop.makeSucceededFuture(listener)
    }

    func stopListening(at address: SocketAddress, listener: SimulatedListener) {
        if listeners[address] === listener { listeners[address] = nil }
    }

    /// Dials `address` from `host`: the accepting end is set up one latency later (the SYN), the
    /// dialling end one more latency later (the SYN-ACK); a refused dial fails after the round
    /// trip, a dial across a failed link after `options.connectTimeout`.
    func connect(
        from host: SocketAddress, to address: SocketAddress, options: SocketOptions,
        initializer: @escaping @Sendable (any Channel) throws -> Void
    ) -> Future<any Channel> {
        let link = link(between: host, and: address)
        let promise = loop.makePromise(of: (any Channel).self)
        guard link.isUp else {
            loop.scheduleTask(in: options.connectTimeout) { promise.fail(ChannelError.connectTimeout(address, options.connectTimeout)) }
            return promise.futureResult
        }
        connectionCount += 1
        let connection = SimulatedConnection(link: link, order: connectionCount, loop: loop)
        let local = ephemeralAddress(on: host)
        let dialling = SimulatedChannel(loop: loop, connection: connection, side: 0, local: local, remote: address, options: options)
        do {
            try initializer(dialling)
        } catch {
            dialling.close()
            promise.fail(error)
            return promise.futureResult
        }
        connection.attach(dialling, side: 0)
        link.open(connection)
        let bound = LoopBound((self, connection, dialling), eventLoop: loop)
        loop.scheduleTask(in: link.latency) {
            let (network, connection, dialling) = bound.value
            network.synArrived(connection, from: local, to: address, dialling: dialling, promise: promise)
        }
        return promise.futureResult
    }

    private func synArrived(
        _ connection: SimulatedConnection, from local: SocketAddress, to address: SocketAddress, dialling: SimulatedChannel,
        promise: Promise<any Channel>
    ) {
        let link = connection.link
        let bound = LoopBound((connection, dialling), eventLoop: loop)
        guard link.isUp, let listener = listeners[address] else {
            let refused = !link.isUp ? ChannelError.connectTimeout(address, .zero) : ChannelError.connectionRefused(address)
            loop.scheduleTask(in: link.latency) {
                bound.value.1.close()
                promise.fail(refused)
            }
            return
        }
        let accepted = SimulatedChannel(
            loop: loop, connection: connection, side: 1, local: address, remote: local, options: listener.options)
        do {
            try listener.childInitializer(accepted)
        } catch {
            // Refused by the server: the dialler sees its connection open, then closed.
            accepted.close()
            loop.scheduleTask(in: link.latency) {
                let (connection, dialling) = bound.value
                dialling.becomeActive()
                promise.succeed(dialling)
                connection.link.isUp ? dialling.endOfStreamArrived() : dialling.reset()
            }
            return
        }
        connection.attach(accepted, side: 1)
        accepted.becomeActive()
        loop.scheduleTask(in: link.latency) {
            let (connection, dialling) = bound.value
            guard connection.link.isUp else {
                promise.fail(ChannelError.connectionReset)
                return
            }
            dialling.becomeActive()
            promise.succeed(dialling)
        }
    }

    private func ephemeralAddress(on host: SocketAddress) -> SocketAddress {
        let key = HostPair.hostKey(host)
        let port = nextEphemeralPort[key] ?? 32768
        nextEphemeralPort[key] = port == UInt16.max ? 32768 : port + 1
        return .v4(SocketAddress.IPv4(address: key, port: port))
    }
}

/// Two hosts, in either order (ports ignored).
struct HostPair: Hashable {
    let low: UInt32
    let high: UInt32

    init(_ a: SocketAddress, _ b: SocketAddress) {
        let x = Self.hostKey(a)
        let y = Self.hostKey(b)
        low = min(x, y)
        high = max(x, y)
    }

    /// The host part of an IPv4 address (a simulated network has IPv4 hosts only; any other
    /// address counts as host 0).
    static func hostKey(_ address: SocketAddress) -> UInt32 {
        guard case .v4(let v4) = address else { return 0 }
        return v4.address
    }
}
