import COpenSSL

/// OpenSSL's ChaCha20-Poly1305 implementation, fetched once per process.
///
/// Fetching looks the algorithm up in OpenSSL's provider tables (locks, string compares); an
/// `EVP_CIPHER` passed to `EVP_CipherInit_ex2` without having been fetched would be looked up
/// again on every call. So the first ``ChaChaPolyContext`` fetches it and every later one reuses it.
enum ChaChaPolyAlgorithm {
    /// The fetched cipher, or nil if this OpenSSL has none (then no Noise cipher can be made).
    private static let fetched = FetchedCipher(pointer: EVP_CIPHER_fetch(nil, "ChaCha20-Poly1305", nil))

    /// The cipher for `EVP_CipherInit_ex2`.
    ///
    /// - Throws: ``NoiseError/cryptographicFailure(_:)`` when OpenSSL offers no ChaCha20-Poly1305.
    static func cipher() throws(NoiseError) -> OpaquePointer {
        guard let pointer = fetched.pointer else {
            throw OpenSSLFailure.error("EVP_CIPHER_fetch(ChaCha20-Poly1305)")
        }
        return pointer
    }
}

/// A fetched `EVP_CIPHER`, kept for the life of the process (never freed).
// `@unchecked Sendable` is safe: a fetched `EVP_CIPHER` is immutable once fetched, and OpenSSL
// documents such algorithm objects as shareable between threads (each use takes its own
// `EVP_CIPHER_CTX`); the pointer itself is a `let`.
private struct FetchedCipher: @unchecked Sendable {
    let pointer: OpaquePointer?
}
