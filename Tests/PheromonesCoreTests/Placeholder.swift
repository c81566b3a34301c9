import XCTest

final class PheromonesCoreTestsPlaceholder: XCTestCase {
    func testNothingYet() {}
}
