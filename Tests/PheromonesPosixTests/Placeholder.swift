import XCTest

final class PheromonesPosixTestsPlaceholder: XCTestCase {
    func testNothingYet() {}
}
