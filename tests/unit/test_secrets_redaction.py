"""Log redaction: whole values, values split across writes and lines, tracebacks, return values."""

import json
import random
import traceback

import pytest

from secrets_vault.redaction import MASK, Redactor, StreamRedactor

TOKEN = "tok_9f8e7d6c5b4a"
PASSWORD = "hunter2-but-longer"


def test_a_whole_value_is_masked_wherever_it_appears():
    redact = Redactor([TOKEN, PASSWORD]).redact
    assert redact(f"token={TOKEN}") == "token=****"
    assert redact(f"{PASSWORD}{PASSWORD} and {TOKEN}.") == "**** and ****."
    assert redact("nothing secret here") == "nothing secret here"


def test_values_shorter_than_four_characters_are_left_alone():
    redact = Redactor(["abc", "", "x", "wxyz"]).redact
    assert redact("abc x wxyz") == "abc x ****"


def test_the_longest_value_wins_and_overlapping_values_are_masked_as_one():
    redact = Redactor(["abcd", "abcdefgh", "efghijkl"]).redact
    assert redact("..abcdefgh..") == "..****.."
    # "abcdefgh" and "efghijkl" overlap: no character of either may remain.
    assert redact("..abcdefghijkl..") == "..****.."
    assert redact("abcdabcd") == "****"


def test_a_value_split_across_two_writes_is_still_caught():
    stream = StreamRedactor([TOKEN])
    out = stream.feed(f"header line\nkey: {TOKEN[:5]}") + stream.feed(f"{TOKEN[5:]} trailer\n") + stream.flush()
    assert out == "header line\nkey: **** trailer\n"


def test_the_stream_holds_back_the_longest_value_and_room_for_invisible_characters():
    stream = StreamRedactor([TOKEN])
    hold = len(TOKEN) - 1 + 64
    emitted = stream.feed("x" * 200)
    assert emitted == "x" * (200 - hold)
    assert stream.flush() == "x" * hold


def test_a_value_spread_over_many_tiny_writes_is_masked_once():
    stream = StreamRedactor([PASSWORD])
    text = f"a{PASSWORD}b{PASSWORD}"
    out = "".join(stream.feed(char) for char in text) + stream.flush()
    assert out == "a****b****"


def test_a_stream_without_secrets_passes_chunks_straight_through():
    stream = StreamRedactor([])
    assert stream.feed("abc") == "abc" and stream.flush() == ""


def test_streaming_gives_the_same_result_as_redacting_the_whole_text_for_any_split():
    rng = random.Random(5)
    values = ["aaaa", "aaab", "abcabc", "bcab", "cabcabca", "zzzzzzzzzz"]
    redactor = Redactor(values)
    for _ in range(400):
        text = "".join(rng.choice("abcz") for _ in range(rng.randint(0, 60)))
        stream = StreamRedactor(redactor=redactor)
        out, position = [], 0
        while position < len(text):
            size = rng.randint(1, 7)
            out.append(stream.feed(text[position:position + size]))
            position += size
        out.append(stream.flush())
        assert "".join(out) == redactor.redact(text), text


def test_a_multi_line_value_is_masked_when_the_output_is_redacted_line_by_line():
    key = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0cH1mZ9bW3P2q8ZrT+k=\n-----END KEY-----"
    redact = Redactor([key]).redact
    printed = f"loaded key:\n{key}\ndone\n"
    lines = [redact(line) for line in printed.splitlines()]
    assert lines == ["loaded key:", "****", "****", "****", "****", "done"]
    assert redact(printed) == "loaded key:\n****\ndone\n"


def test_a_value_split_across_two_lines_of_output_is_caught_in_the_stream():
    value = "first-half\nsecond-half"
    stream = StreamRedactor([value])
    out = stream.feed("a first-") + stream.feed("half\nsecond") + stream.feed("-half b\n") + stream.flush()
    assert out == "a **** b\n"


def test_a_value_in_a_traceback_is_masked():
    secrets = {"API_KEY": PASSWORD, "QUOTED": "it's \"quoted\" \u2713"}

    def handler(event, context):
        if event.get("lookup"):
            raise KeyError(secrets["API_KEY"])  # shown as repr: KeyError: 'hunter2-but-longer'
        raise ValueError(f"login failed for {secrets['QUOTED']!r} with {secrets['API_KEY']}")

    redact = Redactor(secrets.values()).redact
    for event in ({"lookup": True}, {}):
        try:
            handler(event, None)
        except Exception:
            text = traceback.format_exc()
        assert PASSWORD in text
        redacted = redact(text)
        assert PASSWORD not in redacted and "quoted" not in redacted, redacted
        assert "Traceback (most recent call last)" in redacted and "in handler" in redacted
    assert redact(f"KeyError: {PASSWORD!r}") == "KeyError: '****'"
    assert redact(f"KeyError: {repr(repr(secrets['QUOTED']))}").count("quoted") == 0


def test_a_value_in_a_return_value_is_masked_in_its_json():
    tricky = 'line1\n"line2" \\ é'
    returned = json.dumps({"token": TOKEN, "nested": [tricky], "note": f"made with {TOKEN}"})
    redacted = Redactor([TOKEN, tricky]).redact(returned)
    assert json.loads(redacted) == {"token": MASK, "nested": [MASK], "note": f"made with {MASK}"}
    unicode_json = json.dumps({"v": tricky}, ensure_ascii=False)
    assert json.loads(Redactor([tricky]).redact(unicode_json)) == {"v": MASK}


def test_the_redactor_never_shows_values_in_its_repr():
    assert TOKEN not in repr(Redactor([TOKEN]))


def test_non_text_passes_through_unchanged():
    redactor = Redactor([TOKEN])
    assert redactor.redact(None) is None and redactor.redact("") == ""


def test_long_values_and_many_secrets_are_still_exact():
    """(What preparing and applying a redactor costs is bench/redaction.py's.)"""
    rng = random.Random(1)
    big = "".join(rng.choice("abcdefghij") for _ in range(64 * 1024))
    values = [big] + [f"secret-{i:03d}-{rng.random()}" for i in range(99)]
    redactor = Redactor(values)
    assert redactor.redact(f"<{big}>") == "<****>"
    assert redactor.redact(f"<{big[:-1]}>") == f"<{big[:-1]}>"  # a prefix is not the value
    assert redactor.redact(f"x {values[42]} y") == "x **** y"


@pytest.mark.parametrize("value", ["a.b*c+d?", "(group)|[set]", "back\\slash\\d"])
def test_regex_characters_in_values_are_literal(value):
    assert Redactor([value]).redact(f"<{value}> abcd") == "<****> abcd"


@pytest.mark.parametrize("invisible", ["\r", "\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad", "\x00", "\u202e"])
def test_a_value_with_an_inserted_invisible_character_is_still_masked(invisible):
    redactor = Redactor([TOKEN])
    forged = TOKEN[:7] + invisible + TOKEN[7:]
    assert redactor.redact(f"token={forged}!") == "token=****!"
    assert redactor.redact(f"{TOKEN} and {forged}") == "**** and ****"
    # Several inserted, and the value at the very start and end of the text.
    many = invisible.join(TOKEN)
    assert redactor.redact(many) == "****"


def test_invisible_characters_alone_change_nothing():
    redactor = Redactor([TOKEN])
    assert redactor.redact("progress\r50%\u200b done") == "progress\r50%\u200b done"


def test_a_value_that_itself_holds_a_carriage_return_is_masked_with_and_without_it():
    value = "line-one\r\nline-two"
    redactor = Redactor([value])
    assert redactor.redact(f"<{value}>") == "<****>"
    assert redactor.redact("<line-one\nline-two>") == "<****>"


def test_a_value_with_an_invisible_character_split_across_writes_is_caught_in_the_stream():
    stream = StreamRedactor([TOKEN])
    forged = TOKEN[:5] + "\u200b" + TOKEN[5:]
    out = stream.feed(f"key: {forged[:6]}") + stream.feed(f"{forged[6:]} end") + stream.flush()
    assert out == "key: **** end"


def test_a_redactor_learns_more_values_without_forgetting_any():
    first = Redactor([TOKEN])
    assert first.with_values([TOKEN, "abc"]) is first  # nothing new (a short value is never masked)
    both = first.with_values([PASSWORD])
    assert both.redact(f"{TOKEN} {PASSWORD}") == "**** ****"
    assert first.redact(PASSWORD) == PASSWORD  # the first one is left as it was
    assert PASSWORD not in repr(both) and TOKEN not in repr(both)
