#!/usr/bin/env python3
"""A peer of a Pheromones P2P node written in Python, for the interop test: the Noise handshake of
`Tests/PheromonesNoiseTests/Interop/noise_peer.py` (the `noiseprotocol` package), then the native
wire inside it, encoded here from the wire's description (`Docs/P2P.md`, `Control.swift`).

    node_peer.py PORT NODE_PEER_ID NODE_NAME NODE_ADDRESS CLAIMED_ADDRESS

Connects to 127.0.0.1:PORT, completes the handshake (the node must prove NODE_PEER_ID), reads the
node's hello and checks it (its name, generation 0 from the accepting side, the 32-byte peer id the
handshake proved, its listening address NODE_ADDRESS), says hello as "python" listening (it claims)
at CLAIMED_ADDRESS, sends `noticereq` with message id 7 and checks the answer: `noticeresp`
correlated with 7, from NODE_NAME. Prints "ok <our peer id>" and exits 0, or prints why and exits 1.
"""
import hashlib
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "PheromonesNoiseTests", "Interop"))
from noise_peer import initiate, peer_id, read_frame, send_frame  # noqa: E402

HELLO = "\0hello"
DATA_PRESENT = 0b0000_0001


def encode_envelope(name, operation, data=None, message_id=0, correlation_id=0, hop_limit=0):
    """A native frame: a 4-byte length, then version 1, flags, hop limit, the two ids, the two
    UInt16-length-prefixed strings and, if flagged, the UInt32-length-prefixed data."""
    name, operation = name.encode(), operation.encode()
    flags = DATA_PRESENT if data is not None else 0
    payload = struct.pack(">BBBQQ", 1, flags, hop_limit, message_id, correlation_id)
    payload += struct.pack(">H", len(name)) + name + struct.pack(">H", len(operation)) + operation
    if data is not None:
        payload += struct.pack(">I", len(data)) + data
    return struct.pack(">I", len(payload)) + payload


def decode_envelope(payload):
    version, flags, hop_limit, message_id, correlation_id = struct.unpack_from(">BBBQQ", payload)
    if version != 1 or flags & ~DATA_PRESENT:
        raise RuntimeError(f"unexpected envelope header: version {version}, flags {flags}")
    offset = struct.calcsize(">BBBQQ")
    strings = []
    for _ in range(2):
        (length,) = struct.unpack_from(">H", payload, offset)
        strings.append(payload[offset + 2:offset + 2 + length].decode())
        offset += 2 + length
    data = None
    if flags & DATA_PRESENT:
        (length,) = struct.unpack_from(">I", payload, offset)
        data = payload[offset + 4:offset + 4 + length]
        offset += 4 + length
    if offset != len(payload):
        raise RuntimeError(f"{len(payload) - offset} bytes after the envelope")
    return {"name": strings[0], "operation": strings[1], "data": data,
            "message_id": message_id, "correlation_id": correlation_id, "hop_limit": hop_limit}


class Transport:
    """The native wire's frames in the plaintext stream of Noise transport messages."""

    def __init__(self, sock, noise):
        self.sock, self.noise, self.buffer = sock, noise, b""

    def receive(self):
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack_from(">I", self.buffer)
                if len(self.buffer) >= 4 + length:
                    payload, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
                    return decode_envelope(payload)
            self.buffer += bytes(self.noise.decrypt(read_frame(self.sock)))

    def send(self, frame):
        send_frame(self.sock, bytes(self.noise.encrypt(frame)))


def main():
    port, node_id, node_name, node_address, claimed = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        noise, ours, node_identity = initiate(sock, node_id)
        transport = Transport(sock, noise)

        hello = transport.receive()
        if hello["operation"] != HELLO or hello["name"] != node_name or hello["data"] is None:
            raise RuntimeError(f"the node's first message is not its hello: {hello}")
        data = hello["data"]
        (generation,) = struct.unpack_from(">Q", data)
        proven = hashlib.sha256(node_identity).digest()
        if generation != 0 or data[8:40] != proven or data[40:].decode() != node_address:
            raise RuntimeError(f"the node's hello does not match: generation {generation}, "
                               f"peer id {data[8:40].hex()} (proven {proven.hex()}), address {data[40:]!r}")

        # Our hello: dial generation 1, the peer id our handshake proved, where we claim to listen.
        our_digest = hashlib.sha256(ours).digest()
        transport.send(encode_envelope("python", HELLO, struct.pack(">Q", 1) + our_digest + claimed.encode()))
        transport.send(encode_envelope("python", "noticereq", message_id=7))
        while True:
            answer = transport.receive()
            if answer["correlation_id"] == 7:
                break
            if not answer["operation"].startswith("\0"):
                raise RuntimeError(f"unexpected message before the answer: {answer}")
        if answer["operation"] != "noticeresp" or answer["name"] != node_name:
            raise RuntimeError(f"unexpected answer: {answer}")
    print("ok", peer_id(ours))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # reported to the Swift test, which shows this output
        print("failed:", repr(error))
        sys.exit(1)
