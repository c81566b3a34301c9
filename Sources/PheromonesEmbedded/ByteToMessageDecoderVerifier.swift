import PheromonesCore

/// Checks a ``ByteToMessageDecoder`` against known input and output, however the input is split.
///
/// A decoder that works when each message arrives in one read can still fail on a real network,
/// where reads split messages anywhere and join several into one. The verifier feeds every input
/// through a fresh ``ByteToMessageHandler`` on an ``EmbeddedChannel`` in several ways and checks that
/// the same messages come out, in order, with no bytes left over:
///
/// - ``Mode/whole``: the input in one buffer;
/// - ``Mode/byteByByte``: one byte per read;
/// - ``Mode/randomSplits(seed:)``: split at random (but reproducible) places, for several seeds;
/// - ``Mode/surrounded``: preceded by the first pair's input and followed by the last pair's, whose
///   messages are expected too (so a decoder must not depend on its input starting a stream).
///
/// The inputs are each pair's input on its own and then all pairs' inputs concatenated in one
/// buffer (reported as input `nil`). Every chunk fed is a window in the middle of a larger buffer,
/// with a non-zero reader index and foreign bytes on both sides, so a decoder that uses absolute
/// indices, or reads past the readable bytes, is caught.
///
/// At the end of each run the channel is closed; the decoder's `decodeLast` must then produce
/// nothing and leave nothing: a message or a byte left at that point counts as a failure.
///
/// Modelled on SwiftNIO's `ByteToMessageDecoderVerifier` (NIOTestUtils).
public enum ByteToMessageDecoderVerifier {
    /// How the verifier fed the input.
    public enum Mode: Sendable, Hashable, CustomStringConvertible {
        /// The whole input in one read.
        case whole
        /// One byte per read.
        case byteByByte
        /// Reads of random lengths, from a generator seeded with `seed`.
        case randomSplits(seed: UInt64)
        /// The input between the first pair's input and the last pair's, in one read.
        case surrounded

        /// The mode's name, as it appears in error reports.
        public var description: String {
            switch self {
            case .whole: return "whole"
            case .byteByByte: return "byte by byte"
            case .randomSplits(let seed): return "random splits (seed \(seed))"
            case .surrounded: return "surrounded by other input"
            }
        }
    }

    /// A failed verification: which way of feeding which input produced what, instead of what.
    public struct VerificationError: Error, CustomStringConvertible {
        /// How the input was fed.
        public var mode: Mode
        /// The index of the input-output pair, or nil for all inputs concatenated.
        public var inputIndex: Int?
        /// The bytes fed (in ``Mode/surrounded`` mode, including the surrounding input).
        public var input: ByteBuffer
        /// The messages expected, described.
        public var expected: [String]
        /// The messages produced, described (up to the point of failure).
        public var actual: [String]
        /// What went wrong.
        public var problem: String

        /// Creates an error report.
        public init(mode: Mode, inputIndex: Int?, input: ByteBuffer, expected: [String], actual: [String], problem: String) {
            self.mode = mode
            self.inputIndex = inputIndex
            self.input = input
            self.expected = expected
            self.actual = actual
            self.problem = problem
        }

        /// The full report: mode, input, problem, and expected and actual messages.
        public var description: String {
            let which = inputIndex.map { "input #\($0)" } ?? "all inputs concatenated"
            return """
                decoder verification failed (\(mode), \(which)): \(problem)
                  input:    \(String(reflecting: input))
                  expected: [\(expected.joined(separator: ", "))]
                  actual:   [\(actual.joined(separator: ", "))]
                """
        }
    }

    /// The seeds of the ``Mode/randomSplits(seed:)`` runs: fixed, so a failure reproduces.
    private static let seeds: [UInt64] = [1, 2, 3, 42, 0x5eed]

    /// Verifies that `decoderFactory`'s decoders turn each pair's input into its messages, and all
    /// inputs concatenated into all messages, however the bytes are split across reads.
    ///
    /// - Throws: a ``VerificationError`` describing the first mismatch.
    public static func verifyDecoder<Decoder: ByteToMessageDecoder>(
        inputOutputPairs: [(ByteBuffer, [Decoder.InboundOut])],
        decoderFactory: () -> Decoder
    ) throws where Decoder.InboundOut: Equatable {
        guard let first = inputOutputPairs.first, let last = inputOutputPairs.last else { return }

        var cases: [(index: Int?, input: ByteBuffer, expected: [Decoder.InboundOut])] = []
        for (index, pair) in inputOutputPairs.enumerated() {
            cases.append((index, pair.0, pair.1))
        }
        var all = ByteBuffer()
        var allExpected: [Decoder.InboundOut] = []
        for (input, expected) in inputOutputPairs {
            all.writeImmutableBuffer(input)
            allExpected.append(contentsOf: expected)
        }
        cases.append((nil, all, allExpected))

        for testCase in cases {
            let bytes = testCase.input.readableBytesView.map { $0 }
            let run = Run<Decoder>(inputIndex: testCase.index, expected: testCase.expected)

            try run.check(.whole, input: testCase.input, chunks: [bytes], decoder: decoderFactory())
            try run.check(.byteByByte, input: testCase.input, chunks: bytes.map { [$0] }, decoder: decoderFactory())
            for seed in seeds {
                var generator = SplitMix64(seed: seed)
                try run.check(
                    .randomSplits(seed: seed), input: testCase.input,
                    chunks: randomChunks(of: bytes, using: &generator), decoder: decoderFactory())
            }

            var surrounded = ByteBuffer()
            surrounded.writeImmutableBuffer(first.0)
            surrounded.writeImmutableBuffer(testCase.input)
            surrounded.writeImmutableBuffer(last.0)
            let surroundedRun = Run<Decoder>(inputIndex: testCase.index, expected: first.1 + testCase.expected + last.1)
            try surroundedRun.check(
                .surrounded, input: surrounded, chunks: [surrounded.readableBytesView.map { $0 }], decoder: decoderFactory())
        }
    }

    /// Cuts `bytes` into chunks of random lengths (at least one byte each, up to about a third of
    /// the input), so that splits fall both inside and between messages.
    private static func randomChunks(of bytes: [UInt8], using generator: inout SplitMix64) -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        var start = 0
        let longest = max(2, bytes.count / 3)
        while start < bytes.count {
            let length = min(bytes.count - start, 1 + Int(generator.next() % UInt64(longest)))
            chunks.append(Array(bytes[start..<start + length]))
            start += length
        }
        return chunks
    }

    /// One way of feeding one input, and the comparison of what came out.
    private struct Run<Decoder: ByteToMessageDecoder> where Decoder.InboundOut: Equatable {
        var inputIndex: Int?
        var expected: [Decoder.InboundOut]

        func check(_ mode: Mode, input: ByteBuffer, chunks: [[UInt8]], decoder: Decoder) throws {
            var actual: [Decoder.InboundOut] = []
            func failure(_ problem: String) -> VerificationError {
                VerificationError(
                    mode: mode, inputIndex: inputIndex, input: input,
                    expected: expected.map { String(reflecting: $0) },
                    actual: actual.map { String(reflecting: $0) },
                    problem: problem)
            }

            let channel: EmbeddedChannel
            do {
                channel = try EmbeddedChannel(handler: ByteToMessageHandler(decoder))
            } catch {
                throw failure("could not set up the channel: \(error)")
            }
            // Active, so that closing it fires `channelInactive` and the handler runs `decodeLast`.
            channel.connect()

            for chunk in chunks {
                do {
                    try channel.writeInbound(windowed(chunk))
                    while let message = try channel.readInbound(as: Decoder.InboundOut.self) { actual.append(message) }
                } catch {
                    throw failure("the decoder failed: \(error)")
                }
            }

            let leftOvers: EmbeddedChannel.LeftOvers
            do {
                leftOvers = try channel.finish()
            } catch {
                throw failure("at the end of input: \(error)")
            }
            guard leftOvers.inbound.isEmpty else {
                let extra = leftOvers.inbound.map { String(reflecting: $0) }
                throw failure("decodeLast produced \(extra.count) more message(s) at the end of input: \(extra.joined(separator: ", "))")
            }

            for (position, expectedMessage) in expected.enumerated() {
                guard position < actual.count else {
                    throw failure("only \(actual.count) of \(expected.count) messages were produced")
                }
                guard actual[position] == expectedMessage else {
                    throw failure("message #\(position) differs")
                }
            }
            guard actual.count == expected.count else {
                throw failure("\(actual.count - expected.count) more message(s) than expected were produced")
            }
        }

        /// `chunk` as the readable window of a larger buffer with foreign bytes on both sides.
        private func windowed(_ chunk: [UInt8]) -> ByteBuffer {
            let guardBytes: [UInt8] = [0xde, 0xad, 0xbe, 0xef]
            var buffer = ByteBuffer(capacity: chunk.count + 2 * guardBytes.count)
            buffer.writeBytes(guardBytes)
            buffer.writeBytes(chunk)
            buffer.writeBytes(guardBytes)
            buffer.moveReaderIndex(forwardBy: guardBytes.count)
            buffer.moveWriterIndex(to: guardBytes.count + chunk.count)
            return buffer
        }
    }
}
