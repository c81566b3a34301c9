extension PeerID {
    /// The peer id whose 32-byte digest is `digest` (as a native-wire hello carries it); nil for
    /// any other length. Says nothing about who holds the key: only a handshake proves that.
    public init?(digest: [UInt8]) {
        guard digest.count == Self.byteCount else { return nil }
        self.bytes = digest
    }
}
