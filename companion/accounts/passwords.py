"""The password policy (NIST SP 800-63B, OWASP ASVS V2): long enough, and not easy to guess.

No composition rules. A password is refused when it is shorter than 12 characters or when
zxcvbn, which ships a list of the 30,000 most common passwords from breach corpora (plus
English words, names, keyboard walks, repeats and sequences), finds it built from those well
enough to guess in under 10^8 tries. Words of the context (the person's email and name, the
clinic, the app) count as known to the attacker.
"""

from collections.abc import Iterable

from zxcvbn import zxcvbn

from companion.contract.core import encodable
from companion.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 200
# zxcvbn's score 3 ("safely unguessable: moderate protection from offline slow-hash
# attacks") starts at 10^8 guesses; below that a throttled online attacker can still get there.
MIN_GUESSES = 10**8
# zxcvbn refuses longer input; the first 72 characters are a lower bound of the whole.
_SCORED_LENGTH = 72
_APP_WORDS = ("companion", "aftercare", "clinic", "microneedling", "needling")


def problem(password: str, context: Iterable[str | None] = ()) -> str | None:
    """Say what is wrong with a new password, or None when the policy accepts it."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH or not encodable(password):
        # A lone surrogate ("\ud800" in JSON) cannot be hashed: it was a 500.
        return (
            f"Use {MIN_LENGTH} to {MAX_LENGTH} characters, without NUL or unpaired"
            " surrogate characters."
        )
    words = [*_APP_WORDS]
    for text in context:
        if text:
            words.append(text.lower())
            # "ana.lopez@clinic.net" also gives "ana", "lopez" and "clinic".
            words.extend(w for w in _split(text.lower()) if len(w) >= 3)
    result = zxcvbn(password[:_SCORED_LENGTH], user_inputs=words)
    if result["guesses"] >= MIN_GUESSES:
        return None
    if _is_common(result):
        return "This password is on a list of common or breached passwords; choose another."
    return (
        "This password is too easy to guess (common words, names, repeats or sequences);"
        " a few unrelated words make a good one."
    )


def require_good(password: str, context: Iterable[str | None] = ()) -> None:
    """Raise Invalid with the reason in fields.password unless the policy accepts it."""
    reason = problem(password, context)
    if reason:
        raise Invalid({"password": reason})


def _split(text: str) -> list[str]:
    for sep in "@._-+ ":
        text = text.replace(sep, " ")
    return text.split()


def _is_common(result: dict) -> bool:
    return any(
        match.get("pattern") == "dictionary" and match.get("dictionary_name") == "passwords"
        for match in result["sequence"]
    )
