"""Encryption of provider keys at rest (SPEC section 6).

AES-256-GCM with a fresh 96-bit nonce per value. The AES key is derived with
HKDF-SHA256 from FIELD_ENCRYPTION_KEY, or from SECRET_KEY when that is unset.
A stored value is a text token:

    v1:<urlsafe-base64(key_id || nonce || ciphertext-and-tag)>

`key_id` is a short fingerprint of the derived key, so that after a rotation
(new FIELD_ENCRYPTION_KEY, old one moved to FIELD_ENCRYPTION_OLD_KEYS) each
token is opened with the key that sealed it, and `rotate_encryption_key` can
tell which tokens still need re-encrypting.
"""

import base64
import binascii
import functools
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils.translation import gettext_lazy as _

VERSION = "v1"
KEY_ID_BYTES = 4
NONCE_BYTES = 12
# Fixed labels: changing either makes every stored key unreadable.
_HKDF_SALT = b"switchboard"
_HKDF_INFO_KEY = b"switchboard provider credential key v1"
_HKDF_INFO_KEY_ID = b"switchboard provider credential key id v1"
_DAMAGED = _("A stored API key is damaged or in an unknown format; enter the key again.")


class KeyDecryptionError(Exception):
    """A stored value cannot be opened: wrong key, rotated away, or damaged.

    The message is translated and names neither the key nor the plaintext, so
    it is safe to show to the user or to log.
    """

    def __init__(self, message=None) -> None:
        self.message = message or _(
            "A stored API key could not be decrypted. The server's encryption key may have changed; "
            "enter the key again."
        )
        super().__init__(str(self.message))

    def __str__(self) -> str:
        return str(self.message)


@dataclass(frozen=True)
class _DerivedKey:
    key_id: bytes
    aead: AESGCM

    def __repr__(self) -> str:  # the AESGCM object holds the key
        return f"_DerivedKey(key_id={self.key_id.hex()})"


@functools.lru_cache(maxsize=16)
def _derive(material: str) -> _DerivedKey:
    """HKDF once per key material; settings rarely change, requests are many."""

    def hkdf(info: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=_HKDF_SALT, info=info).derive(
            material.encode()
        )

    # The fingerprint comes from its own HKDF output, so publishing it in every
    # token says nothing about the AES key.
    return _DerivedKey(key_id=hkdf(_HKDF_INFO_KEY_ID, KEY_ID_BYTES), aead=AESGCM(hkdf(_HKDF_INFO_KEY, 32)))


def _current_key() -> _DerivedKey:
    return _derive(settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY)


def _keyring() -> list[_DerivedKey]:
    """The current key first, then every key still accepted for reading."""
    keys = [_current_key()]
    for material in [*settings.FIELD_ENCRYPTION_OLD_KEYS, settings.SECRET_KEY]:
        # SECRET_KEY stays readable: values stored before FIELD_ENCRYPTION_KEY
        # was first set were sealed with it.
        if material and (key := _derive(material)) not in keys:
            keys.append(key)
    return keys


def encrypt(plaintext: str) -> str:
    key = _current_key()
    nonce = os.urandom(NONCE_BYTES)
    header = VERSION.encode() + key.key_id
    sealed = key.aead.encrypt(nonce, plaintext.encode(), header)
    payload = base64.urlsafe_b64encode(key.key_id + nonce + sealed).decode().rstrip("=")
    return f"{VERSION}:{payload}"


def _unpack(token: str) -> tuple[bytes, bytes, bytes]:
    version, sep, payload = token.partition(":")
    if version != VERSION or not sep:
        raise KeyDecryptionError(_DAMAGED)
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise KeyDecryptionError(_DAMAGED) from None
    if len(raw) < KEY_ID_BYTES + NONCE_BYTES + 16:
        raise KeyDecryptionError(_DAMAGED)
    return raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES], raw[KEY_ID_BYTES + NONCE_BYTES :]


def decrypt(token: str) -> str:
    key_id, nonce, sealed = _unpack(token)
    header = VERSION.encode() + key_id
    # Four bytes of fingerprint can collide, so try every key that matches.
    for key in _keyring():
        if key.key_id != key_id:
            continue
        try:
            return key.aead.decrypt(nonce, sealed, header).decode()
        except InvalidTag:
            continue
    raise KeyDecryptionError()


def needs_rotation(token: str) -> bool:
    """True when the token was not sealed with the current key."""
    key_id, _nonce, _sealed = _unpack(token)
    return key_id != _current_key().key_id
