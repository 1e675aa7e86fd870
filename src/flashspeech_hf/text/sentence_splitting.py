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
"""Sentence splitting for long-form synthesis: normalized text -> sentences of a bounded length.

The text is split *after* [`normalize_text`], so that the periods of abbreviations (`Dr.`, `e.g.`, `U.S.A.`) and of
numbers (`3.14`, `$5.50`) are gone or spelled out before a period is taken as the end of a sentence. Every cut lies at
whitespace (or after an ideographic full stop `。`), so no word is ever cut.
"""

import re

from .normalization import drop_unspeakable, normalize_text

__all__ = ["DEFAULT_MAX_SENTENCE_CHARACTERS", "SENTENCE_END_MARKS", "CLAUSE_MARKS", "split_sentences"]

DEFAULT_MAX_SENTENCE_CHARACTERS = 200
"""Default longest piece (in normalized characters, about 12 s of speech): longer sentences are cut at clauses."""
SENTENCE_END_MARKS = ".?!。"
"""Marks that end a sentence (after normalization, which maps `…`, `!!` and fullwidth marks onto these)."""
CLAUSE_MARKS = ",;:"
"""Marks after which an over-long sentence may be cut."""

_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+|(?<=。)\s*")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+")


def _pack(pieces: list[str], max_characters: int) -> list[str]:
    """Greedily joins consecutive `pieces` with spaces into chunks of at most `max_characters` (a longer piece stays
    whole)."""
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= max_characters:
            chunks[-1] += " " + piece
        else:
            chunks.append(piece)
    return chunks


def _bound(sentence: str, max_characters: int) -> list[str]:
    """Cuts an over-long sentence at clause marks, and clauses still too long at spaces."""
    if len(sentence) <= max_characters:
        return [sentence]
    pieces = []
    for clause in _CLAUSE_BREAK.split(sentence):
        pieces.extend(_pack(clause.split(), max_characters) if len(clause) > max_characters else [clause])
    return _pack(pieces, max_characters)


def split_sentences(
    text: str,
    language: str = "en-us",
    normalize: bool = True,
    max_characters: int = DEFAULT_MAX_SENTENCE_CHARACTERS,
) -> list[str]:
    """
    Splits a text into sentences for long-form synthesis, after the tokenizer's text normalization.

    The text is cut into paragraphs at blank lines; each paragraph is normalized with
    [`~flashspeech_hf.text.normalization.normalize_text`] (as the tokenizer does: numbers and abbreviations spelled
    out, punctuation reduced to `, . ? ! ; :`) and cut after every `.`, `?` or `!` followed by a space (and after
    `。`). A paragraph that does not end with one of these marks (a heading, a line without punctuation) gets a
    final `.`, so that it ends like a sentence. A sentence longer than `max_characters` is cut after its clause
    marks (`, ; :`), and a clause still longer at spaces, into pieces of at most `max_characters` that are packed
    greedily; a single word longer than that is kept whole. Pieces with nothing the voice can pronounce (e.g. only
    emoji) are kept attached to the piece before them.

    Normalization is idempotent, so the tokenizer gives each piece exactly the phonemes it would give it inside the
    whole text.

    Args:
        text (`str`): The text, of any length.
        language (`str`, defaults to `"en-us"`): The espeak-ng language of the tokenizer (English is verbalized).
        normalize (`bool`, defaults to `True`): Normalize first, as a tokenizer with `normalize=True` does; with
            `False` only whitespace is collapsed.
        max_characters (`int`, defaults to 200): Longest piece, in characters of normalized text.

    Returns:
        `list[str]`: The normalized sentences (or pieces of sentences) in order; never empty.

    Raises:
        `ValueError`: If the text is empty or has nothing to pronounce, or `max_characters` is not a positive integer.

    Examples:

    ```python
    >>> from flashspeech_hf.text import split_sentences

    >>> split_sentences("Dr. Smith arrived at 5 p.m. on Friday. He paid $3.50!\\n\\nChapter Two")
    ['Doctor Smith arrived at five P M on Friday.', 'He paid three dollars and fifty cents!', 'Chapter Two.']
    ```
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a `str`, got {type(text).__name__}.")
    if isinstance(max_characters, bool) or not isinstance(max_characters, int) or max_characters < 1:
        raise ValueError(f"`max_characters` must be a positive integer, got {max_characters!r}.")
    if not text.strip():
        raise ValueError("The text is empty or whitespace-only: give the text to speak.")
    chunks: list[str] = []
    leading = ""  # unpronounceable pieces before the first pronounceable one
    for paragraph in _PARAGRAPH_BREAK.split(text):
        clean = normalize_text(paragraph, language=language) if normalize else " ".join(paragraph.split())
        if not clean:
            continue
        if clean[-1] not in SENTENCE_END_MARKS:
            clean = clean.rstrip(CLAUSE_MARKS) + "."
        for sentence in _SENTENCE_BREAK.split(clean):
            for piece in _bound(sentence, max_characters):
                if not re.search(r"\w", drop_unspeakable(piece, language)[0]):
                    if chunks:
                        chunks[-1] += " " + piece
                    else:
                        leading += piece + " "
                else:
                    chunks.append(leading + piece)
                    leading = ""
    if not chunks:
        raise ValueError(f"The text has no pronounceable content: {text[:80]!r}.")
    return chunks
