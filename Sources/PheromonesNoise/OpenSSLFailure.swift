import COpenSSL

/// Turns an OpenSSL failure into a ``NoiseError`` and empties this thread's OpenSSL error queue,
/// so that no stale error is left for the next OpenSSL user on the thread (a TLS stage on the same
/// event loop reads that queue after each of its calls).
enum OpenSSLFailure {
    /// ``NoiseError/cryptographicFailure(_:)`` naming `function` and OpenSSL's first reason.
    static func error(_ function: String) -> NoiseError {
        let code = ERR_get_error()
        var reason = ""
        if code != 0 {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reason = ": " + String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        ERR_clear_error()
        return .cryptographicFailure("OpenSSL \(function) failed\(reason)")
    }

    /// Empties this thread's OpenSSL error queue (after a failure that has its own ``NoiseError``).
    static func clear() { ERR_clear_error() }
}
