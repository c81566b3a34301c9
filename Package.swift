// swift-tools-version:6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "pheromones",
    products: [
        .library(name: "Pheromones", targets: ["Pheromones"]),
        .library(name: "PheromonesCore", targets: ["PheromonesCore"]),
        .library(name: "PheromonesPosix", targets: ["PheromonesPosix"]),
        .library(name: "PheromonesEmbedded", targets: ["PheromonesEmbedded"]),
        .library(name: "PheromonesP2P", targets: ["PheromonesP2P"]),
        .library(name: "PheromonesSimulation", targets: ["PheromonesSimulation"]),
        .library(name: "PheromonesTLS", targets: ["PheromonesTLS"]),
        .library(name: "PheromonesNoise", targets: ["PheromonesNoise"]),
        .library(name: "PheromonesServiceLifecycle", targets: ["PheromonesServiceLifecycle"]),
        .executable(name: "pheromones", targets: ["PheromonesCLI"]),
        .executable(name: "pheromones-echo", targets: ["EchoExample"]),
        // Test helpers (certificates, child processes, allocation counting, an atomics-only
        // metrics backend), for this package's tests and its Benchmarks package; not an API.
        .library(name: "PheromonesTestSupport", targets: ["PheromonesTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Documentation only: `swift package generate-documentation --target PheromonesCore` builds
        // the DocC catalogs. A command plugin: nothing it has is linked into the package's products.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // Layer 1: abstractions with no I/O (buffers, futures, loops, channels, pipelines, codecs).
        .target(
            name: "PheromonesCore",
            dependencies: [
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Layer 2: the epoll reactor, sockets, TCP channels and bootstraps (Glibc only; metrics
        // through swift-metrics' CoreMetrics, off unless the application gives a factory).
        .target(
            name: "PheromonesPosix",
            dependencies: [
                "PheromonesCore",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Layer 2 (testing): a virtual-time loop and a socket-free channel for pipeline unit tests.
        .target(
            name: "PheromonesEmbedded",
            dependencies: [
                "PheromonesCore",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // The umbrella: `import Pheromones` brings in the three layers above.
        .target(
            name: "Pheromones",
            dependencies: ["PheromonesCore", "PheromonesPosix", "PheromonesEmbedded"],
            swiftSettings: strictSettings
        ),
        // OpenSSL 3, found through pkg-config (Debian and Ubuntu: libssl-dev). Only PheromonesTLS
        // and PheromonesNoise link it: a program that imports neither links no OpenSSL.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Layer 2 (security): TLS as a pipeline stage, on OpenSSL with memory BIOs.
        .target(
            name: "PheromonesTLS",
            dependencies: [
                "Pheromones",
                "COpenSSL",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // Layer 2 (security): Noise XX handshakes and peer identities. The handshake (X25519,
        // Ed25519, SHA-256, HKDF) is on swift-crypto; the transport cipher (ChaCha20-Poly1305) is
        // OpenSSL's EVP, which seals and opens in place with no allocation per message. Only this
        // module links swift-crypto: the core modules stay free of it.
        .target(
            name: "PheromonesNoise",
            dependencies: [
                "Pheromones",
                "COpenSSL",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        // Servers and P2P nodes as swift-service-lifecycle services: graceful shutdown on signals, in order.
        .target(
            name: "PheromonesServiceLifecycle",
            dependencies: [
                "Pheromones",
                "PheromonesP2P",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Layer 3: the peer-to-peer layer (server, routers, protocol stages, wires).
        .target(
            name: "PheromonesP2P",
            dependencies: [
                "Pheromones",
                "PheromonesNoise",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        // Layer 4: real node stacks on an in-memory network in virtual time (thousands of nodes
        // in one process), and the broadcast experiments `pheromones simulate` runs.
        .target(
            name: "PheromonesSimulation",
            dependencies: [
                "Pheromones",
                "PheromonesP2P",
                .product(name: "DequeModule", package: "swift-collections"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "PheromonesCLI",
            dependencies: [
                "PheromonesP2P",
                "PheromonesSimulation",
                "PheromonesTLS",
                "PheromonesNoise",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "EchoExample",
            dependencies: [
                "Pheromones",
                "PheromonesTLS",
                "PheromonesServiceLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesCoreTests",
            dependencies: ["Pheromones"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesPosixTests",
            dependencies: ["Pheromones", "PheromonesTestSupport", .product(name: "MetricsTestKit", package: "swift-metrics")],
            swiftSettings: strictSettings
        ),
        // Test-only certificates (and their files), shared by the test targets and the TLS fuzz
        // target; and the allocation counter and the echo stages the allocation tests share.
        .target(
            name: "PheromonesTestSupport",
            dependencies: ["PheromonesCore", .product(name: "CoreMetrics", package: "swift-metrics")],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesTLSTests",
            dependencies: ["PheromonesTLS", "Pheromones", "PheromonesTestSupport"],
            exclude: ["Certificates"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesNoiseTests",
            dependencies: ["PheromonesNoise", "Pheromones", "PheromonesTestSupport", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Fixtures/generate.py", "Fixtures/alice-peer-id.txt", "Interop"],
            resources: [.copy("Fixtures/noise-xx-vectors.json")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesServiceLifecycleTests",
            dependencies: ["PheromonesServiceLifecycle", "Pheromones", "PheromonesP2P", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesP2PTests",
            dependencies: ["PheromonesP2P", "PheromonesNoise", .product(name: "MetricsTestKit", package: "swift-metrics")],
            exclude: ["Interop"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesSimulationTests",
            dependencies: ["PheromonesSimulation", "PheromonesP2P", "Pheromones"],
            swiftSettings: strictSettings
        ),
        // The example and the command line tool, tested through their own code (`@testable import`
        // of an executable target) and as built executables.
        .testTarget(
            name: "EchoExampleTests",
            dependencies: ["EchoExample", "Pheromones", "PheromonesTLS", "PheromonesTestSupport"],
            swiftSettings: strictSettings
        ),
        // The user guide's samples (Docs/Guide.md), verbatim, each run by a test; one test checks
        // that every sample in the guide is still found here.
        .testTarget(
            name: "GuideTests",
            dependencies: [
                "Pheromones",
                "PheromonesServiceLifecycle",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PheromonesCLITests",
            dependencies: ["PheromonesCLI", "PheromonesP2P", "PheromonesNoise", "PheromonesTestSupport"],
            swiftSettings: strictSettings
        ),
    ]
)

// Fuzzing (Tests/Fuzz/run.sh, Docs/Reliability.md): with PHEROMONES_FUZZ=1 in the environment the
// package also has one libFuzzer executable per decoder and parser reachable from the network or the
// command line. They exist only then, so `swift build` and `swift test` never see them; run.sh builds
// them with `--sanitize=fuzzer --sanitize=address` in a scratch folder of their own.
if Context.environment["PHEROMONES_FUZZ"] == "1" {
    let fuzzTargets = [
        "FuzzLengthFieldFramer",
        "FuzzNativeEnvelope",
        "FuzzJSONObjectFramer",
        "FuzzJSONEnvelope",
        "FuzzBase64",
        "FuzzGreeting",
        "FuzzSocketAddress",
        "FuzzByteBuffer",
        "FuzzTLSRecords",
        "FuzzNoiseMessages",
        "FuzzGossipControl",
    ]
    package.targets.append(
        .target(
            name: "FuzzSupport",
            dependencies: ["Pheromones"],
            path: "Tests/Fuzz/Sources/FuzzSupport",
            swiftSettings: strictSettings
        )
    )
    // Only the Noise target links PheromonesNoise (and so builds swift-crypto with the sanitizers).
    let extraDependencies: [String: [Target.Dependency]] = ["FuzzNoiseMessages": ["PheromonesNoise"]]
    for name in fuzzTargets {
        package.targets.append(
            .executableTarget(
                name: name,
                dependencies: ["FuzzSupport", "Pheromones", "PheromonesP2P", "PheromonesTLS", "PheromonesTestSupport"]
                    + extraDependencies[name, default: []],
                path: "Tests/Fuzz/Sources/\(name)",
                // libFuzzer supplies `main` and calls the target's `LLVMFuzzerTestOneInput`.
                swiftSettings: strictSettings + [.unsafeFlags(["-parse-as-library"])]
            )
        )
    }
}
