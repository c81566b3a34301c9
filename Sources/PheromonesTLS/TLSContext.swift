import COpenSSL
import Pheromones

/// A configured TLS context, shared by every connection that uses the same
/// ``TLSConfiguration``: made once (parsing certificates and keys, loading the trust store), then
/// used by any number of ``TLSHandler``s on any loop.
///
/// It wraps one OpenSSL `SSL_CTX` (one more per server name in
/// ``TLSConfiguration/identitiesByServerName``), and keeps the sessions a client can resume, at most
/// ``maximumCachedSessions`` of them.
// Unchecked: the `SSL_CTX`s are configured in `init` and only read afterwards (OpenSSL makes
// creating connections from a configured context thread-safe); the session cache is behind a lock.
public final class TLSContext: @unchecked Sendable {
    /// The most sessions kept for resumption (one per server name and port a client dialed).
    public static let maximumCachedSessions = 1024

    let configuration: TLSConfiguration
    /// The context connections start with.
    let context: OpaquePointer
    /// Server side: a context per server name (lowercased), with that name's identity.
    private var contextsByServerName: [String: OpaquePointer] = [:]
    /// ALPN's list in wire form (length-prefixed names), kept for the selection callback; its
    /// first `alpnWireLength` bytes (the allocation is never empty).
    private let alpnWireList: UnsafeMutableBufferPointer<UInt8>
    private let alpnWireLength: Int
    /// Sessions a client may resume, by the key its handler names.
    private let sessions = LockedValue<[String: ResumableSession]>([:])

    /// Makes the context.
    ///
    /// - Throws: ``TLSError/invalidConfiguration(_:)`` when a certificate, key, trust store,
    ///   cipher list or version range cannot be used.
    public init(configuration: TLSConfiguration) throws(TLSError) {
        self.configuration = configuration
        let wire = Self.alpnWire(configuration.applicationProtocols)
        alpnWireList = .allocate(capacity: max(1, wire.count))
        alpnWireList.initialize(repeating: 0)
        _ = alpnWireList.initialize(from: wire)
        alpnWireLength = wire.count
        guard let context = SSL_CTX_new(TLS_method()) else {
            alpnWireList.deallocate()
            throw .invalidConfiguration("cannot create an OpenSSL context: \(OpenSSLErrors.drain(fallback: "out of memory"))")
        }
        self.context = context
        try configure(context, identity: configuration.identity)
        for (name, identity) in configuration.identitiesByServerName {
            guard let named = SSL_CTX_new(TLS_method()) else {
                throw .invalidConfiguration("cannot create an OpenSSL context: \(OpenSSLErrors.drain(fallback: "out of memory"))")
            }
            contextsByServerName[name.lowercased()] = named
            try configure(named, identity: identity)
        }
        if !contextsByServerName.isEmpty {
            pheromones_SSL_CTX_set_tlsext_servername_callback(context, serverNameCallback)
            pheromones_SSL_CTX_set_tlsext_servername_arg(context, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    deinit {
        SSL_CTX_free(context)
        for named in contextsByServerName.values { SSL_CTX_free(named) }
        alpnWireList.deallocate()
    }

    /// ALPN's wire form of `protocols`: each name preceded by its length (names of 1 to 255
    /// bytes; others are left out).
    private static func alpnWire(_ protocols: [String]) -> [UInt8] {
        protocols.reduce(into: []) { wire, name in
            let bytes = Array(name.utf8)
            guard (1...255).contains(bytes.count) else { return }
            wire.append(UInt8(bytes.count))
            wire += bytes
        }
    }

    /// The context of the server name `name`, if one was configured for it.
    fileprivate func context(forServerName name: String) -> OpaquePointer? {
        contextsByServerName[name.lowercased()]
    }

    // MARK: Configuring an SSL_CTX

    private func configure(_ context: OpaquePointer, identity: TLSIdentity?) throws(TLSError) {
        OpenSSLErrors.clear()
        try configureVersions(context)
        try configureCiphers(context)
        if let identity { try use(identity, in: context) }
        try configureTrust(context)
        configureVerification(context)
        configureALPN(context)
        configureResumption(context)
        // Renegotiation is off; buffers are released while a connection is idle (the memory goal),
        // and a write that OpenSSL could not finish may be retried from another address. The
        // identity's chain is sent as given: without NO_AUTO_CHAIN, OpenSSL would build it anew on
        // every full handshake from the trust store (with the system's, a scan of /etc/ssl/certs).
        SSL_CTX_set_options(context, pheromones_SSL_OP_NO_RENEGOTIATION | pheromones_SSL_OP_NO_COMPRESSION)
        _ = pheromones_SSL_CTX_set_mode(
            context, pheromones_SSL_MODE_RELEASE_BUFFERS | pheromones_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | pheromones_SSL_MODE_NO_AUTO_CHAIN)
    }

    private func configureVersions(_ context: OpaquePointer) throws(TLSError) {
        guard configuration.minimumVersion <= configuration.maximumVersion else {
            throw .invalidConfiguration("the minimum TLS version is above the maximum")
        }
        func code(_ version: TLSConfiguration.Version) -> Int32 {
            version == .tlsv12 ? pheromones_TLS1_2_VERSION : pheromones_TLS1_3_VERSION
        }
        guard pheromones_SSL_CTX_set_min_proto_version(context, code(configuration.minimumVersion)) == 1,
              pheromones_SSL_CTX_set_max_proto_version(context, code(configuration.maximumVersion)) == 1
        else { throw .invalidConfiguration("the TLS version range: \(OpenSSLErrors.drain(fallback: "refused"))") }
    }

    private func configureCiphers(_ context: OpaquePointer) throws(TLSError) {
        if let list = configuration.cipherList, SSL_CTX_set_cipher_list(context, list) != 1 {
            throw .invalidConfiguration("the cipher list \(list.escapedForTerminal): \(OpenSSLErrors.drain(fallback: "no usable cipher"))")
        }
        if let suites = configuration.cipherSuites, SSL_CTX_set_ciphersuites(context, suites) != 1 {
            throw .invalidConfiguration("the cipher suites \(suites.escapedForTerminal): \(OpenSSLErrors.drain(fallback: "no usable suite"))")
        }
    }

    private func use(_ identity: TLSIdentity, in context: OpaquePointer) throws(TLSError) {
        guard let leaf = identity.certificateChain.first else {
            throw .invalidConfiguration("the identity has no certificate")
        }
        guard SSL_CTX_use_certificate(context, leaf.pointer) == 1 else {
            throw .invalidConfiguration("the certificate: \(OpenSSLErrors.drain(fallback: "refused"))")
        }
        for intermediate in identity.certificateChain.dropFirst() {
            // The context takes the reference it is given: hand it one of its own.
            X509_up_ref(intermediate.pointer)
            guard pheromones_SSL_CTX_add_extra_chain_cert(context, intermediate.pointer) == 1 else {
                X509_free(intermediate.pointer)
                throw .invalidConfiguration("an intermediate certificate: \(OpenSSLErrors.drain(fallback: "refused"))")
            }
        }
        guard X509_check_private_key(leaf.pointer, identity.privateKey.pointer) == 1 else {
            OpenSSLErrors.clear()
            throw .invalidConfiguration("the private key does not match the certificate")
        }
        guard SSL_CTX_use_PrivateKey(context, identity.privateKey.pointer) == 1 else {
            throw .invalidConfiguration("the private key: \(OpenSSLErrors.drain(fallback: "refused"))")
        }
    }

    private func configureTrust(_ context: OpaquePointer) throws(TLSError) {
        switch configuration.trustRoots {
        case .system:
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw .invalidConfiguration("the system trust store: \(OpenSSLErrors.drain(fallback: "unreadable"))")
            }
        case .certificates(let roots):
            guard let store = SSL_CTX_get_cert_store(context) else { throw .invalidConfiguration("no certificate store") }
            for root in roots where X509_STORE_add_cert(store, root.pointer) != 1 {
                throw .invalidConfiguration("a trusted certificate: \(OpenSSLErrors.drain(fallback: "refused"))")
            }
        case .file(let path):
            guard SSL_CTX_load_verify_locations(context, path, nil) == 1 else {
                throw .invalidConfiguration("the trust file \(path.escapedForTerminal): \(OpenSSLErrors.drain(fallback: "unreadable"))")
            }
        }
        // A server that asks for client certificates names the authorities it trusts.
        if configuration.clientAuthentication != .none, case .certificates(let roots) = configuration.trustRoots {
            for root in roots { SSL_CTX_add_client_CA(context, root.pointer) }
        }
    }

    private func configureVerification(_ context: OpaquePointer) {
        // The mode a client uses; a server's is set per connection (``makeConnection(role:)``).
        let mode = configuration.certificateVerification == .none ? SSL_VERIFY_NONE : SSL_VERIFY_PEER
        SSL_CTX_set_verify(context, mode, nil)
    }

    private func configureALPN(_ context: OpaquePointer) {
        guard alpnWireLength > 0 else { return }
        // Client: what it offers (0 is success here). Server: the callback picks.
        _ = SSL_CTX_set_alpn_protos(context, alpnWireList.baseAddress, UInt32(alpnWireLength))
        SSL_CTX_set_alpn_select_cb(context, alpnSelectCallback, Unmanaged.passUnretained(self).toOpaque())
    }

    private func configureResumption(_ context: OpaquePointer) {
        guard configuration.sessionResumption else {
            SSL_CTX_set_options(context, pheromones_SSL_OP_NO_TICKET)
            _ = pheromones_SSL_CTX_set_num_tickets(context, 0)
            _ = pheromones_SSL_CTX_set_session_cache_mode(context, pheromones_SSL_SESS_CACHE_OFF)
            return
        }
        // Tickets carry the state, so the server keeps none; the client keeps the sessions in
        // `sessions` (through the callback), not in OpenSSL's internal cache.
        _ = pheromones_SSL_CTX_set_session_cache_mode(context, pheromones_SSL_SESS_CACHE_CLIENT)
        _ = pheromones_SSL_CTX_set_num_tickets(context, 1)
        SSL_CTX_sess_set_new_cb(context, newSessionCallback)
    }

    // MARK: Connections

    /// Which end of the handshake a connection is.
    enum Role {
        case client(serverName: String?, sessionKey: String?)
        case server
    }

    /// A new connection's `SSL`, with its memory BIOs (read: bytes from the network; write: bytes
    /// for the network), in `role`.
    func makeConnection(role: Role) throws(TLSError) -> (ssl: OpaquePointer, read: OpaquePointer, write: OpaquePointer) {
        OpenSSLErrors.clear()
        guard let ssl = SSL_new(context), let readBIO = BIO_new(BIO_s_mem()), let writeBIO = BIO_new(BIO_s_mem()) else {
            throw .invalidConfiguration("cannot create a connection: \(OpenSSLErrors.drain(fallback: "out of memory"))")
        }
        SSL_set_bio(ssl, readBIO, writeBIO)
        switch role {
        case .server:
            SSL_set_accept_state(ssl)
            SSL_set_verify(ssl, serverVerifyMode, nil)
        case .client(let serverName, let sessionKey):
            SSL_set_connect_state(ssl)
            try configureClient(ssl, serverName: serverName)
            if let sessionKey { resume(ssl, key: sessionKey) }
        }
        return (ssl, readBIO, writeBIO)
    }

    private var serverVerifyMode: Int32 {
        guard configuration.certificateVerification != .none else { return SSL_VERIFY_NONE }
        switch configuration.clientAuthentication {
        case .none: return SSL_VERIFY_NONE
        case .optional: return SSL_VERIFY_PEER
        case .required: return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
        }
    }

    /// SNI (not for an IP address, which RFC 6066 forbids there) and the name or address the
    /// certificate must carry.
    private func configureClient(_ ssl: OpaquePointer, serverName: String?) throws(TLSError) {
        guard let serverName, !serverName.isEmpty else { return }
        let isAddress = (try? SocketAddress(ipAddress: serverName, port: 0)) != nil
        if !isAddress, pheromones_SSL_set_tlsext_host_name(ssl, serverName) != 1 {
            throw .invalidConfiguration("the server name \(serverName.escapedForTerminal): \(OpenSSLErrors.drain(fallback: "refused"))")
        }
        guard configuration.certificateVerification == .fullVerification else { return }
        let parameters = SSL_get0_param(ssl)
        let accepted = isAddress
            ? X509_VERIFY_PARAM_set1_ip_asc(parameters, serverName)
            : X509_VERIFY_PARAM_set1_host(parameters, serverName, 0)
        guard accepted == 1 else {
            throw .invalidConfiguration("the server name \(serverName.escapedForTerminal) cannot be verified against")
        }
        X509_VERIFY_PARAM_set_hostflags(parameters, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
    }

    // MARK: Sessions

    /// Offers the session last stored under `key`, and marks the connection so that the session
    /// it is given is stored under `key`.
    private func resume(_ ssl: OpaquePointer, key: String) {
        let box = SessionKeyBox(key: key, context: self)
        SSL_set_ex_data(ssl, SessionKeyBox.exDataIndex, Unmanaged.passRetained(box).toOpaque())
        if let session = sessions.withLock({ $0[key] }) { SSL_set_session(ssl, session.pointer) }
    }

    /// Stores `session` (a reference the callee owns) under `key`.
    fileprivate func store(_ session: OpaquePointer, key: String) {
        let resumable = ResumableSession(pointer: session)
        sessions.withLock { sessions in
            if sessions[key] == nil, sessions.count >= Self.maximumCachedSessions, let evicted = sessions.keys.first {
                sessions[evicted] = nil
            }
            sessions[key] = resumable
        }
    }

    /// Releases what ``resume(_:key:)`` attached to a connection (its handler calls this before
    /// freeing the `SSL`).
    static func releaseSessionKey(of ssl: OpaquePointer) {
        guard let raw = SSL_get_ex_data(ssl, SessionKeyBox.exDataIndex) else { return }
        SSL_set_ex_data(ssl, SessionKeyBox.exDataIndex, nil)
        Unmanaged<SessionKeyBox>.fromOpaque(raw).release()
    }
}

/// A session a client can resume.
// Unchecked: an `SSL_SESSION` is immutable once issued, and OpenSSL counts its references
// atomically; the cache that holds these is behind a lock.
final class ResumableSession: @unchecked Sendable {
    let pointer: OpaquePointer
    init(pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_SESSION_free(pointer) }
}

/// What a client connection's new-session callback needs: where to store the session, under what key.
final class SessionKeyBox {
    /// The `SSL` ex-data slot that holds the box.
    static let exDataIndex: Int32 = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, nil, nil, nil, nil)
    let key: String
    /// Where to store the session (weak: a connection's box must not keep its context alive).
    weak var context: TLSContext?
    init(key: String, context: TLSContext) {
        self.key = key
        self.context = context
    }
}

// MARK: OpenSSL callbacks (C functions: they reach Swift objects through the pointers they are given)

/// A client got a session it can resume: stores it (returning 1 keeps OpenSSL's reference for us).
private func newSessionCallback(_ ssl: OpaquePointer?, _ session: OpaquePointer?) -> Int32 {
    guard let ssl, let session, let raw = SSL_get_ex_data(ssl, SessionKeyBox.exDataIndex) else { return 0 }
    let box = Unmanaged<SessionKeyBox>.fromOpaque(raw).takeUnretainedValue()
    guard let context = box.context else { return 0 }
    context.store(session, key: box.key)
    return 1
}

/// Server: picks the server name's context, if one was configured for it.
private func serverNameCallback(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let argument, let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) else {
        return pheromones_SSL_TLSEXT_ERR_OK
    }
    let context = Unmanaged<TLSContext>.fromOpaque(argument).takeUnretainedValue()
    if let named = context.context(forServerName: String(cString: name)) { SSL_set_SSL_CTX(ssl, named) }
    return pheromones_SSL_TLSEXT_ERR_OK
}

/// Server: picks the first of its protocols the client offers (no overlap: no ALPN, not a failure).
private func alpnSelectCallback(
    _ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, _ outLength: UnsafeMutablePointer<UInt8>?,
    _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32, _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let out, let outLength, let offered, let argument else { return pheromones_SSL_TLSEXT_ERR_NOACK }
    let context = Unmanaged<TLSContext>.fromOpaque(argument).takeUnretainedValue()
    let (ours, length) = context.alpnWireListForSelection
    var selected: UnsafeMutablePointer<UInt8>?
    let result = SSL_select_next_proto(&selected, outLength, ours, UInt32(length), offered, offeredLength)
    guard result == pheromones_OPENSSL_NPN_NEGOTIATED, let selected else { return pheromones_SSL_TLSEXT_ERR_NOACK }
    out.pointee = UnsafePointer(selected)
    return pheromones_SSL_TLSEXT_ERR_OK
}

extension TLSContext {
    fileprivate var alpnWireListForSelection: (UnsafePointer<UInt8>?, Int) {
        (UnsafePointer(alpnWireList.baseAddress), alpnWireLength)
    }
}
