import pytest

from tilefleet.errors import JobError
from tilefleet.tiles.manifest import format_manifest, parse_manifest


def test_headerless_rows_as_the_crank_writes_them():
    rows = parse_manifest(b"a/b/one.tif,3\nc/two.tif,1\n")
    assert [(r.path, r.num_bands, r.error) for r in rows] == [
        ("a/b/one.tif", 3, None),
        ("c/two.tif", 1, None),
    ]
    assert [r.line for r in rows] == [1, 2]


def test_bom_blank_lines_and_empty_band_count_are_tolerated():
    rows = parse_manifest("\ufeffone.tif,3\n\n  \ntwo.tif,\n".encode())
    assert [(r.path, r.num_bands, r.error) for r in rows] == [
        ("one.tif", 3, None),
        ("two.tif", None, None),
    ]
    assert rows[1].line == 4


def test_header_in_any_order_with_extra_columns_ignored():
    rows = parse_manifest(b"reason,num_bands,path\nold failure,2,x.tif\n")
    assert (rows[0].path, rows[0].num_bands, rows[0].error) == ("x.tif", 2, None)


def test_header_without_num_bands():
    rows = parse_manifest(b"path\nx.tif\n")
    assert (rows[0].path, rows[0].num_bands) == ("x.tif", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"x.tif,3,extra\n", "expected 2 columns"),
        (b"x.tif\n", "expected 2 columns"),
        (b"x.tif,three\n", "not a positive integer"),
        (b"x.tif,0\n", "not a positive integer"),
        (b",3\n", "empty path"),
        (b"path,num_bands\nx.tif\n", "expected 2 columns as in the header"),
    ],
)
def test_bad_rows_fail_alone_with_their_line(text, message):
    rows = parse_manifest(text + b"good.tif,1\n")
    assert message in rows[0].error
    assert rows[0].error.startswith(f"line {rows[0].line}:")
    assert rows[-1].error is None and rows[-1].path == "good.tif"


@pytest.mark.parametrize("text", [b"", b"\n\n", "\ufeff".encode(), b"path,num_bands\n"])
def test_empty_manifest_is_a_job_error(text):
    with pytest.raises(JobError, match="no rows"):
        parse_manifest(text)


def test_binary_file_is_a_job_error():
    with pytest.raises(JobError, match="not a UTF-8 CSV"):
        parse_manifest(b"II*\x00\xff\xfe\x00\x80garbage")


def test_formatted_failures_are_a_valid_manifest_again():
    text = format_manifest([{"path": "a.tif", "num_bands": "3", "reason": "bad"}], ("reason",))
    rows = parse_manifest(text.encode())
    assert (rows[0].path, rows[0].num_bands, rows[0].error) == ("a.tif", 3, None)


def test_an_unterminated_quote_is_an_invalid_manifest_not_rows_lost():
    with pytest.raises(JobError, match="not valid CSV at line 3: unexpected end of data"):
        parse_manifest(b'a.tif,1\n"b.tif,1\nc.tif,1\n')
    rows = parse_manifest(b'a.tif,1\n"b, c.tif",1\n')  # a quoted comma is fine
    assert [row.path for row in rows] == ["a.tif", "b, c.tif"]
