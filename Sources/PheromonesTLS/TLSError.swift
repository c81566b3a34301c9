import COpenSSL

/// Why a TLS connection failed. Each closes only its own connection.
public enum TLSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The handshake failed; the text is OpenSSL's reason (a protocol version or cipher mismatch,
    /// a peer certificate required and missing, a bad message, an alert from the peer...).
    case handshakeFailed(String)
    /// The peer's certificate did not verify.
    case certificateVerificationFailed(CertificateVerificationFailure)
    /// The handshake did not complete within the configured timeout
    /// (``TLSConfiguration/handshakeTimeout``).
    case handshakeTimedOut
    /// The peer ended the connection without a `close_notify`: what was received may be
    /// truncated.
    case uncleanShutdown
    /// The peer sent something that is not TLS, or a record that does not decrypt, after the
    /// handshake; the text is OpenSSL's reason.
    case protocolError(String)
    /// A certificate, key or setting could not be used; the text says which and why.
    case invalidConfiguration(String)

    /// One line, for logs.
    public var description: String {
        switch self {
        case .handshakeFailed(let reason): return "TLS handshake failed: \(reason)"
        case .certificateVerificationFailed(let failure): return "TLS certificate verification failed: \(failure)"
        case .handshakeTimedOut: return "TLS handshake timed out"
        case .uncleanShutdown: return "the TLS peer closed the connection without close_notify"
        case .protocolError(let reason): return "TLS protocol error: \(reason)"
        case .invalidConfiguration(let reason): return "invalid TLS configuration: \(reason)"
        }
    }
}

/// Why a peer's certificate did not verify.
public enum CertificateVerificationFailure: Sendable, Hashable, CustomStringConvertible {
    /// The certificate (or one in its chain) has expired.
    case expired
    /// The certificate (or one in its chain) is not valid yet.
    case notYetValid
    /// The chain does not lead to a trusted root (self-signed, or signed by an unknown CA).
    case unknownAuthority
    /// The certificate is not for the host name (or IP address) that was dialed.
    case hostnameMismatch
    /// The peer sent no certificate where one is required.
    case noCertificate
    /// Another reason: OpenSSL's verification code and text.
    case other(code: Int, reason: String)

    /// What went wrong, in a few words.
    public var description: String {
        switch self {
        case .expired: return "the certificate has expired"
        case .notYetValid: return "the certificate is not valid yet"
        case .unknownAuthority: return "the certificate is not signed by a trusted authority"
        case .hostnameMismatch: return "the certificate does not match the host name"
        case .noCertificate: return "the peer sent no certificate"
        case .other(let code, let reason): return "\(reason) (\(code))"
        }
    }

    /// The failure an OpenSSL verification result stands for.
    init(verifyResult code: Int) {
        switch Int32(truncatingIfNeeded: code) {
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CRL_HAS_EXPIRED: self = .expired
        case X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CRL_NOT_YET_VALID: self = .notYetValid
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
             X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED:
            self = .unknownAuthority
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH: self = .hostnameMismatch
        default:
            let text = X509_verify_cert_error_string(code).map { String(cString: $0) } ?? "unknown"
            self = .other(code: code, reason: text)
        }
    }
}

/// OpenSSL's error queue (per thread): read and cleared around every call that can fail.
enum OpenSSLErrors {
    /// Empties the queue, so that a failure's reasons are its own.
    static func clear() { ERR_clear_error() }

    /// The queued reasons, oldest first, joined with "; ", and the queue emptied; `fallback` when
    /// nothing is queued.
    static func drain(fallback: String) -> String {
        var reasons: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while case let code = ERR_get_error(), code != 0 {
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return reasons.isEmpty ? fallback : reasons.joined(separator: "; ")
    }
}
