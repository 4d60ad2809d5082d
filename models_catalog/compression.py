"""Content codings for the models-by-provider answer: Brotli and gzip, chosen from the
request's Accept-Encoding (RFC 9110 12.5.3), compressed once per cached document."""

import gzip

import brotli

IDENTITY = "identity"
# Our preference when the client rates codings equally: Brotli is ~15% smaller.
CODINGS = ("br", "gzip", IDENTITY)
ALIASES = {"x-gzip": "gzip"}  # RFC 9110 8.4.1.3
# Levels chosen for a ~1 MiB JSON document: gzip 6 and Brotli 5 take ~20 and ~10 ms and
# shrink it 11-14x; Brotli 11 would take over a second for another 10%.
GZIP_LEVEL = 6
BROTLI_QUALITY = 5


def _qvalue(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            # Also rejects nan and inf: an unreadable weight is no consent.
            return q if 0 <= q <= 1 else 0.0
    return 1.0


def coding_for(accept_encoding: str | None) -> str:
    """The coding to answer with: the client's highest-rated one that we have, Brotli
    before gzip on a tie. ``q=0`` refuses a coding. Identity without the header, when
    nothing else is acceptable, or when the client rates it highest; a client refusing
    identity too still gets it, as RFC 9110 allows, rather than an error."""
    if not accept_encoding:
        return IDENTITY
    ratings: dict[str, float] = {}
    for entry in accept_encoding.split(","):
        name, _, params = entry.partition(";")
        name = ALIASES.get(name.strip().lower(), name.strip().lower())
        if name:
            ratings[name] = max(ratings.get(name, 0.0), _qvalue(params))
    default = ratings.get("*", 0.0)
    weights = {coding: ratings.get(coding, default) for coding in CODINGS}
    if IDENTITY not in ratings and "*" not in ratings:
        # Acceptable by default, but the client did not ask for it: any coding it named
        # comes first.
        weights[IDENTITY] = 0.0005
    best = max(CODINGS, key=lambda coding: (weights[coding], -CODINGS.index(coding)))
    return best if weights[best] > 0 else IDENTITY


def encode(body: bytes, coding: str) -> bytes:
    """``body`` in one coding (``mtime=0`` keeps gzip output the same for the same data)."""
    if coding == "br":
        return bytes(brotli.compress(body, mode=brotli.MODE_TEXT, quality=BROTLI_QUALITY))
    if coding == "gzip":
        return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    return body


def encode_all(body: bytes) -> dict[str, bytes]:
    """``body`` in every coding we serve, to be cached together."""
    return {coding: encode(body, coding) for coding in CODINGS}
