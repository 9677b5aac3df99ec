import ArgumentParser
import GatehouseDevIssuer
import GatehouseProxy
import GatehouseUpstream
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The version reported in logs and `--version`.
let gatehouseVersion = GatehouseVersion.current

@main
struct Gatehouse: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "A reverse proxy for FastAPI, configured by GATEHOUSE_* environment variables.",
        version: gatehouseVersion,
        subcommands: [Serve.self, CheckConfig.self, Healthcheck.self, DevIssuer.self, Mint.self],
        defaultSubcommand: Serve.self)
}

/// Reads the environment, or prints every problem and exits with `code`.
func loadConfiguration(exitCode code: Int32) -> GatehouseConfiguration {
    let environment = ProcessInfoEnvironment.current
    switch GatehouseConfiguration.load(environment: environment, stdoutIsTerminal: isatty(STDOUT_FILENO) == 1) {
    case .success(let configuration): return configuration
    case .failure(let error):
        printError("gatehouse: invalid configuration (\(error.problems.count) problem\(error.problems.count == 1 ? "" : "s")):")
        for problem in error.problems { printError("  \(problem)") }
        exit(code)
    }
}

func printError(_ line: String) {
    var stderrStream = StandardError()
    print(line, to: &stderrStream)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var text = string
        text.withUTF8 { bytes in _ = Glibc.write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
    }
}

enum ProcessInfoEnvironment {
    static var current: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy (the default).")

    func run() throws {
        let configuration = loadConfiguration(exitCode: 2)
        let level = configuration.logLevel
        let format = configuration.logFormat
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level, format: format) }
        let logger = Logger(label: "gatehouse")
        var settings: Logger.Metadata = ["version": .string(gatehouseVersion)]
        for (name, value) in configuration.effectiveSettings { settings[name] = .string(value) }
        logger.info("starting", metadata: settings)
        if !configuration.unknownVariables.isEmpty {
            logger.warning("ignoring unknown GATEHOUSE_ variables", metadata: [
                "names": .string(configuration.unknownVariables.joined(separator: ","))
            ])
        }
        do {
            try LoopServer(configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("cannot serve", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the environment and print the effective configuration (exit 0 valid, 1 invalid).")

    func run() throws {
        let configuration = loadConfiguration(exitCode: 1)
        for (name, value) in configuration.effectiveSettings { print("\(name)=\(value)") }
        for name in configuration.unknownVariables { printError("warning: unknown variable \(name) is ignored") }
    }
}

struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Probe the admin listener's /readyz; exit 0 when ready, 1 otherwise (for Docker HEALTHCHECK).")

    @Option(help: "Seconds to wait for an answer.")
    var timeout: Double = 3

    func run() throws {
        let configuration = loadConfiguration(exitCode: 1)
        let url = "http://\(configuration.adminListen.loopbackReachable)/readyz"
        let status = HTTPProbe.get(url: url, timeoutMilliseconds: Int(timeout * 1000))
        guard status == 200 else {
            printError("gatehouse healthcheck: \(url) answered \(status.map(String.init) ?? "nothing")")
            throw ExitCode(1)
        }
    }
}

/// Options shared by the development issuer's subcommands.
struct DevKeyOptions: ParsableArguments {
    @Option(help: "Private JWK Set file of the development issuer (created with a new Ed25519 key if missing).")
    var keyFile = ".gatehouse-dev-key.json"

    func load() throws -> DevKeySet {
        do {
            return try DevKeySet.loadOrCreate(path: keyFile)
        } catch {
            printError("gatehouse: \(error)")
            throw ExitCode(1)
        }
    }
}

/// Synchronous: it serves on gatehouse's own event loop on the command's thread until SIGTERM
/// or SIGINT (`LocalAnswerService`), with no Swift concurrency.
struct DevIssuer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-issuer",
        abstract: "Serve a Better Auth-shaped JWKS on loopback from a local key file (development only).")

    @OptionGroup var key: DevKeyOptions

    @Option(help: "Loopback address to serve on; the JWKS is at /api/auth/jwks.")
    var listen = "127.0.0.1:3000"

    func run() throws {
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]), ["127.0.0.1", "localhost"].contains(String(parts[0])) else {
            printError("gatehouse dev-issuer: --listen must be a loopback host:port such as 127.0.0.1:3000")
            throw ExitCode(2)
        }
        let host = String(parts[0])
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: .info, format: .text) }
        _ = try key.load()  // creates the file on first use; a malformed one stops here
        let answers = try DevIssuerAnswers(keyFile: key.keyFile, logger: Logger(label: "gatehouse.dev-issuer"))
        try LocalAnswerService.run(host: host, port: port, answer: { method, path, fields in
            let (status, body) = answers.answer(method: method, path: path, fields: fields)
            return LocalAnswer(status: status, body: body)
        }, started: {
            answers.announce(host: host, port: port)
        })
    }
}

struct Mint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a token of Better Auth's exact shape, signed by the development issuer's key.")

    @OptionGroup var key: DevKeyOptions

    @Option(help: "Subject (the user id).")
    var sub = "dev-user-1"

    @Option(help: "The user's email.")
    var email = "dev@example.com"

    @Option(help: "The user's name.")
    var name = "Dev User"

    @Option(help: "Lifetime, e.g. 15m, 1h (default: 15m for a token, Better Auth's default; 168h (7 days) for a session, also Better Auth's).")
    var ttl: String?

    @Option(help: "Signing algorithm: EdDSA (Better Auth's default), ES256, ES512, RS256 or PS256. A key for it is added to the key file if missing.")
    var alg = "EdDSA"

    @Option(help: "iss and aud (default: BETTER_AUTH_URL's origin, else http://127.0.0.1:3000).")
    var issuer: String?

    @Flag(help: "Print a Better Auth session credential instead of a JWT: the session cookie's value (the bearer plugin's token is the same string). The dev issuer answers get-session for it.")
    var session = false

    func run() throws {
        guard DevKey.algorithms.contains(alg) else {
            printError("gatehouse mint: unsupported --alg \"\(alg)\"; expected one of \(DevKey.algorithms.joined(separator: ", "))")
            throw ExitCode(2)
        }
        let ttl = ttl ?? (session ? "168h" : "15m")
        guard let lifetime = GatehouseConfiguration.parseDuration(ttl) else {
            printError("gatehouse mint: invalid --ttl \"\(ttl)\"; expected a duration such as 15m or 1h")
            throw ExitCode(2)
        }
        if session {
            do {
                let value = try DevSessions.create(
                    keyFile: key.keyFile, user: .init(id: sub, name: name, email: email),
                    ttlSeconds: max(1, lifetime.milliseconds / 1000))
                print(value)
                printError(
                    "gatehouse mint: a session of \(sub) until \(ttl) from now; send it as the cookie "
                        + "better-auth.session_token=<value> (__Secure-better-auth.session_token behind https), "
                        + "or as Authorization: Bearer <value> (the bearer plugin's set-auth-token is the same string)")
            } catch {
                printError("gatehouse: \(error)")
                throw ExitCode(1)
            }
            return
        }
        let environment = ProcessInfoEnvironment.current
        let origin = issuer ?? environment["BETTER_AUTH_URL"].flatMap(GatehouseConfiguration.origin(of:)) ?? "http://127.0.0.1:3000"
        let signingKey: DevKey
        do {
            let (found, added) = try DevKeySet.key(for: alg, path: key.keyFile)
            signingKey = found
            if added {
                printError("gatehouse mint: added a \(alg) key (kid \(found.kid)) to \(key.keyFile); the dev issuer serves it from now on")
            }
        } catch {
            printError("gatehouse: \(error)")
            throw ExitCode(1)
        }
        let minter = TokenMinter(key: signingKey, issuer: origin, audience: origin)
        print(minter.mint(user: .init(id: sub, name: name, email: email), ttlSeconds: max(1, lifetime.milliseconds / 1000)))
    }
}
