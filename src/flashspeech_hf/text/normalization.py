# Copyright 2026 The flashspeech-hf Authors. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Text normalization applied before grapheme-to-phoneme conversion.

Two layers:

- a language-independent clean-up (Unicode NFKC, quotes, dashes, brackets and ellipses mapped to the pause marks
  `, . ? ! ; :`, runs of pause marks collapsed, whitespace collapsed), applied for every language;
- English verbalization (numbers, ordinals, decimals, years, times, currency, percentages and common abbreviations),
  applied only when the language is an English espeak-ng voice (its code starts with `"en"`). Other languages keep
  their digits, which espeak-ng reads in that language.

Every step is a pure function of the text, so that training data and inference see exactly the same normalization.
"""

import functools
import re
import unicodedata

import regex

__all__ = [
    "PAUSE_MARKS",
    "cardinal_to_words",
    "drop_unspeakable",
    "language_scripts",
    "normalize_text",
    "ordinal_to_words",
    "year_to_words",
]

PAUSE_MARKS = ",.?!;:"
"""The punctuation kept through normalization and phonemization; each mark becomes a pause token."""

# Strongest first: a run of pause marks collapses to the strongest one it holds.
_PAUSE_PRIORITY = "?!.;:,"

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand")]
_IRREGULAR_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}

# symbol: (singular unit, plural unit, singular subunit, plural subunit)
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "sen", "sen"),
}

# Abbreviations that always take a period; matched case-insensitively at a word start.
_ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miz",
    "jr": "junior",
    "sr": "senior",
    "prof": "professor",
    "capt": "captain",
    "gen": "general",
    "lt": "lieutenant",
    "col": "colonel",
    "sgt": "sergeant",
    "gov": "governor",
    "rev": "reverend",
    "hon": "honorable",
    "mt": "mount",
    "ft": "fort",
    "ave": "avenue",
    "blvd": "boulevard",
    "dept": "department",
    "approx": "approximately",
    "vs": "versus",
    "co": "company",
    "inc": "incorporated",
    "ltd": "limited",
}
# Abbreviations read differently before a capitalized name (a title) and elsewhere (a street name).
_TITLE_OR_PLACE = {"st": ("saint", "street"), "dr": ("doctor", "drive")}


# Unicode scripts (besides Latin, which every espeak-ng voice reads) of the espeak-ng languages written in another
# script, by language code before the first "-". Languages not listed are read in Latin script only.
_LANGUAGE_SCRIPTS = {
    **dict.fromkeys(("ba", "be", "bg", "cv", "kk", "ky", "mk", "nog", "ru", "sr", "tt", "uk", "uz"), ("Cyrillic",)),
    **dict.fromkeys(("el", "grc"), ("Greek",)),
    **dict.fromkeys(("cmn", "yue", "hak", "zh"), ("Han", "Bopomofo")),
    "ja": ("Han", "Hiragana", "Katakana"),
    "ko": ("Hangul", "Han"),
    **dict.fromkeys(("ar", "fa", "ur", "sd", "ug", "ps"), ("Arabic",)),
    "he": ("Hebrew",),
    **dict.fromkeys(("hi", "mr", "ne", "kok", "sa", "mai"), ("Devanagari",)),
    **dict.fromkeys(("bn", "as", "bpy"), ("Bengali",)),
    "gu": ("Gujarati",),
    "pa": ("Gurmukhi",),
    "or": ("Oriya",),
    "ta": ("Tamil",),
    "te": ("Telugu",),
    "kn": ("Kannada",),
    "ml": ("Malayalam",),
    "si": ("Sinhala",),
    "th": ("Thai",),
    "ka": ("Georgian",),
    **dict.fromkeys(("hy", "hyw"), ("Armenian",)),
    "am": ("Ethiopic",),
    **dict.fromkeys(("my", "shn"), ("Myanmar",)),
    "chr": ("Cherokee",),
}
# Pictographs (emoji) and the invisible pieces of emoji sequences: joiners, variation selectors, skin tones, flags, tags.
# ©, ® and ™ are excluded: espeak-ng reads them as words ("copyright").
_PICTOGRAPHS = (
    r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\u200d\ufe0e\ufe0f\u20e3"
    r"\U000E0020-\U000E007F--[\u00a9\u00ae\u2122]]"
)


def language_scripts(language: str) -> tuple[str, ...]:
    """
    The Unicode scripts whose letters the espeak-ng voice of `language` pronounces: Latin, plus the language's own
    script for languages written in another (`"ru"`: Cyrillic, `"cmn"`: Han and Bopomofo, ...).

    Args:
        language (`str`): An espeak-ng language code.

    Returns:
        `tuple[str, ...]`: Unicode script names.
    """
    return ("Latin", *_LANGUAGE_SCRIPTS.get(language.lower().split("-")[0], ()))


@functools.lru_cache(maxsize=16)
def _unspeakable_pattern(language: str) -> "regex.Pattern":
    scripts = "".join(rf"\p{{Script={name}}}" for name in language_scripts(language))
    # letters and marks of other scripts (with the marks that follow them), or pictographs
    return regex.compile(
        rf"(?V1)(?:[[\p{{L}}\p{{M}}]--[{scripts}\p{{Common}}\p{{Inherited}}]]\p{{M}}*|{_PICTOGRAPHS})+"
    )


def drop_unspeakable(text: str, language: str = "en-us") -> tuple[str, list[str]]:
    """
    Removes what the espeak-ng voice of `language` cannot pronounce: letters of scripts other than the language's
    (see [`language_scripts`]; CJK or Cyrillic in English text) and pictographs (emoji). espeak-ng would otherwise
    read them out as English words ("Chinese letter", "grinning face") or switch to another language's phonemes.
    Each dropped run becomes a space. Digits, punctuation and other symbols are kept (the normalizer and espeak-ng
    read them).

    Args:
        text (`str`): Raw text.
        language (`str`, defaults to `"en-us"`): The espeak-ng language code of the voice.

    Returns:
        `(text, dropped)`: the text without them, and the dropped characters in order of first appearance (each once;
        invisible joiners and variation selectors are not listed).

    Examples:

    ```python
    >>> from flashspeech_hf.text.normalization import drop_unspeakable

    >>> drop_unspeakable("Hello 😀 world 中文!")
    ('Hello   world  !', ['😀', '中', '文'])
    ```
    """
    dropped: dict[str, None] = {}

    def replace(match: "regex.Match") -> str:
        for char in match.group(0):
            if unicodedata.category(char) not in ("Cf", "Mn", "Me") and not 0xFE00 <= ord(char) <= 0xFE0F:
                dropped[char] = None
        return " "

    return _unspeakable_pattern(language).sub(replace, text), list(dropped)


def cardinal_to_words(number: int) -> str:
    """
    Spell out an integer in English (US style: no "and" after hundreds).

    Args:
        number (`int`):
            The integer to verbalize. Negative numbers are read with "minus"; numbers of a quadrillion or more are
            read digit by digit.

    Returns:
        `str`: The number in words, e.g. `"twenty-one"` or `"one thousand two hundred thirty-four"`.

    Examples:

    ```python
    >>> from flashspeech_hf.text.normalization import cardinal_to_words

    >>> cardinal_to_words(1234)
    'one thousand two hundred thirty-four'
    ```
    """
    if not isinstance(number, int) or isinstance(number, bool):
        raise TypeError(f"`number` must be an `int`, got {type(number).__name__}.")
    if number < 0:
        return "minus " + cardinal_to_words(-number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {cardinal_to_words(rest)}" if rest else "")
    if number >= 10**15:
        return " ".join(_ONES[int(digit)] for digit in str(number))
    for scale, name in _SCALES:
        if number >= scale:
            head, rest = divmod(number, scale)
            return f"{cardinal_to_words(head)} {name}" + (f" {cardinal_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(number: int) -> str:
    """
    Spell out an ordinal number in English.

    Args:
        number (`int`):
            A non-negative integer.

    Returns:
        `str`: The ordinal in words, e.g. `"twenty-first"` for 21 or `"one hundredth"` for 100.
    """
    if number < 0:
        raise ValueError(f"Ordinals must be non-negative, got {number}.")
    words = cardinal_to_words(number)
    cut = max(words.rfind(" "), words.rfind("-")) + 1
    head, last = words[:cut], words[cut:]
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + last


def year_to_words(year: int) -> str:
    """
    Read a year the way English speakers do.

    Args:
        year (`int`):
            A year from 1000 to 9999.

    Returns:
        `str`: e.g. `"nineteen ninety-nine"` for 1999, `"nineteen oh five"` for 1905, `"nineteen hundred"` for 1900,
        `"two thousand five"` for 2005.
    """
    if not 1000 <= year <= 9999:
        raise ValueError(f"`year_to_words` reads four-digit years, got {year}.")
    if year % 1000 == 0 or 2000 <= year < 2010:
        return cardinal_to_words(year)
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{cardinal_to_words(century)} hundred"
    if rest < 10:
        return f"{cardinal_to_words(century)} oh {_ONES[rest]}"
    return f"{cardinal_to_words(century)} {cardinal_to_words(rest)}"


def _digits_to_words(digits: str) -> str:
    return " ".join(_ONES[int(digit)] for digit in digits)


def _decimal_to_words(number: str) -> str:
    integer, _, fraction = number.partition(".")
    words = cardinal_to_words(int(integer)) if integer else "zero"
    return f"{words} point {_digits_to_words(fraction)}" if fraction else words


def _verbalize_currency(match: re.Match) -> str:
    symbol, amount, scale = match.group("symbol"), match.group("amount"), match.group("scale")
    unit, units, subunit, subunits = _CURRENCIES[symbol]
    if scale:
        return f"{_decimal_to_words(amount)} {scale.lower()} {units}"
    integer, _, fraction = amount.partition(".")
    if len(fraction) > 2:
        return f"{_decimal_to_words(amount)} {units}"
    whole = int(integer) if integer else 0
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if whole or not cents:
        parts.append(f"{cardinal_to_words(whole)} {unit if whole == 1 else units}")
    if cents:
        parts.append(f"{cardinal_to_words(cents)} {subunit if cents == 1 else subunits}")
    return " and ".join(parts)


def _verbalize_time(match: re.Match) -> str:
    hours, minutes, meridiem = int(match.group(1)), int(match.group(2)), match.group(3)
    if minutes == 0:
        words = f"{cardinal_to_words(hours)} o'clock" if not meridiem else cardinal_to_words(hours)
    elif minutes < 10:
        words = f"{cardinal_to_words(hours)} oh {_ONES[minutes]}"
    else:
        words = f"{cardinal_to_words(hours)} {cardinal_to_words(minutes)}"
    if meridiem:
        words += f" {meridiem[0].upper()} M"
    return words


def _match_case(source: str, word: str) -> str:
    return word.capitalize() if source[:1].isupper() else word


def _verbalize_title_or_place(match: re.Match) -> str:
    title, place = _TITLE_OR_PLACE[match.group(1).lower()]
    following = match.group(2)
    # Before a capitalized word ("Dr. Smith", "St. Louis") it is a title; elsewhere ("Elm St.") a place.
    word = title if following and following[0].isupper() else place
    return _match_case(match.group(1), word) + (f" {following}" if following else "")


def _normalize_english(text: str) -> str:
    text = re.sub(r"\be\.g\.", "for example", text, flags=re.IGNORECASE)
    text = re.sub(r"\bi\.e\.", "that is", text, flags=re.IGNORECASE)
    # Dotted acronyms ("U.S.A.") are spelled letter by letter; their periods are not sentence ends.
    text = re.sub(
        r"\b(?:[A-Za-z]\.){2,}(?=\s|$|[^\w])",
        lambda m: " ".join(m.group(0).replace(".", "").upper()) + " ",
        text,
    )
    # Abbreviations.
    text = re.sub(r"\b(st|dr)\.(?:\s+(\w+))?", _verbalize_title_or_place, text, flags=re.IGNORECASE)
    text = re.sub(r"\betc\.(?=\s*$)", "et cetera.", text, flags=re.IGNORECASE)
    text = re.sub(r"\betc\.", "et cetera", text, flags=re.IGNORECASE)
    text = re.sub(r"\bno\.\s*(?=\d)", "number ", text, flags=re.IGNORECASE)
    text = re.sub(
        r"\b(" + "|".join(_ABBREVIATIONS) + r")\.",
        lambda m: _match_case(m.group(1), _ABBREVIATIONS[m.group(1).lower()]),
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"#\s*(?=\d)", "number ", text)
    # A bare four-digit number from 1100 to 2099 is read as a year ("1999"); "1,999", "$1999", "1999.5" and "1999%"
    # are not years.
    text = re.sub(
        r"(?<![\d$£€¥.,])(?<![$£€¥]\s)\b(?:1[1-9]|20)\d{2}\b(?![.,]\d|\s?%)",
        lambda m: year_to_words(int(m.group(0))),
        text,
    )
    # Thousands separators: "1,000,000" -> "1000000".
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    # Currency before any other number rule: "$5.50", "£3", "$2.5 million".
    text = re.sub(
        r"(?P<symbol>[$£€¥])\s?(?P<amount>\d+(?:\.\d+)?|\.\d+)(?:\s?(?P<scale>thousand|million|billion|trillion)\b)?",
        _verbalize_currency,
        text,
        flags=re.IGNORECASE,
    )
    text = re.sub(r"(\d+(?:\.\d+)?)\s?%", lambda m: f"{m.group(1)} percent", text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\b(?:\s?([AaPp])\.?[Mm]\b\.?)?", _verbalize_time, text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: ordinal_to_words(int(m.group(1))), text, flags=re.IGNORECASE)
    text = re.sub(r"(?<![\w.])-(?=\d)", "minus ", text)
    text = re.sub(r"\d*\.\d+", lambda m: _decimal_to_words(m.group(0)), text)
    # Letters glued to digits ("abc123", "3pm") are read apart.
    text = re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])", " ", text)
    text = re.sub(r"\d+", lambda m: cardinal_to_words(int(m.group(0))), text)
    # Symbols read aloud.
    text = re.sub(r"\s*&\s*", " and ", text)
    text = re.sub(r"\s*\+\s*", " plus ", text)
    text = re.sub(r"\s*=\s*", " equals ", text)
    text = re.sub(r"\s*@\s*", " at ", text)
    return text


def _clean_punctuation(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2018", "'").replace("\u2019", "'").replace("\u02bc", "'")
    # Quotes are dropped; an apostrophe survives only inside a word ("don't").
    text = re.sub(r"[\"“”„‟«»‹›`´]", " ", text)
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    # Brackets and dashes become short pauses, ellipses a full stop.
    text = re.sub(r"[()\[\]{}]", " , ", text)
    text = re.sub(r"\s*[\u2012-\u2015]\s*|\s+-+\s+|--+", ", ", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"[¡¿]", " ", text)
    # `_` is the phone separator of the phonemizer call, other symbols here carry no sound.
    text = re.sub(r"[_*~^|\\<>]", " ", text)
    text = re.sub(r"\s+", " ", text)
    # No space before a pause mark; a run of marks collapses to the strongest one.
    text = re.sub(r"\s+(?=[" + re.escape(PAUSE_MARKS) + "])", "", text)
    text = re.sub(
        r"[" + re.escape(PAUSE_MARKS) + r"](?:\s*[" + re.escape(PAUSE_MARKS) + r"])+",
        lambda m: next(mark for mark in _PAUSE_PRIORITY if mark in m.group(0)),
        text,
    )
    # Pauses at the very start of a text carry nothing.
    text = re.sub(r"^[\s" + re.escape(PAUSE_MARKS) + r"]+", "", text)
    return text.strip()


def normalize_text(text: str, language: str = "en-us") -> str:
    """
    Normalize raw text before phonemization.

    For every language the text is NFKC-normalized; quotes are dropped (apostrophes inside words are kept); brackets and
    dashes become `,`; ellipses become `.`; runs of pause marks (`, . ? ! ; :`) collapse to the strongest one
    (`? ! . ; : ,` in that order); whitespace is collapsed. For English (`language` starting with `"en"`) numbers,
    ordinals (`21st`), decimals (`3.14`), years (a bare 4-digit number from 1100 to 2099), times (`3:30 pm`),
    currency (`$5.50`, `£3`, `$2 million`), percentages and common abbreviations (`Mr.`, `Dr.`, `St.`, `etc.`, `e.g.`,
    dotted acronyms) are spelled out.

    Args:
        text (`str`):
            The raw text.
        language (`str`, *optional*, defaults to `"en-us"`):
            The espeak-ng language code the text will be phonemized with.

    Returns:
        `str`: The normalized text. It may be empty (e.g. for `"   "`); the tokenizer reports that as an error.

    Examples:

    ```python
    >>> from flashspeech_hf.text.normalization import normalize_text

    >>> normalize_text("Dr. Smith paid $5.50 on May 21st, 1999!!")
    'Doctor Smith paid five dollars and fifty cents on May twenty-first, nineteen ninety-nine!'
    ```
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a `str`, got {type(text).__name__}.")
    text = unicodedata.normalize("NFKC", text)
    if language.lower().startswith("en"):
        text = _normalize_english(text)
    return _clean_punctuation(text)
