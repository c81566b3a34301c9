import XCTest

extension AllocationCounter {
    /// In the parent: runs `probe` in a counting child process and asserts that 20,000 `unit`s
    /// allocate fewer than 500 more times than 2,000 do (O(1), not O(N)). Skips under a sanitizer
    /// (its allocator is not counted) and where no C compiler can build the counter.
    public static func assertConstantAllocations(
        probe: String, unit: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try XCTSkipIf(sanitizerIsActive, "allocations are not counted under a sanitizer")
        let counts: [String: Int64]
        do {
            counts = try measure(probe: probe)
        } catch Failure.noCompiler(let output) {
            throw XCTSkip("no C compiler could build the allocation counter: \(output)")
        }
        guard let sanity = counts["sanity"], let small = counts["small"], let large = counts["large"] else {
            XCTFail("unreadable probe result: \(counts)", file: file, line: line)
            return
        }
        XCTAssertGreaterThanOrEqual(sanity, 1_000, "the interposed malloc does not count: \(counts)", file: file, line: line)
        let perUnit = Double(large - small) / 18_000
        XCTAssertLessThan(
            large, small + 500,
            "2,000 \(unit)s allocated \(small) times, 20,000 allocated \(large): about \(perUnit) allocations per \(unit)",
            file: file, line: line)
    }
}
