#!/usr/bin/python3
"""Password-hash vectors for the import tests, made by tools that are not accountsd.

Prints one JSON object a line: {"scheme", "password", "hash"} and, for Firebase's modified
scrypt, the project parameters an import needs. Each scheme comes from a library or a command
that other systems use to make these hashes: passlib (Django, passlib PBKDF2 and scrypt, the
*-crypt family), the bcrypt module, argon2-cffi, mkpasswd (yescrypt), and for Firebase Python's
hashlib.scrypt with `openssl enc -aes-256-ctr`, the way the firebase/scrypt reference computes it.
Usage: make_hash_vectors.py [--cheap]   (--cheap: the lowest costs each scheme allows, for speed)
       make_hash_vectors.py --scrypt-64mib   (one passlib scrypt hash whose work area is 64 MiB)
"""
import base64
import binascii
import hashlib
import json
import os
import subprocess
import sys

import argon2
import bcrypt
from argon2.low_level import Type, hash_secret
from passlib import hash as ph

cheap = "--cheap" in sys.argv
if "--scrypt-64mib" in sys.argv:  # N = 2^16, r = 8: 128 * r * N bytes
    print(json.dumps(dict(scheme="scrypt", password="scrypt pass 18",
                          hash=ph.scrypt.using(rounds=16, block_size=8).hash("scrypt pass 18"))))
    sys.exit(0)


def emit(scheme, password, hashed, **extra):
    print(json.dumps(dict(scheme=scheme, password=password, hash=hashed, **extra)))


def argon(password, kind):
    salt = os.urandom(16)
    return hash_secret(password.encode(), salt, time_cost=2, memory_cost=1024 if cheap else 65536,
                       parallelism=2, hash_len=32, type=kind).decode()


emit("argon2id", "argon-id pass 1", argon("argon-id pass 1", Type.ID))
emit("argon2i", "argon-i pass 2", argon("argon-i pass 2", Type.I))
emit("argon2id-cffi-default", "cffi default 3", argon2.PasswordHasher().hash("cffi default 3"))
rounds = 4 if cheap else 10
emit("bcrypt-2b", "bcrypt pass 4", bcrypt.hashpw(b"bcrypt pass 4", bcrypt.gensalt(rounds)).decode())
emit("bcrypt-2a", "bcrypt pass 5", ph.bcrypt.using(ident="2a", rounds=rounds).hash("bcrypt pass 5"))
emit("bcrypt-2y", "bcrypt pass 6", ph.bcrypt.using(ident="2y", rounds=rounds).hash("bcrypt pass 6"))
emit("sha512-crypt", "sha512 pass 7", ph.sha512_crypt.using(rounds=1000 if cheap else 5000).hash("sha512 pass 7"))
emit("sha256-crypt", "sha256 pass 8", ph.sha256_crypt.using(rounds=1000 if cheap else 5000).hash("sha256 pass 8"))
emit("md5-crypt", "md5 pass 9", ph.md5_crypt.hash("md5 pass 9"))
yes = subprocess.run(["mkpasswd", "-m", "yescrypt", "yescrypt pass 10"], capture_output=True, text=True, check=True)
emit("yescrypt", "yescrypt pass 10", yes.stdout.strip())
iterations = 1000 if cheap else 100000
emit("django-pbkdf2-sha256", "django pass 11", ph.django_pbkdf2_sha256.using(rounds=iterations).hash("django pass 11"))
emit("django-pbkdf2-sha1", "django pass 12", ph.django_pbkdf2_sha1.using(rounds=iterations).hash("django pass 12"))
emit("pbkdf2-sha256", "phc pass 13", ph.pbkdf2_sha256.using(rounds=iterations).hash("phc pass 13"))
emit("pbkdf2-sha512", "phc pass 14", ph.pbkdf2_sha512.using(rounds=iterations).hash("phc pass 14"))
emit("pbkdf2-sha1", "phc pass 15", ph.pbkdf2_sha1.using(rounds=iterations).hash("phc pass 15"))
emit("scrypt", "scrypt pass 16", ph.scrypt.using(rounds=10 if cheap else 14).hash("scrypt pass 16"))

# Firebase: key = scrypt(password, salt + separator, N=2^mem_cost, r=rounds, p=1, 32 bytes);
# hash = AES-256-CTR(key, IV 0) over the project's signer key.
signer_key, separator, salt = os.urandom(64), b"\x07", os.urandom(12)
mem_cost, fb_rounds = (10, 8) if cheap else (14, 8)
password = "firebase pass 17"
key = hashlib.scrypt(password.encode(), salt=salt + separator, n=2 ** mem_cost, r=fb_rounds, p=1, dklen=32,
                     maxmem=2 ** 30)
encrypted = subprocess.run(["openssl", "enc", "-aes-256-ctr", "-nosalt", "-K", binascii.hexlify(key).decode(),
                            "-iv", "00" * 16], input=signer_key, capture_output=True, check=True).stdout
b64 = lambda b: base64.b64encode(b).decode()
emit("firebase-scrypt", password, b64(encrypted), salt=b64(salt), signer_key=b64(signer_key),
     salt_separator=b64(separator), rounds=fb_rounds, mem_cost=mem_cost)
