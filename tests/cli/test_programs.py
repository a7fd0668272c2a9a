from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepphoenix.cli import cli
from deepphoenix.seeds import seed_source
from tests.cli.conftest import Invoke


def _all_commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("command", [(), *_all_commands(cli)], ids=lambda c: " ".join(c) or "-")
def test_every_command_has_help(invoke: Invoke, command: tuple[str, ...]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout


def test_seed_prints_the_paper_snippet(invoke: Invoke) -> None:
    result = invoke("seed")
    assert result.exit_code == 0
    assert result.stdout == seed_source("paper")
    assert 'from_pretrained("Salesforce/codet5-small")' in result.stdout
    assert invoke("seed", "tiny").stdout == seed_source("tiny")
    assert set(invoke("seed", "--list").stdout.split()) == {
        "gpt", "paper", "tiny", "tiny-train",
        "quine-coords", "quine-onehot", "quine-rnn", "quine-source"}


def test_sites_lists_the_five_t5_sites(invoke: Invoke, paper: Path) -> None:
    result = invoke("sites", paper)
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()[1:6]]
    assert names == ["num_layers", "num_decoder_layers", "d_ff", "num_heads", "d_kv"]
    data = json.loads(invoke("sites", paper, "--json").stdout)
    assert [s["name"] for s in data["sites"]] == names
    assert data["defaults"] == {"d_model": 512}


def test_sites_with_inferred_grammar(invoke: Invoke, paper: Path) -> None:
    data = json.loads(invoke("sites", paper, "--grammar", "infer", "--json").stdout)
    assert [s["name"] for s in data["sites"]] == [
        "num_layers", "num_decoder_layers", "d_ff", "num_heads", "d_kv"]


def test_mutate_writes_500_distinct_variants_that_all_check(invoke: Invoke, paper: Path,
                                                            tmp_path: Path) -> None:
    result = invoke("mutate", paper, "-n", "500", "--seed", "1", "--out", "d")
    assert result.exit_code == 0, result.stderr
    files = sorted((tmp_path / "d").glob("*.py"))
    assert len(files) == 500
    assert len({f.read_text() for f in files}) == 500
    assert paper.read_text() == seed_source("paper")  # never written in place
    from deepphoenix.grammar import load_grammar
    from deepphoenix.mutator import canonical_hash, parse_program

    t5 = load_grammar("t5")
    for path in files:
        program = parse_program(path.read_text(), t5)
        assert t5.check(program.values, program.present).ok
        assert path.stem == canonical_hash(path.read_text())
    for path in files[:5]:  # and through the CLI itself
        assert invoke("check", path).exit_code == 0


def test_mutate_says_why_fewer(invoke: Invoke, paper: Path, tmp_path: Path) -> None:
    result = invoke("mutate", paper, "-n", "500", "--max-edits", "1", "--out", "d")
    assert result.exit_code == 0
    assert len(list((tmp_path / "d").glob("*.py"))) == 106  # every single-edit neighbour
    assert "only 106 distinct variants" in result.stderr
    assert "raise --max-edits" in result.stderr


def test_mutate_prints_diffs_and_is_seeded(invoke: Invoke, paper: Path) -> None:
    first = invoke("mutate", paper, "-n", "3", "--seed", "7")
    assert first.exit_code == 0
    assert first.stdout.count(f"--- {paper}\n") == 3 and "+config." in first.stdout
    assert invoke("mutate", paper, "-n", "3", "--seed", "7").stdout == first.stdout
    assert invoke("mutate", paper, "-n", "3", "--seed", "8").stdout != first.stdout


def test_check_reports_the_broken_invariant(invoke: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(seed_source("paper").replace("num_heads = 8", "num_heads = 7"))
    result = invoke("check", "bad.py")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: bad.py: invariant: d_kv == d_model // num_heads broken: "
        "d_kv=64, d_model=512, num_heads=7"
    )
    data = json.loads(invoke("check", bad, "--json").stdout)
    assert data["ok"] is False and data["outcome"] == "invariant"


def test_check_passes_the_seed(invoke: Invoke, paper: Path) -> None:
    result = invoke("check", paper)
    assert result.exit_code == 0 and "ok" in result.stdout


def test_diff_reports_edits_and_ungrounded_changes(invoke: Invoke, paper: Path,
                                                   tmp_path: Path) -> None:
    other = tmp_path / "b.py"
    other.write_text("import os\n" + seed_source("paper").replace("num_heads = 8",
                     "num_heads = 7").replace("d_kv = 64", "d_kv = 73"))
    result = invoke("diff", paper, other)
    assert result.exit_code == 1  # an ungrounded change is a verdict, like diff(1)'s
    assert result.stdout.splitlines() == [
        "num_heads: 8 -> 7", "d_kv: 64 -> 73 (derived)", "ungrounded: added `import os`"]
    as_json = invoke("diff", paper, other, "--json")
    assert as_json.exit_code == 1
    data = json.loads(as_json.stdout)
    assert data["grounded"] is False
    assert data["edits"] == [{"site": "num_heads", "value": 7}, {"site": "d_kv", "value": 73}]


def test_grammars_lists_and_shows(invoke: Invoke) -> None:
    listing = invoke("grammars")
    assert listing.exit_code == 0
    names = [line.split()[0] for line in listing.stdout.splitlines() if line.strip()]
    assert {"t5", "t5-train", "gpt", "nanogpt", "llama"} <= set(names)
    assert names[-1] == "infer"
    shown = invoke("grammars", "t5")
    assert "d_kv: int" in shown.stdout and "derive d_model // num_heads" in shown.stdout
    nanogpt = invoke("grammars", "nanogpt").stdout
    assert ("n_head: int the file's value /4..x4, within 1..inf, step ±1, moves with n_embd"
            in nanogpt)
    assert "n_embd: int the file's value /4..x4, multiple of 32" in nanogpt
    assert "bias: bool True or False, resample, optional" in nanogpt


BAD_GRAMMAR = "[sites.a]\nkind = 'int'\nmin = 9\nmax = 1\n"


@pytest.mark.parametrize(
    ("args", "setup", "code", "message"),
    [
        (["sites", "missing.py"], None, 1, "missing.py: no such file"),
        (["sites", "adir"], "dir", 1, "adir: is a directory"),
        (["sites", "f.py"], b"\x89PNG\x00\x01", 1, "f.py: is a binary file"),
        (["sites", "f.py"], b"x = '\xff\xfe'\n", 1, "f.py: is not UTF-8 text"),
        (["sites", "f.py"], b"x = (\n", 1, "f.py:1:5: syntax error: '(' was never closed"),
        (["sites", "f.py"], b"", 1, "f.py: is empty"),
        (["sites", "f.py"], b"   \n\n", 1, "f.py: is empty"),
        (["sites", "f.py"], b"x = 1\n", 1, "finds no sites in f.py"),
        (["sites", "f.py", "-g", "g.toml"], b"a = 1\n", 1, "g.toml:3: key 'sites.a.min'"),
        (["sites", "f.py", "-g", "t6"], b"a = 1\n", 1, "Unknown grammar 't6'. Did you mean 't5'?"),
        (["mutate", "f.py", "-n", "0"], b"config.d_ff = 128\n", 2, "'-n': 0 is not in the range"),
        (["mutate", "f.py", "-n", "-3"], b"config.d_ff = 128\n", 2, "'-n': -3 is not in the"),
        (["mutate", "f.py", "-n", "x"], b"config.d_ff = 128\n", 2, "'x' is not a valid integer"),
        (["mutate", "f.py", "--out", "f.py"], b"config.d_ff = 128\n", 2, "is a file"),
        (["check", "f.py"], b"x = (\n", 1, "syntax error"),
        (["diff", "f.py", "missing.py"], b"config.d_ff = 128\n", 1, "missing.py: no such file"),
        (["seed", "paperr"], None, 1, "Unknown seed 'paperr'. Did you mean 'paper'?"),
        (["sites"], None, 2, "Missing argument 'FILE'"),
        (["frobnicate"], None, 2, "No such command 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(invoke: Invoke, tmp_path: Path, args: list[str],
                                                setup: object, code: int, message: str) -> None:
    if setup == "dir":
        (tmp_path / "adir").mkdir()
    elif isinstance(setup, bytes):
        (tmp_path / "f.py").write_bytes(setup)
    (tmp_path / "g.toml").write_text(BAD_GRAMMAR)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial output


def test_sites_prints_the_domain_resolved_against_the_file(invoke: Invoke,
                                                           tmp_path: Path) -> None:
    from tests.grammar.test_relative import shrunk_nanogpt

    (tmp_path / "model.py").write_text(shrunk_nanogpt(), encoding="utf-8")
    rows = {line.split()[0]: line for line in
            invoke("sites", "model.py", "--grammar", "nanogpt").stdout.splitlines()}
    assert "1..6 (2 ±4)" in rows["n_layer"]
    assert "32..256, multiple of 32 (64 /4..x4)" in rows["n_embd"]
    assert "64..256, multiple of 64 (64 x1..x4)" in rows["block_size"]
    data = json.loads(invoke("sites", "model.py", "-g", "nanogpt", "--json").stdout)
    found = {s["name"]: s["domain"] for s in data["sites"]}
    assert found["n_head"] == "1..8 (2 /4..x4)"


RELATIVE_GRAMMAR = "[sites.w]\nselect = 'name:w'\nkind = 'int'\nrelative = { times = 4 }\n"


@pytest.mark.parametrize("command", [
    ["sites", "f.py"], ["mutate", "f.py"], ["check", "f.py"],
    ["run", "--source", "f.py", "--proposer", "random", "--run-dir", "r"],
])
@pytest.mark.parametrize(("source", "message"), [
    ("w = 0\n", "site 'w' of grammar 'rel' has a domain /4..x4 of the file's value, which "
     "needs a value above 0, but f.py has 0"),
    ("w = None\n", "site 'w' of grammar 'rel': ['name:w'] matches no literal"),
])
def test_a_relative_domain_that_cannot_resolve_is_one_line_before_anything_runs(
        invoke: Invoke, tmp_path: Path, command: list[str], source: str, message: str) -> None:
    (tmp_path / "rel.toml").write_text(RELATIVE_GRAMMAR)
    (tmp_path / "f.py").write_text(source)
    result = invoke(*command, "--grammar", "rel.toml")
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message.replace("['name:w']", "name:w").replace("f.py", "f.py" if command[0] != "run"
                                                           else "seed") in lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.py", "rel.toml"]  # no run dir


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "deepphoenix", "seed", "tiny"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout == seed_source("tiny")


def test_import_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, deepphoenix, deepphoenix.cli, deepphoenix.testing, "
            "deepphoenix.proposers; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"


GRAMMAR_FILES = Path(__file__).parent.parent / "grammar" / "files"


def test_grammars_template_writes_a_starter_toml_that_reads_back(invoke: Invoke,
                                                                  tmp_path: Path) -> None:
    model = GRAMMAR_FILES / "nanogpt_model.py"
    result = invoke("grammars", "--template", model)
    assert result.exit_code == 0, result.stderr
    assert "# -- model shape --" in result.stdout
    assert "(a flag that changes what the program computes" in result.stdout  # is_causal
    written = invoke("grammars", "--template", model, "--out", "g.toml")
    assert written.exit_code == 0 and (tmp_path / "g.toml").read_text() == result.stdout
    from deepphoenix.grammar import read_grammar_file
    from deepphoenix.mutator import infer

    grammar = read_grammar_file(tmp_path / "g.toml")
    inferred = infer(model.read_text()).grammar
    assert sorted(grammar.sites, key=lambda s: s.name) == sorted(inferred.sites,
                                                                 key=lambda s: s.name)
    sites = invoke("sites", model, "--grammar", "g.toml")
    assert sites.exit_code == 0, sites.stderr


def test_sites_all_lists_what_infer_skipped(invoke: Invoke) -> None:
    model = GRAMMAR_FILES / "nanogpt_model.py"
    result = invoke("sites", model, "--grammar", "infer", "--all")
    assert result.exit_code == 0, result.stderr
    assert "skipped by infer" in result.stdout
    assert "F.cross_entropy(ignore_index=…) = -1  (an id or index)" in result.stdout
    data = json.loads(invoke("sites", model, "--grammar", "infer", "--all", "--json").stdout)
    assert {s["reason"] for s in data["skipped"]} >= {"a dimension or axis argument"}
    plain = invoke("sites", model, "--grammar", "infer")
    assert "skipped by infer" not in plain.stdout


def test_check_and_mutate_with_a_config_override(invoke: Invoke, tmp_path: Path) -> None:
    train, config = GRAMMAR_FILES / "nanogpt_train.py", GRAMMAR_FILES / "nanogpt_config.py"
    result = invoke("check", train, "--with", config, "-g", "nanogpt")
    assert result.exit_code == 0, result.stderr
    assert "ok (17 sites, 2 invariants hold)" in result.stdout
    data = json.loads(invoke("mutate", train, "--with", config, "-g", "nanogpt", "-n", "5",
                             "--max-edits", "1", "--json").stdout)
    assert len(data["variants"]) == 5
    for record in data["variants"]:
        site = record["edits"].split("=")[0]
        # n_layer is set in both files: an edit of it lands in the override only.
        if site == "n_layer":
            assert record["changed"] == [str(config)]
    out = invoke("mutate", train, "--with", config, "-g", "nanogpt", "-n", "2", "--out", "d")
    assert out.exit_code == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "d" / "1").iterdir()) == [
        "nanogpt_config.py", "nanogpt_train.py"]
    bad = invoke("check", train, "--with", config, "-g", "infer")
    assert bad.exit_code != 0 and "--with needs a grammar" in bad.stderr
