import Glibc

/// A system call failed; `errnoCode` is the `errno` it left and `function` names the call.
///
/// `description` reads like `read(2) failed: Connection reset by peer (errno 104)`.
public struct IOError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The `errno` value the failing call left (for example `ECONNRESET`).
    public let errnoCode: CInt
    /// The failing call as named in its man page, for example `"read(2)"`.
    public let function: String

    /// Makes an error for `function` (say `"read(2)"`) failing with `errnoCode`.
    @inlinable
    public init(errnoCode: CInt, function: String) {
        self.errnoCode = errnoCode
        self.function = function
    }

    /// `"<function> failed: <strerror text> (errno <n>)"`.
    public var description: String {
        // glibc's strerror is thread-safe since 2.32 (unknown codes use a thread-local buffer).
        let message = strerror(errnoCode).map { String(cString: $0) } ?? "unknown error"
        return "\(function) failed: \(message) (errno \(errnoCode))"
    }
}
