// swift-tools-version:6.1
import PackageDescription

// The benchmarks are a package of their own, as in SwiftNIO's repository, so that the library never
// depends on SwiftNIO or on the benchmark harness.

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

/// A package-benchmark suite under `Benchmarks/<name>`.
func benchmarkTarget(_ name: String, dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: dependencies + ["BenchmarkSupport", .product(name: "Benchmark", package: "package-benchmark")],
        path: "Benchmarks/\(name)",
        swiftSettings: strictSettings,
        plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
    )
}

/// SwiftPM names a path dependency after its folder: the clone's folder, whatever it is called.
let library = String(Context.packageDirectory.split(separator: "/").dropLast().last ?? "pheromones").lowercased()

let ours: [Target.Dependency] = [.product(name: "Pheromones", package: library)]
let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOEmbedded", package: "swift-nio"),
]

let package = Package(
    name: "pheromones-benchmarks",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pheromones-bench", targets: ["PheromonesBench"]),
    ],
    dependencies: [
        .package(path: "../"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", exact: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/ordo-one/package-benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // What the micro-benchmark suites share: their configuration and a syscall-only client.
        .target(
            name: "BenchmarkSupport",
            dependencies: ["CPerfEvents", .product(name: "Benchmark", package: "package-benchmark")],
            swiftSettings: strictSettings
        ),
        // Probes whether hardware instruction counters are available.
        .target(name: "CPerfEvents"),
        // epoll and socket helpers for the load generator (Glibc's Swift module lacks <sys/epoll.h>).
        .target(name: "CEpoll"),
        // The load generator's TLS client: OpenSSL (the system's libssl, as PheromonesTLS links it)
        // on its non-blocking sockets, behind a header that exposes none of OpenSSL's.
        .target(name: "CTLSClient", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // The `udp` scenario's load generator: plain UDP sockets with sendmmsg and recvmmsg.
        .target(name: "CUDPLoad"),
        .executableTarget(
            name: "PheromonesBench",
            dependencies: [
                "CEpoll",
                "CTLSClient",
                "CUDPLoad",
                .product(name: "Pheromones", package: library),
                .product(name: "PheromonesTLS", package: library),
                .product(name: "PheromonesNoise", package: library),
                .product(name: "PheromonesP2P", package: library),
                .product(name: "PheromonesTestSupport", package: library),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        benchmarkTarget("Pipeline", dependencies: ours + nio),
        benchmarkTarget("ByteBuffers", dependencies: ours + nio),
        benchmarkTarget("Codecs", dependencies: ours + nio + [.product(name: "NIOExtras", package: "swift-nio-extras")]),
        benchmarkTarget("Allocations", dependencies: ours + [.product(name: "NIOPosix", package: "swift-nio")]),
    ]
)
