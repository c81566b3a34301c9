import ArgumentParser

@main
struct PheromonesBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pheromones-bench",
        abstract: "Load benchmarks of Pheromones against SwiftNIO, and their servers.",
        discussion: """
            Each load scenario runs against our server and SwiftNIO's in the same invocation, in \
            alternating rounds, each round with a fresh server process and a fresh load-generator \
            process (this executable, `load`), and reports median, min and max per server and the \
            ratio ours/NIO.
            """,
        subcommands: [
            Serve.self, PingPongCommand.self, FramedCommand.self, StreamCommand.self, ConnsCommand.self,
            TLSCommand.self, NoiseCommand.self, P2PCommand.self, AllCommand.self, ChaosCommand.self, SlowReaderCommand.self, P2PSlowPeerCommand.self,
            LoadCommand.self, NoiseLoadCommand.self, UDPCommand.self, ServeUDP.self, UDPLoadCommand.self,
        ])
}

extension Implementation: ExpressibleByArgument {}
extension WireProtocol: ExpressibleByArgument {}
extension LoadPlan.Mode: ExpressibleByArgument {}
extension LoadPlan.TLSMode: ExpressibleByArgument {}
extension PeerWire: ExpressibleByArgument {}
extension PeerRouter: ExpressibleByArgument {}
