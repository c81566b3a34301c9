/// Whether `error` is `expected` (both of one `Equatable` error type and equal).
public func fuzzErrorsMatch(_ error: any Error, _ expected: any Error & Equatable) -> Bool {
    expected.isEqual(to: error)
}

extension Equatable {
    fileprivate func isEqual(to other: any Error) -> Bool {
        (other as? Self) == self
    }
}
