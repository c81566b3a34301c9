import ArgumentParser
import Glibc
import PheromonesNoise

/// `pheromones id`: prints the peer id of the node whose identity key is in `--identity` (or the
/// default file), creating the key only when `--create` asks for it.
struct IdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "id",
        abstract: "Print this node's peer id, from its identity key file.",
        discussion: "The key file holds an Ed25519 private key (mode 0600; see Docs/Noise.md). A file others can read is refused.")

    @Option(help: "The identity key file (default: $HOME/.pheromones/identity).")
    var identity: String?

    @Flag(help: "Create the key file, with a new key, when it does not exist.")
    var create = false

    /// The key file to use.
    var identityPath: String {
        if let identity { return identity }
        let home = getenv("HOME").map { String(cString: $0) } ?? "."
        return home + "/.pheromones/identity"
    }

    func run() throws {
        let (identity, created) = try Self.identity(at: identityPath, create: create, defaultPath: self.identity == nil)
        if created { FileHandleOutput.standardError("created \(identityPath.escapedForTerminal)") }
        Console.printLine(identity.peerID.description)
    }

    /// The identity in `path`; with `create`, a new one saved there when there is none (its
    /// folder made, mode 0700, when it is the default one). Whether it was created.
    static func identity(at path: String, create: Bool, defaultPath: Bool) throws -> (NodeIdentity, created: Bool) {
        let exists = access(path, F_OK) == 0
        guard exists || create else {
            throw ValidationError("there is no identity file at \(path.escapedForTerminal); --create makes one.")
        }
        guard !exists else { return (try IdentityFile.load(from: path), false) }
        if defaultPath, let slash = path.lastIndex(of: "/") {
            // The default folder only: a folder the user named is theirs to make.
            let folder = String(path[..<slash])
            if mkdir(folder, 0o700) != 0, errno != EEXIST {
                throw IdentityError.systemError(path: folder, operation: "mkdir", errno: errno)
            }
        }
        let identity = NodeIdentity()
        try IdentityFile.save(identity, to: path)
        return (identity, true)
    }
}

/// A line on standard error (notes that are not the command's output).
enum FileHandleOutput {
    static func standardError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}
