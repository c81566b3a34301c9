#!/usr/bin/env python3
"""Writes noise-xx-vectors.json: known answers for Noise_XX_25519_ChaChaPoly_SHA256.

An independent implementation computes them: the `noiseprotocol` package (0.3.1) for Noise, and
`cryptography` for the Ed25519 signatures in the Pheromones handshake payloads. Every key is fixed
(derived from a label with SHA-256), so the file is the same on every run:

    pip install noiseprotocol==0.3.1      # brings `cryptography` along
    python3 Tests/PheromonesNoiseTests/Fixtures/generate.py

The Swift tests (NoiseKnownAnswerTests) replay each vector with the same keys and payloads and
compare every message, the handshake hash and every transport ciphertext byte for byte.
"""
import hashlib
import json
import os
import warnings

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection

PROTOCOL = b"Noise_XX_25519_ChaChaPoly_SHA256"
PROLOGUE = b"pheromones-noise/1"
SIGNATURE_PREFIX = b"pheromones-noise-static-key:"
PAYLOAD_VERSION = 1
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def key(label):
    """32 fixed bytes named by `label`."""
    return hashlib.sha256(b"pheromones-kat " + label.encode()).digest()


def x25519_public(private):
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(*RAW)


def payload(identity_seed, static_private):
    """A Pheromones handshake payload: version, Ed25519 identity key, signature of the static key."""
    identity = Ed25519PrivateKey.from_private_bytes(identity_seed)
    signature = identity.sign(SIGNATURE_PREFIX + x25519_public(static_private))
    return bytes([PAYLOAD_VERSION]) + identity.public_key().public_bytes(*RAW) + signature


def connection(initiator, static_private, ephemeral_private, prologue):
    noise = NoiseConnection.from_name(PROTOCOL)
    if initiator:
        noise.set_as_initiator()
    else:
        noise.set_as_responder()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
    noise.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral_private)
    noise.set_prologue(prologue)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fixed ephemeral keys are for tests only": they are
        noise.start_handshake()
    return noise


def vector(name, prologue, payloads, transport, pheromones):
    side = {role: {"static_private": key(f"{name} {role} static"),
                   "ephemeral_private": key(f"{name} {role} ephemeral"),
                   "identity_seed": key(f"{name} {role} identity")}
            for role in ("initiator", "responder")}
    if pheromones:
        payloads = [b"",
                    payload(side["responder"]["identity_seed"], side["responder"]["static_private"]),
                    payload(side["initiator"]["identity_seed"], side["initiator"]["static_private"])]
    initiator = connection(True, side["initiator"]["static_private"], side["initiator"]["ephemeral_private"], prologue)
    responder = connection(False, side["responder"]["static_private"], side["responder"]["ephemeral_private"], prologue)
    # Kept before the last message: the library drops its handshake state when the handshake ends.
    responder_state = responder.noise_protocol.handshake_state

    messages = []
    writer, reader = initiator, responder
    for index, body in enumerate(payloads):
        message = bytes(writer.write_message(body))
        assert bytes(reader.read_message(message)) == body, f"message {index + 1}"
        messages.append(message)
        writer, reader = reader, writer
    assert initiator.handshake_finished and responder.handshake_finished
    assert initiator.get_handshake_hash() == responder.get_handshake_hash()
    assert responder_state.rs.public_bytes == x25519_public(side["initiator"]["static_private"])

    records = []
    for sender, plaintext in transport:
        source, sink = (initiator, responder) if sender == "initiator" else (responder, initiator)
        ciphertext = source.encrypt(plaintext)
        assert sink.decrypt(ciphertext) == plaintext
        records.append({"from": sender, "plaintext": plaintext.hex(), "ciphertext": ciphertext.hex()})

    return {
        "name": name,
        "protocol": PROTOCOL.decode(),
        "prologue": prologue.hex(),
        "pheromones_payloads": pheromones,
        "initiator": {k: v.hex() for k, v in side["initiator"].items()} | {
            "static_public": x25519_public(side["initiator"]["static_private"]).hex()},
        "responder": {k: v.hex() for k, v in side["responder"].items()} | {
            "static_public": x25519_public(side["responder"]["static_private"]).hex()},
        "payloads": [p.hex() for p in payloads],
        "messages": [m.hex() for m in messages],
        "handshake_hash": initiator.get_handshake_hash().hex(),
        "transport": records,
    }


def main():
    transport = [
        ("initiator", b"hello, responder"),
        ("responder", b"hello, initiator"),
        ("initiator", b""),
        ("initiator", bytes(range(256)) * 4),
        ("responder", b"x" * 65519),  # the largest plaintext of a 65,535-byte message
        ("responder", b"last"),
    ]
    vectors = [
        vector("pheromones", PROLOGUE, None, transport, True),
        vector("arbitrary payloads, empty prologue", b"", [b"first", b"second payload", b"third"], transport[:3], False),
    ]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "noise-xx-vectors.json")
    with open(path, "w") as output:
        json.dump({"generator": "noiseprotocol 0.3.1 (Python), cryptography (Ed25519)", "vectors": vectors}, output, indent=1)
        output.write("\n")


if __name__ == "__main__":
    main()
