"""ocirun.config.load: bounded reads of regular files, fast decode, one-line errors."""
import json
import os
import signal
import subprocess
import sys

import pytest

from ocirun.config import load
from ocirun.config.load import MAX_SIZE, load_config, parse_config
from ocirun.errors import ConfigError
from support import SHARED

FIXTURES = os.path.join(SHARED, "fixtures")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def no_hang():
    """Anything that blocks (a FIFO opened without O_NONBLOCK) fails instead of hanging."""
    def on_alarm(signum, frame):
        raise TimeoutError("blocked")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def write(tmp_path, data, name="config.json"):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


def error_of(path, **kw):
    with pytest.raises(ConfigError) as exc:
        load_config(path, **kw)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name", ["podman-generated-config.json", "bench-config.json",
                                  "bench-config-noseccomp.json", "seccomp-podman-default.json"])
def test_fixtures_decode_like_json(name):
    path = os.path.join(FIXTURES, name)
    with open(path) as f:
        assert load_config(path) == json.load(f)


def test_symlink_is_followed(tmp_path):
    link = tmp_path / "config.json"
    link.symlink_to(os.path.join(FIXTURES, "bench-config.json"))
    assert load_config(str(link))["hostname"] == "bench"


def test_not_found(tmp_path):
    assert error_of(str(tmp_path / "config.json")) == "config.json: not found"


def test_dangling_symlink(tmp_path):
    (tmp_path / "config.json").symlink_to(tmp_path / "missing")
    assert error_of(str(tmp_path / "config.json")) == "config.json: not found"


def test_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "config.json")
    assert error_of(str(tmp_path / "config.json")) == "config.json: not a regular file"


def test_directory_is_refused(tmp_path):
    (tmp_path / "config.json").mkdir()
    assert error_of(str(tmp_path / "config.json")) == "config.json: not a regular file"


def test_device_is_refused():
    assert error_of("/dev/null", label="config.json") == "config.json: not a regular file"


def test_size_cap(tmp_path):
    p = tmp_path / "config.json"
    with open(p, "wb") as f:
        f.truncate(MAX_SIZE + 1)
    assert error_of(str(p)).startswith("config.json: too large (16777217 bytes")


def test_size_at_cap_is_read(tmp_path):
    body = b'{"a": "' + b"x" * (MAX_SIZE - 10) + b'"}'
    body += b" " * (MAX_SIZE - len(body))
    assert len(body) == MAX_SIZE
    assert len(load_config(write(tmp_path, body))["a"]) == MAX_SIZE - 10


def test_not_readable(tmp_path, monkeypatch):
    def denied(*a, **kw):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(load.posix, "open", denied)
    assert error_of(str(tmp_path / "x.json"), label="config.json") == \
        "config.json: EACCES (Permission denied)"


def test_invalid_utf8(tmp_path):
    assert error_of(write(tmp_path, b'{"a": "\xff\xfe"}')) == "config.json: not valid UTF-8"


def test_lone_surrogate_escape_decodes(tmp_path):
    # Valid JSON, valid UTF-8 on disk; validate() is what refuses such strings.
    assert load_config(write(tmp_path, r'{"a": "\udc80"}'))["a"] == "\udc80"


def test_label_defaults_to_basename(tmp_path):
    assert error_of(str(tmp_path / "process.json")) == "process.json: not found"


BAD_JSON = [
    ("empty", "", "config.json: empty"),
    ("blank", " \n\t ", "config.json: empty"),
    ("missing-value", '{"a": }', "config.json: invalid JSON at line 1 column 7: Expecting value"),
    ("missing-colon", '{\n  "a" 1\n}',
     "config.json: invalid JSON at line 2 column 7: Expecting ':' delimiter"),
    ("missing-comma", '{"a": 1\n "b": 2}',
     "config.json: invalid JSON at line 2 column 2: Expecting ',' delimiter"),
    ("trailing-comma", '{"a": [1, 2,]}',
     "config.json: invalid JSON at line 1 column 13: Expecting value"),
    ("unterminated-string", '{"a": "b',
     "config.json: invalid JSON at line 1 column 7: Unterminated string starting"),
    ("control-char", '{"a": "b\x01"}',
     "config.json: invalid JSON at line 1 column 9: Invalid control character"),
    ("bad-escape", r'{"a": "\q"}',
     "config.json: invalid JSON at line 1 column 8: Invalid \\escape"),
    ("extra-data", '{"a": 1}\n{"b": 2}',
     "config.json: invalid JSON at line 2 column 1: Extra data"),
    ("single-quotes", "{'a': 1}",
     "config.json: invalid JSON at line 1 column 2: Expecting property name enclosed in double"),
    ("bom", '\ufeff{"a": 1}', "config.json: invalid JSON at line 1 column 1: Unexpected UTF-8 BOM"),
    ("nan", '{"a": NaN}', "config.json: invalid JSON: NaN is not allowed"),
    ("infinity", '{"a": [-Infinity]}', "config.json: invalid JSON: -Infinity is not allowed"),
    ("huge-number", '{"a": ' + "9" * 5000 + "}", "config.json: invalid JSON: a number is too long"),
    ("deep-arrays", "[" * 100000 + "]" * 100000, "config.json: nesting too deep"),
    ("deep-objects", '{"a":' * 5000 + "1" + "}" * 5000, "config.json: nesting too deep"),
    ("array", "[1, 2]", "config.json: must hold a JSON object"),
    ("string", '"config"', "config.json: must hold a JSON object"),
    ("null", "null", "config.json: must hold a JSON object"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in BAD_JSON], ids=[c[0] for c in BAD_JSON])
def test_bad_json(tmp_path, text, expected):
    assert error_of(write(tmp_path, text)).startswith(expected)


GOOD_JSON = [
    ("whitespace", ' \r\n\t{"a": 1} \r\n\t', {"a": 1}),
    ("types", '{"s": "x", "i": -3, "f": 1.5, "t": true, "n": null, "l": [], "o": {}}',
     {"s": "x", "i": -3, "f": 1.5, "t": True, "n": None, "l": [], "o": {}}),
    ("unicode", '{"h": "h\\u00e9llo \u2603"}', {"h": "h\u00e9llo \u2603"}),
    ("big-int", '{"hard": 18446744073709551615}', {"hard": 18446744073709551615}),
    ("duplicate-keys-last-wins", '{"a": 1, "a": 2}', {"a": 2}),
    ("moderate-nesting", '{"a":' * 100 + "1" + "}" * 100, None),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in GOOD_JSON],
                         ids=[c[0] for c in GOOD_JSON])
def test_good_json(tmp_path, text, expected):
    value = load_config(write(tmp_path, text))
    if expected is not None:
        assert value == expected
    assert parse_config(text) == value


def test_parse_config_label():
    with pytest.raises(ConfigError) as exc:
        parse_config("[]", "process.json")
    assert str(exc.value) == "process.json: must hold a JSON object"


def run_fresh(code):
    """Run code in an interpreter that has not imported json (pytest has)."""
    prelude = f"import sys; sys.path.insert(0, {ROOT!r})\n"
    out = subprocess.run([sys.executable, "-S", "-c", prelude + code],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_fast_path_does_not_import_json_or_re():
    out = run_fresh(
        "from ocirun.config.load import load_config\n"
        f"load_config({os.path.join(FIXTURES, 'podman-generated-config.json')!r})\n"
        "print('json' in sys.modules, 're' in sys.modules)")
    assert out == "False False"


def test_error_path_without_json_loaded():
    # Without json.decoder in sys.modules the C scanner cannot build its exception and
    # raises SystemError; the loader must still produce the precise message.
    out = run_fresh(
        "from ocirun.config.load import parse_config\n"
        "from ocirun.errors import ConfigError\n"
        "for text in ['{\"a\": }', '{\"a\": \"x\\x01\"}', '{\"a\" 1}', '{\"a\": 1} x',\n"
        "             '[' * 5000]:\n"
        "    try:\n"
        "        parse_config(text)\n"
        "    except ConfigError as e:\n"
        "        print(e)\n")
    assert out.splitlines() == [
        "config.json: invalid JSON at line 1 column 7: Expecting value",
        "config.json: invalid JSON at line 1 column 9: Invalid control character",
        "config.json: invalid JSON at line 1 column 6: Expecting ':' delimiter",
        "config.json: invalid JSON at line 1 column 10: Extra data",
        "config.json: nesting too deep",
    ]
