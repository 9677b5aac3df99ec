// swift-tools-version:6.1
import PackageDescription

/// gatehouse: a JWT-verifying reverse proxy in front of FastAPI.
///
/// Layers (each target has one job; lower layers never import higher ones):
/// - `CCurl`: the libcurl system library plus `static inline` wrappers for its variadic calls.
/// - `CEvent`, `EventLoop`: libevent 2.1 and the one thin Swift wrapper over it.
/// - `HTTP1`: pure, resumable HTTP/1.1 request parsing (RFC 9112); no I/O, no C; fuzzed.
/// - `GatehouseUpstream`: the only code that touches curl: one multi handle per event loop.
/// - `JOSE`: pure JWS/JWK/JWT verification on libcrypto (+ libsodium for Ed25519); no I/O.
/// - `GatehouseAuth`: the JWKS cache, the verified-token cache and the per-request decision.
/// - `GatehouseProxy`: configuration, header rules, the workers and their connections, health,
///   shutdown, logging.
/// - `gatehouse`: the executable and its subcommands.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "gatehouse",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CEvent",
            pkgConfig: "libevent_core",
            providers: [.apt(["libevent-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // Pure HTTP/1.1 request parsing: a resumable state machine over bytes; no I/O, no C.
        .target(name: "HTTP1", swiftSettings: strict),
        // Reads raw requests and prints how `HTTP1` frames them (the differential test's probe).
        .executableTarget(name: "http1-probe", dependencies: ["HTTP1"]),
        // One event loop (libevent): fd watchers, timers, wake-ups; the only loop callbacks from C.
        .target(name: "EventLoop", dependencies: ["CEvent"], swiftSettings: strict),
        // Pure JWS/JWK/JWT verification: no I/O, no logging.
        .target(name: "JOSE", dependencies: ["CCrypto", "CSodium"]),
        // `swift run -c release jose-bench`: µs per verification beside the raw library call.
        .executableTarget(name: "jose-bench", dependencies: ["JOSE", "CCrypto", "CSodium"]),
        // libFuzzer targets (`make fuzz`). Built normally they replay their seed corpus.
        .target(name: "FuzzSupport", path: "Fuzz/Support"),
        .executableTarget(name: "FuzzTokenParser", dependencies: ["JOSE", "FuzzSupport"], path: "Fuzz/TokenParser"),
        .executableTarget(name: "FuzzJWKSParser", dependencies: ["JOSE", "FuzzSupport"], path: "Fuzz/JWKSParser"),
        .executableTarget(name: "FuzzHTTP1Parser", dependencies: ["HTTP1", "FuzzSupport"], path: "Fuzz/HTTP1Parser"),
        .executableTarget(name: "FuzzRulesParser", dependencies: ["GatehouseProxy", "FuzzSupport"], path: "Fuzz/RulesParser"),
        .target(
            name: "GatehouseUpstream",
            dependencies: [
                "CCurl",
                "EventLoop",
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GatehouseAuth",
            dependencies: [
                "JOSE",
                "EventLoop",
                "GatehouseUpstream",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // `gatehouse dev-issuer` / `gatehouse mint`: a Better Auth-shaped issuer for demos.
        .target(
            name: "GatehouseDevIssuer",
            dependencies: [
                "JOSE", "CSodium", "CCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GatehouseProxy",
            dependencies: [
                "GatehouseAuth",
                "GatehouseUpstream",
                "HTTP1",
                "EventLoop",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gatehouse",
            dependencies: [
                "GatehouseDevIssuer",
                "GatehouseProxy",
                "GatehouseUpstream",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JOSETests",
            dependencies: ["JOSE"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "GatehouseUpstreamTests",
            dependencies: [
                "GatehouseUpstream",
                "EventLoop",
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"], swiftSettings: strict),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop"], swiftSettings: strict),
        .testTarget(
            name: "GatehouseAuthTests",
            dependencies: ["GatehouseAuth", "GatehouseUpstream", "JOSE", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatehouseProxyTests",
            dependencies: ["GatehouseProxy", "JOSE"],
            swiftSettings: strict
        ),
    ]
)
