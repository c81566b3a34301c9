#!/usr/bin/env python3
"""A Pheromones Noise initiator written with an independent implementation, for the interop test.

    noise_peer.py PORT EXPECTED_PEER_ID

Connects to 127.0.0.1:PORT, runs Noise_XX_25519_ChaChaPoly_SHA256 (the `noiseprotocol` package)
with the Pheromones prologue and handshake payloads (Ed25519 from `cryptography`), checks that the
server proves EXPECTED_PEER_ID, then sends transport messages of several sizes and checks that
the server echoes every byte. Prints "ok <our peer id>" and exits 0, or prints why and exits 1.
"""
import base64
import hashlib
import socket
import struct
import sys
import warnings

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection

PROLOGUE = b"pheromones-noise/1"
SIGNATURE_PREFIX = b"pheromones-noise-static-key:"
RAW_PUBLIC = serialization.Encoding.Raw, serialization.PublicFormat.Raw
RAW_PRIVATE = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()


def peer_id(identity_public):
    digest = hashlib.sha256(identity_public).digest()
    return "ph1" + base64.b32encode(digest).decode().lower().rstrip("=")


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise RuntimeError(f"the server closed the connection ({len(data)} of {count} bytes read)")
        data += chunk
    return data


def read_frame(sock):
    (length,) = struct.unpack(">H", read_exactly(sock, 2))
    return read_exactly(sock, length)


def send_frame(sock, message):
    sock.sendall(struct.pack(">H", len(message)) + message)


def initiate(sock, expected):
    """Runs the handshake as initiator on `sock` with a new identity, checking that the responder
    proves the peer id `expected`. Returns the connection (in transport mode), our identity key and
    the responder's (32 bytes each; a peer id is `peer_id` of one)."""
    identity = Ed25519PrivateKey.generate()
    static = X25519PrivateKey.generate()
    static_public = static.public_key().public_bytes(*RAW_PUBLIC)
    payload = bytes([1]) + identity.public_key().public_bytes(*RAW_PUBLIC) + identity.sign(SIGNATURE_PREFIX + static_public)

    noise = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, static.private_bytes(*RAW_PRIVATE))
    noise.set_prologue(PROLOGUE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noise.start_handshake()
    handshake = noise.noise_protocol.handshake_state

    send_frame(sock, bytes(noise.write_message(b"")))
    server_payload = bytes(noise.read_message(read_frame(sock)))
    if len(server_payload) != 97 or server_payload[0] != 1:
        raise RuntimeError(f"unexpected server payload of {len(server_payload)} bytes")
    server_identity = server_payload[1:33]
    Ed25519PublicKey.from_public_bytes(server_identity).verify(
        server_payload[33:], SIGNATURE_PREFIX + handshake.rs.public_bytes)
    if peer_id(server_identity) != expected:
        raise RuntimeError(f"the server is {peer_id(server_identity)}, not {expected}")
    send_frame(sock, bytes(noise.write_message(payload)))
    if not noise.handshake_finished:
        raise RuntimeError("the handshake did not finish after three messages")
    return noise, identity.public_key().public_bytes(*RAW_PUBLIC), server_identity


def main():
    port, expected = int(sys.argv[1]), sys.argv[2]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        noise, ours, _ = initiate(sock, expected)
        sent = b""
        for size in (1, 100, 1000, 65519, 5, 40000):
            message = bytes((size + i) % 251 for i in range(size))
            send_frame(sock, noise.encrypt(message))
            sent += message
        echoed = b""
        while len(echoed) < len(sent):
            echoed += noise.decrypt(read_frame(sock))
        if echoed != sent:
            raise RuntimeError("the echo differs from what was sent")
    print("ok", peer_id(ours))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # reported to the Swift test, which shows this output
        print("failed:", repr(error))
        sys.exit(1)
