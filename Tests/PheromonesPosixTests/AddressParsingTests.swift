import Glibc
import PheromonesCore
@testable import PheromonesPosix
import XCTest

final class AddressParsingTests: XCTestCase {
    // MARK: - splitHostPort

    func testSplittingAcceptsHostPortAndBracketedIPv6() throws {
        let cases: [(String, String, Int)] = [
            ("example.com:443", "example.com", 443),
            ("1.2.3.4:80", "1.2.3.4", 80),
            ("[::1]:80", "::1", 80),
            ("[fe80::1%lo]:8080", "fe80::1%lo", 8080),
            ("host:0", "host", 0),
            ("host:65535", "host", 65535),
            ("host:007", "host", 7),
        ]
        for (text, host, port) in cases {
            let split = try SocketAddress.splitHostPort(text)
            XCTAssertEqual(split.host, host, text)
            XCTAssertEqual(split.port, port, text)
        }
    }

    func testEveryMalformedHostPortGivesItsOwnTypedErrorAndAReadableSentence() {
        let cases: [(String, AddressError, String)] = [
            ("", .empty, "the address is empty; expected 'host:port' or '[ipv6-address]:port'"),
            ("host", .missingPort("host"), "'host': missing port; expected 'host:port' or '[ipv6-address]:port'"),
            ("host:", .missingPort("host:"), "'host:': missing port"),
            ("[::1]", .missingPort("[::1]"), "'[::1]': missing port"),
            ("[::1]:", .missingPort("[::1]:"), "'[::1]:': missing port"),
            ("[::1]80", .missingPort("[::1]80"), "'[::1]80': missing port"),
            (":80", .missingHost(":80"), "':80': missing host before the port"),
            ("[]:80", .missingHost("[]:80"), "'[]:80': missing host before the port"),
            ("host:abc", .invalidPort("host:abc"), "'host:abc': port 'abc' is not a decimal number"),
            ("host:8o", .invalidPort("host:8o"), "'host:8o': port '8o' is not a decimal number"),
            ("host:+80", .invalidPort("host:+80"), "'host:+80': port '+80' is not a decimal number"),
            ("host: 80", .invalidPort("host: 80"), "'host: 80': port ' 80' is not a decimal number"),
            ("host:-", .invalidPort("host:-"), "'host:-': port '-' is not a decimal number"),
            ("host:70000", .portOutOfRange("host:70000"), "'host:70000': port 70000 is out of range 0...65535"),
            ("localhost:99999", .portOutOfRange("localhost:99999"),
             "'localhost:99999': port 99999 is out of range 0...65535"),
            ("host:-1", .portOutOfRange("host:-1"), "'host:-1': port -1 is out of range 0...65535"),
            ("host:99999999999999999999999", .portOutOfRange("host:99999999999999999999999"),
             "port 99999999999999999999999 is out of range"),
            ("[::1]:70000", .portOutOfRange("[::1]:70000"), "'[::1]:70000': port 70000 is out of range 0...65535"),
            ("::1:80", .ambiguousIPv6("::1:80"),
             "'::1:80': an IPv6 address with a port must be written in brackets, as in '[::1]:80'"),
            ("fe80::1", .ambiguousIPv6("fe80::1"), "must be written in brackets"),
            ("[::1:80", .invalidIPAddress("[::1:80"), "'[::1:80': not a numeric IPv4 or IPv6 address"),
        ]
        for (text, expected, sentence) in cases {
            XCTAssertThrowsError(try SocketAddress.splitHostPort(text), "'\(text)'") { error in
                XCTAssertEqual(error as? AddressError, expected, "'\(text)'")
                XCTAssertTrue(String(describing: error).contains(sentence),
                              "'\(text)': \(error) does not contain \(sentence)")
            }
        }
    }

    /// Found by the address fuzz target (Tests/Fuzz): `"[[0]:6"` split into the host `"[0"`, a
    /// host that no `host:port` text gives back. Brackets belong only around a whole IPv6 literal,
    /// so one inside a host is refused, as Go's `net.SplitHostPort` refuses it.
    func testABracketInsideAHostIsRejected() {
        for text in ["[[0]:6", "[a[b]:80", "a]b:80", "a[b:80", "]:80", "x[1]:80"] {
            XCTAssertThrowsError(try SocketAddress.splitHostPort(text), "'\(text)'") { error in
                XCTAssertEqual(error as? AddressError, .invalidIPAddress(text), "'\(text)'")
            }
        }
    }

    /// The fuzz target's property, over every short text made of the characters that matter:
    /// whatever splits, joined again (bracketed when the host has a colon), splits the same way.
    func testEverySplitJoinsBackToTheSameHostAndPort() {
        let alphabet = ["[", "]", ":", "0", "a"]
        var texts = [""]
        var checked = 0
        for _ in 1...6 {
            texts = texts.flatMap { prefix in alphabet.map { prefix + $0 } }
            for text in texts {
                guard let split = try? SocketAddress.splitHostPort(text) else { continue }
                let joined = split.host.contains(":") ? "[\(split.host)]:\(split.port)" : "\(split.host):\(split.port)"
                let again = try? SocketAddress.splitHostPort(joined)
                XCTAssertEqual(again?.host, split.host, "'\(text)' joined as '\(joined)'")
                XCTAssertEqual(again?.port, split.port, "'\(text)' joined as '\(joined)'")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 50)  // 67 of the 19,530 texts split
    }

    func testSplittingTrimsNothing() throws {
        let split = try SocketAddress.splitHostPort(" host:80")
        XCTAssertEqual(split.host, " host")
        XCTAssertThrowsError(try SocketAddress.splitHostPort("host:80 ")) { error in
            XCTAssertEqual(error as? AddressError, .invalidPort("host:80 "))
        }
    }

    // MARK: - Numeric parsing

    func testIPv4LiteralsRoundTripThroughDescription() throws {
        let address = try SocketAddress(parsing: "127.0.0.1:8080")
        XCTAssertEqual(address.description, "127.0.0.1:8080")
        XCTAssertEqual(address.ipAddress, "127.0.0.1")
        XCTAssertEqual(address.port, 8080)
        XCTAssertEqual(address.protocolFamily, AF_INET)
        guard case .v4(let v4) = address else { return XCTFail("not IPv4: \(address)") }
        XCTAssertTrue(v4.octets == (127, 0, 0, 1))
        XCTAssertEqual(address, .loopbackV4(port: 8080))
        XCTAssertEqual(try SocketAddress(parsing: address.description), address)
        XCTAssertEqual(try SocketAddress(parsing: "255.255.255.255:65535").description, "255.255.255.255:65535")
        XCTAssertEqual(SocketAddress.anyV4(port: 0).description, "0.0.0.0:0")
    }

    func testIPv6LiteralsRoundTripThroughDescriptionWithBrackets() throws {
        let address = try SocketAddress(parsing: "[::1]:8080")
        XCTAssertEqual(address.description, "[::1]:8080")
        XCTAssertEqual(address.ipAddress, "::1")
        XCTAssertEqual(address.protocolFamily, AF_INET6)
        XCTAssertEqual(address, .loopbackV6(port: 8080))
        guard case .v6(let v6) = address else { return XCTFail("not IPv6: \(address)") }
        XCTAssertEqual(v6.high, 0)
        XCTAssertEqual(v6.low, 1)

        let long = try SocketAddress(ipAddress: "2001:DB8:0:0:1:0:0:1", port: 443)
        XCTAssertEqual(long.description, "[2001:db8::1:0:0:1]:443")
        XCTAssertEqual(try SocketAddress(parsing: long.description), long)
        XCTAssertEqual(SocketAddress.anyV6(port: 9).description, "[::]:9")
    }

    func testIPv6ZonesParseAsNumbersOrInterfaceNamesAndPrintAsNumbers() throws {
        let numeric = try SocketAddress(parsing: "[fe80::1%1]:80")
        guard case .v6(let v6) = numeric else { return XCTFail("not IPv6: \(numeric)") }
        XCTAssertEqual(v6.scopeID, 1)
        XCTAssertEqual(numeric.description, "[fe80::1%1]:80")
        XCTAssertEqual(try SocketAddress(parsing: numeric.description), numeric)

        let loopbackIndex = if_nametoindex("lo")
        try XCTSkipIf(loopbackIndex == 0, "no interface named lo here")
        let named = try SocketAddress(parsing: "[fe80::1%lo]:80")
        guard case .v6(let namedV6) = named else { return XCTFail("not IPv6: \(named)") }
        XCTAssertEqual(namedV6.scopeID, loopbackIndex)

        XCTAssertThrowsError(try SocketAddress(ipAddress: "fe80::1%no-such-interface0", port: 80)) { error in
            XCTAssertEqual(error as? AddressError, .invalidIPAddress("fe80::1%no-such-interface0"))
        }
    }

    func testNonNumericOrMalformedAddressesAreRejectedByName() {
        for text in ["localhost", "256.1.1.1", "1.2.3", "1.2.3.4.5", "::g", "1.2.3.4%1", "[::1]", " 1.2.3.4"] {
            XCTAssertThrowsError(try SocketAddress(ipAddress: text, port: 80), text) { error in
                XCTAssertEqual(error as? AddressError, .invalidIPAddress(text), text)
                XCTAssertEqual("\(error)", "'\(text)': not a numeric IPv4 or IPv6 address")
            }
        }
        XCTAssertThrowsError(try SocketAddress(ipAddress: "", port: 80)) { error in
            XCTAssertEqual(error as? AddressError, .empty)
        }
        XCTAssertThrowsError(try SocketAddress(ipAddress: "127.0.0.1", port: 65536)) { error in
            XCTAssertEqual(error as? AddressError, .portOutOfRange("65536"))
            XCTAssertEqual("\(error)", "'65536': port 65536 is out of range 0...65535")
        }
        XCTAssertThrowsError(try SocketAddress(parsing: "localhost:80")) { error in
            XCTAssertEqual(error as? AddressError, .invalidIPAddress("localhost"))
        }
    }

    func testSockaddrConversionsRoundTripAndRejectOtherFamilies() throws {
        for text in ["10.1.2.3:4567", "[2001:db8::42]:1", "[fe80::2%3]:65535"] {
            let address = try SocketAddress(parsing: text)
            let copy = address.withSockAddr { sockaddr, length in
                SocketAddress(sockaddr: sockaddr, length: length)
            }
            XCTAssertEqual(copy, address, text)

            var storage = sockaddr_storage()
            address.withSockAddr { sockaddr, length in
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: sockaddr, count: Int(length)))
                }
            }
            XCTAssertEqual(SocketAddress(storage: &storage), address, text)
        }

        var unix = sockaddr_storage()
        unix.ss_family = sa_family_t(AF_UNIX)
        XCTAssertEqual(SocketAddress(storage: &unix)?.description, "(unnamed)")
        var packet = sockaddr_storage()
        packet.ss_family = sa_family_t(AF_PACKET)
        XCTAssertNil(SocketAddress(storage: &packet))

        let v6 = try SocketAddress(parsing: "[::1]:80")
        let truncated = v6.withSockAddr { sockaddr, _ in
            SocketAddress(sockaddr: sockaddr, length: socklen_t(MemoryLayout<sockaddr_in>.size))
        }
        XCTAssertNil(truncated)
    }

    func testTheKernelSockaddrUsesNetworkByteOrder() throws {
        let address = try SocketAddress(parsing: "127.0.0.1:8080")
        guard case .v4(let v4) = address else { return XCTFail("not IPv4") }
        let sin = v4.sockaddrIn
        XCTAssertEqual(sin.sin_port, UInt16(8080).bigEndian)
        XCTAssertEqual(sin.sin_addr.s_addr, UInt32(0x7F00_0001).bigEndian)
    }

    func testEqualAddressesHashEqually() throws {
        let set: Set<SocketAddress> = [
            try SocketAddress(parsing: "127.0.0.1:80"),
            .loopbackV4(port: 80),
            try SocketAddress(parsing: "[::1]:80"),
            try SocketAddress(parsing: "[::1]:81"),
            try SocketAddress(parsing: "[::1%1]:80"),
        ]
        XCTAssertEqual(set.count, 4)
    }

    func testUnresolvableAndMiscellaneousErrorsReadAsSentences() {
        XCTAssertEqual(
            AddressError.unresolvable(host: "nonexistent.invalid", reason: "Name or service not known").description,
            "'nonexistent.invalid': cannot resolve host: Name or service not known")
        XCTAssertEqual(AddressError.unsupportedFamily.description,
                       "unsupported address family: only IPv4, IPv6 and Unix domain sockets are supported")
    }

    // MARK: - Resolving

    func testResolvingLocalhostGivesALoopbackAddressWithThePort() throws {
        let address = try SocketAddress.resolve("localhost:80")
        XCTAssertEqual(address.port, 80)
        XCTAssertTrue(["127.0.0.1", "::1"].contains(address.ipAddress), "\(address)")
    }

    func testResolvingANumericHostNeedsNoLookup() throws {
        XCTAssertEqual(try SocketAddress.resolve("[::1]:443"), .loopbackV6(port: 443))
        XCTAssertEqual(try SocketAddress.resolve(host: "127.0.0.1", port: 0), .loopbackV4(port: 0))
    }

    func testAnInvalidTopLevelDomainIsUnresolvable() {
        XCTAssertThrowsError(try SocketAddress.resolve("nonexistent.invalid:80")) { error in
            guard case .unresolvable(let host, let reason)? = error as? AddressError else {
                return XCTFail("expected .unresolvable, got \(error)")
            }
            XCTAssertEqual(host, "nonexistent.invalid")
            XCTAssertFalse(reason.isEmpty)
            XCTAssertTrue("\(error)".hasPrefix("'nonexistent.invalid': cannot resolve host: "), "\(error)")
        }
    }

    func testResolvingRejectsBadHostPortTextBeforeAnyLookup() {
        XCTAssertThrowsError(try SocketAddress.resolve("localhost:99999")) { error in
            XCTAssertEqual(error as? AddressError, .portOutOfRange("localhost:99999"))
        }
        XCTAssertThrowsError(try SocketAddress.resolve("localhost")) { error in
            XCTAssertEqual(error as? AddressError, .missingPort("localhost"))
        }
        XCTAssertThrowsError(try SocketAddress.resolve(host: "localhost", port: -1)) { error in
            XCTAssertEqual(error as? AddressError, .portOutOfRange("-1"))
        }
    }
}
