import XCTest

final class PheromonesP2PTestsPlaceholder: XCTestCase {
    func testNothingYet() {}
}
