"""Translations (issue 10 §5): `[server] language = "en" | "ru"`, with the standard gettext machinery.

The catalogues are `tuimail/locale/<lang>/LC_MESSAGES/tuimail.po`, compiled to `.mo` beside them
(shipped compiled; `scripts/i18n.sh` re-extracts and compiles them with Babel). Code marks text with
`_("...")` where it is shown, or `N_("...")` where a constant is defined and translated later.
Protocol replies on the wire are never translated: the RFCs want them ASCII.
"""

from __future__ import annotations

import gettext
from pathlib import Path

DOMAIN = "tuimail"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "ru")

_translation: gettext.NullTranslations = gettext.NullTranslations()
language = "en"


def set_language(name: str) -> None:
    """Switch every later `_()` to `name` ("en" or "ru"); English needs no catalogue."""
    global _translation, language
    language = name if name in LANGUAGES else "en"
    if language == "en":
        _translation = gettext.NullTranslations()
    else:
        _translation = gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language], fallback=True)


def _(message: str) -> str:
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a constant for extraction; translate it with `_()` where it is shown."""
    return message

