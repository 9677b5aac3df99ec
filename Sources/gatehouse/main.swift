import ArgumentParser
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
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "A reverse proxy for FastAPI, configured by GATEHOUSE_* environment variables.",
        version: gatehouseVersion,
        subcommands: [Serve.self, CheckConfig.self, Healthcheck.self],
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

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy (the default).")

    func run() async throws {
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
            try await GatehouseServer(configuration: configuration, logger: logger).run()
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
