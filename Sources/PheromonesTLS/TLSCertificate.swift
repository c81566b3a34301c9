import COpenSSL
import Glibc
import Pheromones

/// An X.509 certificate, parsed once.
///
/// Loaded from PEM text or a PEM file (``init(pem:)``, ``chain(pem:)``, ``chain(fromPEMFile:)``);
/// a chain is the leaf first, then the intermediates.
// Unchecked: the wrapped `X509` is never modified after parsing, and OpenSSL's reference counting
// of it (taken when a context uses it) is thread-safe.
public final class TLSCertificate: @unchecked Sendable, CustomStringConvertible {
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit {
        X509_free(pointer)
    }

    /// Parses the first certificate of `pem`.
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when `pem` holds no certificate.
    public convenience init(pem: String) throws(TLSError) {
        guard let first = try Self.chain(pem: pem).first else {
            throw .invalidConfiguration("no certificate in the PEM text")
        }
        self.init(taking: X509_dup(first.pointer))
    }

    /// Every certificate of `pem`, in order.
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when `pem` holds none, or one that does not parse.
    public static func chain(pem: String) throws(TLSError) -> [TLSCertificate] {
        let bio = try MemoryBIO(contents: Array(pem.utf8))
        var chain: [TLSCertificate] = []
        OpenSSLErrors.clear()
        while let certificate = PEM_read_bio_X509(bio.pointer, nil, nil, nil) {
            chain.append(TLSCertificate(taking: certificate))
        }
        // The loop ends on the end of the text (a "no start line" error) or on a broken certificate.
        let error = ERR_peek_last_error()
        OpenSSLErrors.clear()
        if chain.isEmpty || (error != 0 && ERR_GET_REASON(error) != PEM_R_NO_START_LINE) {
            throw .invalidConfiguration(chain.isEmpty ? "no certificate in the PEM text" : "a certificate in the PEM text does not parse")
        }
        return chain
    }

    /// Every certificate of the PEM file at `path`, in order.
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when the file cannot be read or holds no certificate.
    public static func chain(fromPEMFile path: String) throws(TLSError) -> [TLSCertificate] {
        try chain(pem: PEMFile.read(path))
    }

    /// The subject's common name, if it has one.
    public var commonName: String? {
        guard let name = X509_get_subject_name(pointer) else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        let length = X509_NAME_get_text_by_NID(name, NID_commonName, &buffer, Int32(buffer.count))
        guard length >= 0 else { return nil }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The certificate in DER form.
    public var derBytes: [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        let length = i2d_X509(pointer, &output)
        guard length > 0, let output else { return [] }
        defer { CRYPTO_free(output, #file, #line) }
        return Array(UnsafeBufferPointer(start: output, count: Int(length)))
    }

    /// `TLSCertificate(CN=...)`, the name escaped for the terminal (a peer chooses it).
    public var description: String {
        "TLSCertificate(CN=\((commonName ?? "?").escapedForTerminal))"
    }
}

/// A private key, parsed once (RSA, EC or Ed25519; PEM, unencrypted).
// Unchecked: the wrapped `EVP_PKEY` is never modified after parsing, and OpenSSL's reference
// counting of it is thread-safe.
public final class TLSPrivateKey: @unchecked Sendable {
    let pointer: OpaquePointer

    deinit {
        EVP_PKEY_free(pointer)
    }

    /// Parses the private key in `pem`.
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when `pem` holds no usable key.
    public init(pem: String) throws(TLSError) {
        let bio = try MemoryBIO(contents: Array(pem.utf8))
        OpenSSLErrors.clear()
        guard let key = PEM_read_bio_PrivateKey(bio.pointer, nil, nil, nil) else {
            throw .invalidConfiguration("no private key in the PEM text: \(OpenSSLErrors.drain(fallback: "unreadable"))")
        }
        pointer = key
    }

    /// Parses the private key in the PEM file at `path`.
    public convenience init(pemFile path: String) throws(TLSError) {
        try self.init(pem: PEMFile.read(path))
    }
}

/// A certificate chain and its private key: what a server (or a client, for mutual TLS) proves
/// itself with.
public struct TLSIdentity: Sendable {
    /// The leaf certificate first, then the intermediates.
    public var certificateChain: [TLSCertificate]
    /// The leaf certificate's key.
    public var privateKey: TLSPrivateKey

    /// Pairs a chain with its key.
    public init(certificateChain: [TLSCertificate], privateKey: TLSPrivateKey) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
    }

    /// Loads both from PEM files.
    public init(certificateChainFile: String, privateKeyFile: String) throws(TLSError) {
        self.init(certificateChain: try TLSCertificate.chain(fromPEMFile: certificateChainFile),
                  privateKey: try TLSPrivateKey(pemFile: privateKeyFile))
    }
}

/// A read-only memory BIO over a copy of some bytes.
final class MemoryBIO {
    let pointer: OpaquePointer

    init(contents: [UInt8]) throws(TLSError) {
        guard contents.count < Int32.max, let bio = BIO_new(BIO_s_mem()) else {
            throw .invalidConfiguration("cannot hold the PEM text")
        }
        pointer = bio
        let written = contents.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
        guard written == contents.count || contents.isEmpty else {
            throw .invalidConfiguration("cannot hold the PEM text")
        }
    }

    deinit {
        BIO_free(pointer)
    }
}

/// Reads PEM files, with a size limit (a PEM file is small; a huge one is a mistake).
enum PEMFile {
    static let maximumSize = 1 << 20

    static func read(_ path: String) throws(TLSError) -> String {
        guard let file = fopen(path, "rb") else {
            throw .invalidConfiguration("cannot open \(path.escapedForTerminal)")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk.prefix(count)
            guard bytes.count <= maximumSize else {
                throw .invalidConfiguration("\(path.escapedForTerminal) is larger than \(maximumSize) bytes")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
