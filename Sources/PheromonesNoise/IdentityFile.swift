#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc

/// Saves a ``NodeIdentity``'s private key to a file and loads it back.
///
/// The format is two lines of ASCII text:
/// ```
/// pheromones-identity-v1 ed25519
/// <the 32-byte Ed25519 seed in standard base64, with padding: 44 characters>
/// ```
/// each ending with a line feed (the last one may be missing). Nothing else is accepted.
///
/// The file is created with mode 0600 and never overwritten; loading refuses, as ssh does, a file
/// that its group or others may access (any of the bits 0077), a file that is not a regular file,
/// and one larger than ``maximumFileSize``.
public enum IdentityFile {
    /// The first line of an identity file.
    public static let header = "pheromones-identity-v1 ed25519"
    /// The largest file ``load(from:)`` reads (a valid file is 76 bytes).
    public static let maximumFileSize = 4096

    /// Writes `identity`'s private key to a new file at `path`: created with `O_EXCL` and mode
    /// 0600, written, and flushed to the disk (`fsync`) before this returns.
    ///
    /// - Throws: ``IdentityError/fileExists(path:)`` when something is at `path` already, and
    ///   ``IdentityError/systemError(path:operation:errno:)`` when the file cannot be written (a
    ///   partly written file is removed).
    public static func save(_ identity: NodeIdentity, to path: String) throws(IdentityError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let error = errno
            throw error == EEXIST ? .fileExists(path: path) : .systemError(path: path, operation: "open", errno: error)
        }
        do {
            // The umask may have removed bits, never added any; set 0600 exactly all the same.
            try check(fchmod(fd, 0o600), "fchmod", path)
            try writeAll(Array(contents(of: identity).utf8), to: fd, path: path)
            try check(fsync(fd), "fsync", path)
            try check(close(fd), "close", path)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
    }

    /// Reads the identity saved at `path`.
    ///
    /// - Throws: ``IdentityError/insecurePermissions(path:mode:)`` for a file its group or others
    ///   may access, ``IdentityError/fileTooLarge(path:size:)``,
    ///   ``IdentityError/malformedFile(path:reason:)`` for anything not in the format, and
    ///   ``IdentityError/systemError(path:operation:errno:)`` when it cannot be read.
    public static func load(from path: String) throws(IdentityError) -> NodeIdentity {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .systemError(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var status = stat()
        try check(fstat(fd, &status), "fstat", path)
        guard status.st_mode & S_IFMT == S_IFREG else { throw .malformedFile(path: path, reason: "it is not a regular file") }
        guard status.st_mode & 0o077 == 0 else { throw .insecurePermissions(path: path, mode: status.st_mode & 0o7777) }
        guard status.st_size <= maximumFileSize else { throw .fileTooLarge(path: path, size: Int(status.st_size)) }
        let bytes = try readAll(from: fd, path: path)
        return try parse(bytes, path: path)
    }

    /// The text of `identity`'s file.
    static func contents(of identity: NodeIdentity) -> String {
        header + "\n" + Data(identity.seed).base64EncodedString() + "\n"
    }

    /// The identity in `bytes`, checked strictly against the format.
    static func parse(_ bytes: [UInt8], path: String) throws(IdentityError) -> NodeIdentity {
        guard bytes.allSatisfy({ $0 == 0x0A || (0x20..<0x7F).contains($0) }) else {
            throw .malformedFile(path: path, reason: "it is not printable ASCII text")
        }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if lines.last == "" { lines.removeLast() }
        guard lines.count == 2 else { throw .malformedFile(path: path, reason: "it has \(lines.count) lines, not 2") }
        guard lines[0] == header else { throw .malformedFile(path: path, reason: "its first line is not '\(header)'") }
        guard lines[1].utf8.count == 44, let seed = Data(base64Encoded: lines[1]), seed.count == NodeIdentity.seedLength else {
            throw .malformedFile(path: path, reason: "its second line is not the base64 of a \(NodeIdentity.seedLength)-byte key")
        }
        do {
            return try NodeIdentity(seed: Array(seed))
        } catch {
            throw .malformedFile(path: path, reason: error.description)
        }
    }

    private static func writeAll(_ bytes: [UInt8], to fd: Int32, path: String) throws(IdentityError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { region in
                write(fd, region.baseAddress.map { $0 + offset }, region.count - offset)
            }
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { throw .systemError(path: path, operation: "write", errno: written < 0 ? errno : EIO) }
            offset += written
        }
    }

    /// Everything in the file, at most ``maximumFileSize`` bytes (a file that grew since `fstat`
    /// past that is refused).
    private static func readAll(from fd: Int32, path: String) throws(IdentityError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: maximumFileSize + 1)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw .systemError(path: path, operation: "read", errno: errno) }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk.prefix(count))
            guard bytes.count <= maximumFileSize else { throw .fileTooLarge(path: path, size: bytes.count) }
        }
    }

    private static func check(_ result: Int32, _ operation: String, _ path: String) throws(IdentityError) {
        guard result == 0 else { throw .systemError(path: path, operation: operation, errno: errno) }
    }
}
