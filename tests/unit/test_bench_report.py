"""ocirun bench: statistics, ratios, the text table, the JSON document and the SVG."""
import json
import subprocess
import sys

import pytest

from support import REPO

from ocirun.bench import report


@pytest.mark.parametrize("values, expected", [
    ([], None),
    ([3.0], 3.0),
    ([5.0, 1.0, 3.0], 3.0),
    ([4.0, 1.0, 3.0, 2.0], 2.5),
    ([2, 2, 2, 9], 2.0),
])
def test_median(values, expected):
    assert report.median(values) == expected


def test_median_does_not_sort_its_argument():
    values = [3.0, 1.0, 2.0]
    report.median(values)
    assert values == [3.0, 1.0, 2.0]


def test_summarize_fields_and_rounding():
    row = report.summarize("x", [1.0, 2.0, 4.0], user_ms=1.23456789, note="n", skip=None)
    assert row == {"name": "x", "n": 3, "median_ms": 2.0, "min_ms": 1.0, "max_ms": 4.0,
                   "user_ms": 1.2346, "note": "n"}
    assert report.summarize("empty", []) == {"name": "empty", "n": 0}


def test_ratio_and_matrix():
    assert report.ratio(10.0, 4.0) == 2.5
    assert report.ratio(None, 4.0) is None
    assert report.ratio(1.0, 0.0) is None
    rows = [{"name": "a", "median_ms": 30.0}, {"name": "b", "median_ms": 10.0},
            {"name": "c", "na": "failed"}]
    m = report.ratios(rows)
    assert m == {"a": {"b": 3.0}, "b": {"a": 0.333}}


@pytest.mark.parametrize("v, text", [
    (None, "-"), (0.0421, "0.042"), (1.234, "1.23"), (12.345, "12.3"), (123.4, "123")])
def test_fmt_ms(v, text):
    assert report.fmt_ms(v) == text


def test_table_alignment_and_na():
    rows = [report.summarize("ocirun", [10.0, 12.0, 11.0], user_ms=5.0, sys_ms=2.0),
            {"name": "crun", "na": "failed: exit status 1"}]
    lines = report.table(rows).splitlines()
    assert lines[0].split() == ["what", "median", "ms", "min-max", "ms", "n", "user", "ms",
                                "sys", "ms", "note"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["ocirun", "11.0", "10.0-12.0", "3", "5.00", "2.00"]
    assert "n/a" in lines[3] and lines[3].rstrip().endswith("failed: exit status 1")
    # right-aligned numbers: the median column ends at the same offset on every line
    end = len(lines[0].split("median ms")[0]) + len("median ms")
    assert lines[2][:end].endswith("11.0") and lines[3][:end].endswith("n/a")


def test_ratio_table():
    text = report.ratio_table({"a": {"b": 3.0}, "b": {"a": 0.333}})
    lines = text.splitlines()
    assert lines[1].split() == ["a", "1.00x", "3.00x"]
    assert lines[2].split() == ["b", "0.33x", "1.00x"]
    assert report.ratio_table({"a": {}}) == ""


def _result():
    rows = [report.summarize("ocirun", [30.0, 32.0], group="no seccomp", user_ms=10.0,
                             sys_ms=5.0),
            report.summarize("runc", [20.0, 22.0], group="no seccomp", user_ms=4.0, sys_ms=8.0)]
    return {"version": report.VERSION, "host": {"cpus": 2},
            "sections": {
                "names": {"title": "names", "rows": [{"name": "ocirun tables (dict)",
                                                      "na": "seccomp package not installed"}]},
                "seccomp": {"title": "seccomp", "rows": [], "skipped": "no profile"},
                "run": {"title": "run", "rows": rows, "ratios": {"no seccomp": report.ratios(rows)},
                        "notes": ["a note"],
                        "phases": [{"phase": "interpreter start (cpu time)", "ms": 9.0,
                                    "total_ms": 9.0},
                                   {"phase": "exit", "ms": 3.0, "total_ms": 12.0}]}}}


def test_render_sections():
    text = report.render(_result())
    assert "n/a (no profile)" in text
    assert "seccomp package not installed" in text
    assert "-- no seccomp" in text and "ratios of medians:" in text
    assert "1.48x" in text  # 31 / 21
    assert "note: a note" in text


def test_json_roundtrip():
    r = _result()
    assert json.loads(report.to_json(r)) == r


def test_svg_is_well_formed():
    import xml.dom.minidom
    from ocirun.bench import plot
    doc = xml.dom.minidom.parseString(plot.svg(_result()))
    texts = [t.firstChild.data for t in doc.getElementsByTagName("text") if t.firstChild]
    assert "interpreter start (cpu time)" in texts and "runc" in texts


def test_bundle_config_shape():
    from ocirun.bench import bundle
    cfg = bundle.config()
    assert cfg["process"]["args"] == ["/bin/true"]
    assert [n["type"] for n in cfg["linux"]["namespaces"]] == ["pid", "network", "ipc", "uts",
                                                               "mount"]
    assert {r["type"]: r["hard"] for r in cfg["process"]["rlimits"]} == {
        "RLIMIT_NOFILE": 4096, "RLIMIT_NPROC": 4096}
    assert "seccomp" not in cfg["linux"]
    assert bundle.config(seccomp={"defaultAction": "SCMP_ACT_ALLOW"})["linux"]["seccomp"]
    from ocirun.config.validate import validate
    validate(cfg)


def test_bench_is_not_on_the_run_path():
    code = (f"import sys; sys.path.insert(0, {REPO!r}); "
            "from ocirun.cli import main, run, create; "
            "import ocirun.lifecycle.run, ocirun.lifecycle.create; "
            "print([m for m in sys.modules if m.startswith('ocirun.bench')])")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_seccomp_figures_read_as_notes_not_a_dict():
    from ocirun.bench.seccomp import _figure_notes
    fig = {"ours_exec_avg": 11.34, "ours_exec_max": 19, "lib_exec_avg": 231.8,
           "lib_exec_max": 696, "ours_attach_ms": 0.236, "lib_attach_ms": 1.239,
           "ours_cold_compile_ms": 5.4}
    notes = _figure_notes(fig)
    assert notes[0].endswith("ocirun 11.3 average, 19 max; libseccomp 231.8 average, 696 max")
    assert "ocirun 0.236 ms, libseccomp 1.239 ms" in notes[1]
    assert notes[2].endswith("ocirun 5.40 ms")
    sec = {"title": "seccomp", "rows": [], "notes": notes, "extra": {"figures": fig}}
    text = report.render({"sections": {"seccomp": sec}})
    assert "note: the filter's own run time" in text
    assert "{'" not in text  # the raw dict is for --json only


def test_launcher_interpreter_from_the_shebang(tmp_path):
    from ocirun.bench.run import launcher_interpreter
    cases = {"py": f"#!{sys.executable} -IS\nimport sys\n", "sh": "#!/bin/sh\nexit 0\n",
             "none": "import sys\n", "gone": "#!/nonexistent/python3 -IS\n", "empty": ""}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert launcher_interpreter(str(tmp_path / "py")) == sys.executable
    for name in ("sh", "none", "gone", "empty", "missing"):
        assert launcher_interpreter(str(tmp_path / name)) is None, name


def test_shares_pair_each_ocirun_row_with_its_counterpart():
    from ocirun.bench.run import INTERPRETER_PASS, shares
    group = [{"name": "ocirun", "median_ms": 16.0}, {"name": "runc", "median_ms": 40.0},
             {"name": "crun (private cgroup2)", "median_ms": 6.5},
             {"name": "ocirun (private cgroup2)", "median_ms": 12.0},
             {"name": INTERPRETER_PASS, "median_ms": 7.0},
             {"name": "interpreter (start only)", "median_ms": 5.5}]
    assert shares(group) == [("ocirun", 9.0, "runc", 40.0),
                             ("ocirun (private cgroup2)", 5.0, "crun (private cgroup2)", 6.5)]
    # no interpreter row (or it failed): no share
    assert shares(group[:4]) == []
    assert shares(group[:4] + [{"name": INTERPRETER_PASS, "na": "failed"}]) == []
    # a unified host: crun runs like ocirun
    assert shares([{"name": "ocirun", "median_ms": 12.0}, {"name": "crun", "median_ms": 6.0},
                   {"name": INTERPRETER_PASS, "median_ms": 7.5}]) == [("ocirun", 4.5, "crun", 6.0)]
