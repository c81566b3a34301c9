/// The benchmark servers' identity: the test-only certificate (EC P-256, CN=localhost, SAN
/// DNS:localhost and IP:127.0.0.1, signed by the test CA) and key of
/// `Tests/PheromonesTLSTests/TestCertificates.swift`, made by its `Certificates/generate.sh`. Not a
/// secret; the load generator does not verify it.
enum BenchCertificates {
    static let serverCertificate = """
-----BEGIN CERTIFICATE-----
MIIBljCCATygAwIBAgICEAAwCgYIKoZIzj0EAwIwHTEbMBkGA1UEAwwSUGhlcm9t
b25lcyB0ZXN0IGNhMCAXDTI1MDEwMTAwMDAwMFoYDzIxMjUwMTAxMDAwMDAwWjAU
MRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASt
NuHRS52DlcVXfUNElkG4D6j1OWTpEgCFPBVO/QYx99qnvWdHIOKDyXpJyLO0ldaP
E9pqbB1hcJGFFGofM/W2o3MwcTAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEw
EwYDVR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFMUFEepusSUDBVKl6K+4ktEi
oI29MB8GA1UdIwQYMBaAFAbWEhfQ+ChYO5AXBaPO93Ml6ARKMAoGCCqGSM49BAMC
A0gAMEUCICnoFhDG/VXnf0TwUIinK/nispwd+LHexY+zO9O8txOuAiEAnsvdhkU4
VXlee9FkSWYoofRSGISs7GOsJClM99zVfvs=
-----END CERTIFICATE-----
"""

    static let serverKey = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXZ8+WvgkVSGEUVK7
oS6nQRx5dQw46P0lO/RhJeccK+qhRANCAAStNuHRS52DlcVXfUNElkG4D6j1OWTp
EgCFPBVO/QYx99qnvWdHIOKDyXpJyLO0ldaPE9pqbB1hcJGFFGofM/W2
-----END PRIVATE KEY-----
"""
}
