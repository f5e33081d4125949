"""Hypothesis strategies shared by the fuzz tests."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Fixed seeds and no example database: the same examples on every run and machine (CI).
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# Text a client may send where the API expects a seq (Last-Event-ID, an ETag, last_seq): digits
# that int() takes or refuses (superscripts, other scripts' digits, over 4300 of them), and junk.
_odd_numbers = st.sampled_from(["-1", " 7 ", "+3", "1_0", "0x10", "1e3", "7.0", "²", "①", "٣", "00"])
_huge_numbers = st.integers(19, 5000).map(lambda n: "9" * n)
seq_texts = (
    st.integers(0, 10**6).map(str)
    | _odd_numbers
    | _huge_numbers
    | st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=5)
    | st.text(max_size=12)
)
# The same, limited to what an HTTP header can carry (latin-1, no control characters).
_header_chars = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
header_seq_texts = (
    st.integers(0, 10**6).map(str)
    | _odd_numbers.filter(str.isascii)
    | st.sampled_from(["²", "³", "¹", 'W/"²"', '"1", "²"'])
    | _huge_numbers
    | st.text(_header_chars, max_size=12)
)
