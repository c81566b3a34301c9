import Foundation

/// One row measured against one implementation in one round.
struct Measurement: Sendable {
    var row: Int
    var implementation: Implementation
    var round: Int
    var result: LoadResult?
    /// What went wrong, if anything (the row is then flagged in the report).
    var problems: [String]
}

/// Runs rows against both servers: for each row, rounds alternate A B A B, and every measurement
/// gets a fresh server process and a fresh load-generator process.
struct Runner {
    var loops: Int
    var rounds: Int
    var implementations = Implementation.allCases

    func run(_ rows: [Row]) -> [Measurement] {
        var measurements: [Measurement] = []
        for (index, row) in rows.enumerated() {
            for round in 1...rounds {
                for implementation in implementations {
                    let measurement = measure(row, index: index, on: implementation, round: round)
                    Progress.report(measurement, of: row, rounds: rounds)
                    measurements.append(measurement)
                }
            }
        }
        return measurements
    }

    private func measure(_ row: Row, index: Int, on implementation: Implementation, round: Int) -> Measurement {
        var measurement = Measurement(row: index, implementation: implementation, round: round, result: nil, problems: [])
        do {
            let server = try startServer(implementation, proto: row.plan.proto, tls: row.plan.tls != nil)
            defer { server.process.stop() }
            var plan = row.plan
            plan.port = server.port
            plan.serverPID = server.process.pid
            measurement.result = try Self.runLoad(plan)
            if !server.process.isRunning { measurement.problems.append("the server exited during the run") }
        } catch {
            measurement.problems.append("\(error)")
        }
        if let result = measurement.result, result.hasErrors { measurement.problems.append(result.errorSummary) }
        return measurement
    }

    private func startServer(_ implementation: Implementation, proto: WireProtocol, tls: Bool) throws -> (process: ChildProcess, port: Int) {
        let process = try ChildProcess(arguments: [
            "serve", "--impl", implementation.rawValue, "--proto", proto.rawValue, "--port", "0", "--loops", "\(loops)",
        ] + (tls ? ["--tls"] : []))
        guard let line = process.readLine(), let port = ReadyLine.port(in: line) else {
            process.stop()
            throw HarnessError("the \(implementation.rawValue) server did not start")
        }
        return (process, port)
    }

    /// Runs `plan` in a load-generator process of its own and decodes the JSON line it prints.
    static func runLoad(_ plan: LoadPlan) throws -> LoadResult {
        let load = try ChildProcess(arguments: ["load"] + plan.arguments)
        let (output, status) = load.readToEnd()
        guard status == 0 else { throw HarnessError("the load generator exited with status \(status)") }
        guard let line = output.split(separator: "\n").last,
              let result = try? JSONDecoder().decode(LoadResult.self, from: Data(line.utf8)) else {
            throw HarnessError("the load generator printed no result")
        }
        return result
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension LoadResult {
    /// The counts of what went wrong, for the report.
    var errorSummary: String {
        var parts: [String] = []
        if failed > 0 { parts.append("\(failed) failed connection(s)") }
        if dropped > 0 { parts.append("\(dropped) dropped connection(s)") }
        if bad > 0 { parts.append("\(bad) bad repl(ies)") }
        if let firstError { parts.append("first error: \(firstError)") }
        return parts.joined(separator: ", ")
    }
}

/// One line per measurement on stderr, so a long run shows where it is.
enum Progress {
    static func report(_ measurement: Measurement, of row: Row, rounds: Int) {
        var line = "\(row.scenario.rawValue) \(row.name), round \(measurement.round)/\(rounds), \(measurement.implementation.rawValue): "
        if let result = measurement.result {
            line += row.scenario.metrics.compactMap { metric in
                metric.value(result).map { "\(metric.format($0)) \(metric.title)" }
            }.joined(separator: ", ")
        }
        if !measurement.problems.isEmpty { line += " [\(measurement.problems.joined(separator: "; "))]" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
