import Glibc

/// Why an identity, a peer id or an identity file could not be used.
public enum IdentityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text is not a peer id in its printable form (``PeerID/description``); the text says why.
    case invalidPeerID(String)
    /// Key bytes of the wrong length or form.
    case invalidKey(String)
    /// The identity file is readable, writable or executable by its group or by others: the
    /// private key may have leaked. `mode` is the file's permission bits.
    case insecurePermissions(path: String, mode: UInt32)
    /// The identity file is not in the format ``IdentityFile`` writes; the text says how.
    case malformedFile(path: String, reason: String)
    /// The identity file is larger than any identity file (``IdentityFile/maximumFileSize``).
    case fileTooLarge(path: String, size: Int)
    /// The file to create already exists (it is never overwritten).
    case fileExists(path: String)
    /// A system call failed; `operation` names it and `errno` is its error number.
    case systemError(path: String, operation: String, errno: Int32)

    /// One line, for logs and the command line.
    public var description: String {
        switch self {
        case .invalidPeerID(let reason): return "invalid peer id: \(reason)"
        case .invalidKey(let reason): return "invalid identity key: \(reason)"
        case .insecurePermissions(let path, let mode):
            let octal = "0" + String(mode & 0o7777, radix: 8)
            return "identity file \(path) has mode \(octal): it must not be accessible by group or others (chmod 600 \(path))"
        case .malformedFile(let path, let reason): return "identity file \(path) is malformed: \(reason)"
        case .fileTooLarge(let path, let size): return "identity file \(path) is too large (\(size) bytes) to be an identity file"
        case .fileExists(let path): return "identity file \(path) already exists; it is never overwritten"
        case .systemError(let path, let operation, let errno):
            return "\(operation) failed on \(path): \(String(cString: strerror(errno)))"
        }
    }
}
