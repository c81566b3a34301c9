import Pheromones

// `withUnsafeBytes` and `withUnsafeReadableBytes` rethrow untyped errors; these keep
// ``NoiseError`` typed through them, so that callers need no cast and no catch-all.

/// Runs `body` on the bytes of `bytes`.
func withNoiseBytes<Result>(of bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(NoiseError) -> Result) throws(NoiseError) -> Result {
    try bytes.withUnsafeBytes { region in capture { () throws(NoiseError) in try body(region) } }.get()
}

/// Runs `body` on the readable bytes of `buffer`.
func withNoiseBytes<Result>(of buffer: ByteBuffer, _ body: (UnsafeRawBufferPointer) throws(NoiseError) -> Result) throws(NoiseError) -> Result {
    try buffer.withUnsafeReadableBytes { region in capture { () throws(NoiseError) in try body(region) } }.get()
}

private func capture<Value>(_ body: () throws(NoiseError) -> Value) -> Result<Value, NoiseError> {
    do throws(NoiseError) {
        return .success(try body())
    } catch {
        return .failure(error)
    }
}
