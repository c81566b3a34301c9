/// Why a socket address could not be parsed or resolved.
///
/// The associated text is the offending input exactly as it was given (nothing is trimmed), so
/// `description` can quote it back: `'localhost:99999': port 99999 is out of range 0...65535`.
public enum AddressError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The text was empty.
    case empty
    /// The text (`"host"`, `"host:"`, `"[::1]"`) names no port.
    case missingPort(String)
    /// The port part of the text (`"host:abc"`) is not a decimal number.
    case invalidPort(String)
    /// The port part of the text (`"host:70000"`, `"host:-1"`) lies outside 0...65535.
    case portOutOfRange(String)
    /// The text (`":80"`, `"[]:80"`) names no host.
    case missingHost(String)
    /// The text is not a numeric IPv4 or IPv6 address (or its `%zone` is unknown).
    case invalidIPAddress(String)
    /// An IPv6 address with a port was written without brackets (`"::1:80"`), which is ambiguous.
    case ambiguousIPv6(String)
    /// The host could not be resolved; `reason` is the resolver's message (`gai_strerror`).
    case unresolvable(host: String, reason: String)
    /// The address belongs to a family other than IPv4 and IPv6.
    case unsupportedFamily
    /// A Unix domain socket path (`path`) that is empty, longer than `maximum` bytes, or holds a
    /// NUL byte.
    case invalidUnixPath(String, maximum: Int)

    /// A readable sentence that quotes the offending text.
    public var description: String {
        switch self {
        case .empty:
            return "the address is empty; expected 'host:port' or '[ipv6-address]:port'"
        case .missingPort(let text):
            return "'\(text)': missing port; expected 'host:port' or '[ipv6-address]:port'"
        case .invalidPort(let text):
            return "'\(text)': port '\(Self.portPart(of: text))' is not a decimal number"
        case .portOutOfRange(let text):
            return "'\(text)': port \(Self.portPart(of: text)) is out of range 0...65535"
        case .missingHost(let text):
            return "'\(text)': missing host before the port"
        case .invalidIPAddress(let text):
            return "'\(text)': not a numeric IPv4 or IPv6 address"
        case .ambiguousIPv6(let text):
            return "'\(text)': an IPv6 address with a port must be written in brackets, as in '\(Self.bracketed(text))'"
        case .unresolvable(let host, let reason):
            return "'\(host)': cannot resolve host: \(reason)"
        case .unsupportedFamily:
            return "unsupported address family: only IPv4, IPv6 and Unix domain sockets are supported"
        case .invalidUnixPath(let path, let maximum):
            return "'\(path)': a Unix domain socket path must be 1 to \(maximum) bytes, without NUL"
        }
    }

    /// The port part of `text`: after `]:` for a bracketed host, else after the last `:`, else all of it.
    private static func portPart(of text: String) -> Substring {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let rest = text[text.index(after: close)...]
            return rest.first == ":" ? rest.dropFirst() : rest
        }
        if let colon = text.lastIndex(of: ":") {
            return text[text.index(after: colon)...]
        }
        return text[...]
    }

    /// `"::1:80"` rewritten as `"[::1]:80"` (splitting at the last colon), for the hint in `description`.
    private static func bracketed(_ text: String) -> String {
        guard let colon = text.lastIndex(of: ":") else { return "[\(text)]:port" }
        return "[\(text[..<colon])]:\(text[text.index(after: colon)...])"
    }
}
