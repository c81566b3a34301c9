import Foundation

/// The test certificates written as PEM files in a fresh folder (for the `openssl` command, and
/// for code that loads certificates from files), removed when the value goes.
public final class CertificateFiles {
    /// The folder.
    public let directory: URL

    /// Writes `ca.pem`, `server.pem`/`.key` (`localhost`, 127.0.0.1), `other.pem`/`.key`
    /// (`other.example`) and `client.pem`/`.key`.
    public init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pheromones-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let files = [
            "ca.pem": TestCertificates.caCertificate,
            "server.pem": TestCertificates.serverCertificate, "server.key": TestCertificates.serverKey,
            "other.pem": TestCertificates.otherCertificate, "other.key": TestCertificates.otherKey,
            "client.pem": TestCertificates.clientCertificate, "client.key": TestCertificates.clientKey,
        ]
        for (name, contents) in files {
            try contents.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// The path of the file `name` in the folder.
    public func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}
