import ArgumentParser
import PheromonesP2P

/// The `pheromones` command: try a peer-to-peer network from the terminal.
@main
struct PheromonesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pheromones",
        abstract: "Peer-to-peer nodes on the Pheromones reactor (the Go library pheromones, re-created).",
        subcommands: [DemoCommand.self, NodeCommand.self, FetchCommand.self, IdCommand.self, SimulateCommand.self])
}

extension ConnectionType: ExpressibleByArgument {}
extension WireFormat: ExpressibleByArgument {}
