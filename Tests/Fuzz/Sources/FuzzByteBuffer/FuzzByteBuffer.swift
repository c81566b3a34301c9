import FuzzSupport
import Pheromones

// Fuzzes ByteBuffer's integer and string reads (what every decoder reads peer bytes with) against
// a model, a plain array and a reader index, with fuzzer-chosen indices and lengths: in range, at
// the edges, negative, and near `Int.max` and `UInt32.max`.
//
// Input: byte 0 = how the buffer starts (bits 0-6: a prefix length; bit 7: the buffer is a slice
// of a larger one, so its window does not start at its storage's start), byte 1 = its length, its
// bytes, then operations, each an opcode byte and its operands (see `step`).
//
// Properties:
// - every read returns what the model says: the value, or nil when the range is not readable
//   (and then moves nothing); `readUTF8ValidatedString` throws exactly for invalid UTF-8;
// - writes then reads round-trip (`readInteger(writeInteger(x)) == x`, strings likewise);
// - copies taken along the way keep their bytes whatever happens to the original (copy on write);
// - nothing traps.

/// The buffer as the model sees it: the bytes up to the writer index and the reader index.
struct Model: Equatable {
    var bytes: [UInt8]
    var readerIndex = 0

    var readable: ArraySlice<UInt8> { bytes[readerIndex...] }

    /// The bytes `index..<index + length` when they are all readable.
    func range(at index: Int, length: Int) -> ArraySlice<UInt8>? {
        guard index >= readerIndex, length >= 0, index <= bytes.count, length <= bytes.count - index else { return nil }
        return bytes[index..<index + length]
    }

    func integer<T: FixedWidthInteger>(at index: Int, _ endianness: Endianness, as: T.Type) -> T? {
        guard let bytes = range(at: index, length: MemoryLayout<T>.size) else { return nil }
        let ordered = endianness == .big ? Array(bytes) : bytes.reversed()
        return ordered.reduce(T.zero) { $0 << 8 | T(truncatingIfNeeded: $1) }
    }
}

func check(_ buffer: ByteBuffer, _ model: Model, _ what: @autoclosure () -> String) {
    fuzzCheck(buffer.readerIndex == model.readerIndex && buffer.writerIndex == model.bytes.count,
              "\(what()): indices \(buffer.readerIndex)..<\(buffer.writerIndex), model \(model.readerIndex)..<\(model.bytes.count)")
    fuzzCheck(Array(buffer.readableBytesView) == Array(model.readable), "\(what()): the readable bytes differ from the model")
}

/// An index operand: near the reader index mostly, else an extreme.
func index(_ input: inout FuzzInput, _ model: Model) -> Int {
    let kind = input.byte()
    switch kind & 7 {
    case 0, 1, 2, 3: return model.readerIndex + Int(Int8(bitPattern: input.byte()))
    case 4: return Int.min + Int(input.byte())
    case 5: return Int.max - Int(input.byte())
    case 6: return Int(UInt32.max) - Int(Int8(bitPattern: input.byte()))
    default: return input.integer(Int.self)
    }
}

/// A length operand: small mostly, else negative or an extreme.
func length(_ input: inout FuzzInput) -> Int {
    let kind = input.byte()
    switch kind & 7 {
    case 0, 1, 2, 3: return Int(input.byte())
    case 4: return -1 - Int(input.byte())
    case 5: return Int.max - Int(input.byte())
    case 6: return Int(UInt32.max) - Int(Int8(bitPattern: input.byte()))
    default: return input.integer(Int.self)
    }
}

func readInteger<T: FixedWidthInteger>(_ type: T.Type, _ buffer: inout ByteBuffer, _ model: inout Model, _ input: inout FuzzInput, get: Bool) {
    let endianness: Endianness = input.bool() ? .little : .big
    if get {
        let at = index(&input, model)
        let value = buffer.getInteger(at: at, endianness: endianness, as: T.self)
        fuzzCheck(value == model.integer(at: at, endianness, as: T.self), "getInteger(at: \(at)) as \(T.self)")
    } else {
        let value = buffer.readInteger(endianness: endianness, as: T.self)
        let expected = model.integer(at: model.readerIndex, endianness, as: T.self)
        fuzzCheck(value == expected, "readInteger as \(T.self): \(String(describing: value)), model \(String(describing: expected))")
        if expected != nil { model.readerIndex += MemoryLayout<T>.size }
    }
}

func writeInteger<T: FixedWidthInteger>(_ type: T.Type, _ buffer: inout ByteBuffer, _ model: inout Model, _ input: inout FuzzInput) {
    let endianness: Endianness = input.bool() ? .little : .big
    let value = input.integer(T.self)
    let at = buffer.writerIndex
    buffer.writeInteger(value, endianness: endianness)
    model.bytes += withUnsafeBytes(of: endianness == .big ? value.bigEndian : value.littleEndian) { Array($0) }
    fuzzCheck(buffer.getInteger(at: at, endianness: endianness, as: T.self) == value, "writeInteger then getInteger as \(T.self)")
}

/// Runs one operation on `buffer` and the model and compares them.
func step(_ buffer: inout ByteBuffer, _ model: inout Model, _ input: inout FuzzInput, _ copies: inout [(ByteBuffer, Model)]) {
    let opcode = input.byte()
    let types: [any FixedWidthInteger.Type] = [UInt8.self, UInt16.self, UInt32.self, UInt64.self]
    let type = types[Int(opcode >> 5 & 3)]
    switch opcode & 15 {
    case 0, 1:
        func open<T: FixedWidthInteger>(_ type: T.Type) { readInteger(type, &buffer, &model, &input, get: opcode & 15 == 1) }
        open(type)
    case 2, 3:
        let get = opcode & 15 == 3
        let at = get ? index(&input, model) : model.readerIndex
        let count = length(&input)
        let string = get ? buffer.getString(at: at, length: count) : buffer.readString(length: count)
        let expected = model.range(at: at, length: count).map { String(decoding: $0, as: UTF8.self) }
        fuzzCheck(string == expected, "\(get ? "getString(at: \(at), " : "readString(")length: \(count))")
        if !get, expected != nil { model.readerIndex += count }
    case 4, 5:
        let get = opcode & 15 == 5
        let at = get ? index(&input, model) : model.readerIndex
        let count = length(&input)
        let result = Result { get ? try buffer.getUTF8ValidatedString(at: at, length: count) : try buffer.readUTF8ValidatedString(length: count) }
        let bytes = model.range(at: at, length: count)
        switch (result, bytes) {
        case (.success(nil), nil):
            break
        case (.success(let string?), let bytes?):
            fuzzCheck(String(validating: bytes, as: UTF8.self) == string, "validated string at \(at), length \(count)")
            if !get { model.readerIndex += count }
        case (.failure(let error), let bytes?):
            fuzzCheck(String(validating: bytes, as: UTF8.self) == nil && (error as? ByteBufferError) == .invalidUTF8,
                      "validated string at \(at), length \(count) throws \(error)")
        default:
            fuzzCheck(false, "validated string at \(at), length \(count): \(result), model \(String(describing: bytes))")
        }
    case 6, 7:
        let get = opcode & 15 == 7
        let at = get ? index(&input, model) : model.readerIndex
        let count = length(&input)
        let slice = get ? buffer.getSlice(at: at, length: count) : buffer.readSlice(length: count)
        let expected = model.range(at: at, length: count)
        fuzzCheck(slice.map { Array($0.readableBytesView) } == expected.map(Array.init), "slice at \(at), length \(count)")
        if !get, expected != nil { model.readerIndex += count }
        if let slice, let expected, input.bool() {
            // Go on with the slice; the original stays as a copy to check later.
            copies.append((buffer, model))
            buffer = slice
            model = Model(bytes: Array(expected))
        }
    case 8, 9:
        let get = opcode & 15 == 9
        let at = get ? index(&input, model) : model.readerIndex
        let count = length(&input)
        let bytes = get ? buffer.getBytes(at: at, length: count) : buffer.readBytes(length: count)
        let expected = model.range(at: at, length: count).map(Array.init)
        fuzzCheck(bytes == expected, "bytes at \(at), length \(count)")
        if !get, expected != nil { model.readerIndex += count }
    case 10:
        func open<T: FixedWidthInteger>(_ type: T.Type) { writeInteger(type, &buffer, &model, &input) }
        open(type)
    case 11:
        let string = input.shortString()
        let at = buffer.writerIndex
        buffer.writeString(string)
        model.bytes += Array(string.utf8)
        fuzzCheck(buffer.getString(at: at, length: string.utf8.count) == string, "writeString then getString")
    case 12:
        let bytes = input.shortBytes()
        buffer.writeBytes(bytes)
        model.bytes += bytes
    case 13:
        buffer.discardReadBytes()
        model.bytes.removeFirst(model.readerIndex)
        model.readerIndex = 0
    case 14:
        let distance = min(Int(input.byte()), model.bytes.count - model.readerIndex)
        buffer.moveReaderIndex(forwardBy: distance)
        model.readerIndex += distance
    default:
        if copies.count < 8 { copies.append((buffer, model)) }
    }
    check(buffer, model, "after opcode \(opcode)")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let shape = input.byte()
    let contents = Array(input.bytes(upTo: Int(input.byte())))
    var buffer: ByteBuffer
    if shape & 0x80 != 0 {
        var whole = ByteBuffer()
        whole.writeRepeatingByte(0xee, count: Int(shape & 0x7f))
        whole.writeBytes(contents)
        whole.writeRepeatingByte(0xdd, count: 3)
        whole.moveReaderIndex(forwardBy: Int(shape & 0x7f))
        guard let slice = whole.readSlice(length: contents.count) else { fatalError("the slice does not fit") }
        buffer = slice
    } else {
        buffer = ByteBuffer(bytes: contents)
    }
    var model = Model(bytes: contents)
    check(buffer, model, "at the start")

    var copies: [(ByteBuffer, Model)] = []
    while !input.isEmpty {
        step(&buffer, &model, &input, &copies)
    }
    for (copy, copyModel) in copies {
        check(copy, copyModel, "a copy, at the end")
    }
    return 0
}
