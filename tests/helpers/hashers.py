"""A password hasher for tests: Django's PBKDF2 at one iteration."""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2(PBKDF2PasswordHasher):
    """Django's own ``pbkdf2_sha256``, one iteration instead of a million (~0.5 s a user
    here, paid by every test that makes one). The hash names its iterations, so a server
    process a test starts (with the real hasher) still checks it, only fast."""

    iterations = 1
