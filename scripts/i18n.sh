#!/bin/sh
# Re-extract the translatable strings with Babel, merge them into the catalogues and compile them.
# Run from the repository root after changing any _("...") / N_("...") text, then translate the new
# entries in tuimail/locale/ru/LC_MESSAGES/tuimail.po (tests/test_i18n.py fails until they are).
set -e
PY=${PYTHON:-.venv/bin/python}
$PY -m babel.messages.frontend extract -k _ -k N_ -k ngettext:1,2 --no-location --sort-output \
    --project tuimail -o tuimail/locale/tuimail.pot tuimail
$PY scripts/i18n_extra.py  # key bindings' descriptions and the settings' docstrings
$PY -m babel.messages.frontend update -i tuimail/locale/tuimail.pot -d tuimail/locale -D tuimail -l ru --no-fuzzy-matching
$PY -m babel.messages.frontend compile -d tuimail/locale -D tuimail -l ru --statistics
