"""Commands on programs: seed, grammars, sites, mutate, check, diff."""

from __future__ import annotations

import random
from pathlib import Path

import click

from deepphoenix.cli._common import (
    echo_json,
    fail,
    grammar_option,
    json_option,
    load_program,
)
from deepphoenix.errors import SourceError
from deepphoenix.grammar import format_value, grammar_names, load_grammar
from deepphoenix.mutator import diff_text, read_source, unified_diff
from deepphoenix.proposers import DistinctVariants, RandomProposer
from deepphoenix.seeds import seed_names, seed_source
from deepphoenix.store_io import write_text_atomic

__all__ = ["check", "diff", "grammars", "mutate", "seed", "sites"]


@click.command()
@click.argument("name", required=False, default="paper", metavar="[NAME]")
@click.option("--list", "list_names", is_flag=True, help="List the built-in seeds.")
def seed(name: str, list_names: bool) -> None:
    """Print a built-in seed source (default: paper).

    'paper' is the paper's Table 1 T5 snippet; 'tiny' the same shape with a 128-wide model
    for CPU runs; 'tiny-train' the tiny T5 with its own learning dynamics and train();
    'gpt' a small GPT language model (the code-lm task). All run offline.
    """
    if list_names:
        for known in seed_names():
            click.echo(known)
        return
    click.echo(seed_source(name), nl=False)


@click.command()
@click.argument("name", required=False)
@json_option
def grammars(name: str | None, as_json: bool) -> None:
    """List the registered grammars, or show one grammar's sites and invariants."""
    if name is None:
        rows = [load_grammar(n) for n in grammar_names()]
        if as_json:
            echo_json([{"name": g.name, "description": g.description} for g in rows])
            return
        width = max(len(g.name) for g in rows)
        for g in rows:
            click.echo(f"{g.name:<{width}}  {g.description}")
        click.echo(f"{'infer':<{width}}  infer a grammar from the file at hand")
        return
    g = load_grammar(name)
    if as_json:
        echo_json(g.to_dict())
        return
    click.echo(f"{g.name}: {g.description}")
    for spec in g.sites:
        d = spec.to_dict()
        rule = f"derive {d['derive']}" if "derive" in d else (
            d["mutation"] if d["mutable"] else "fixed")
        default = f", default {format_value(spec.default)}" if spec.default is not None else ""
        click.echo(f"  {spec.name}: {spec.kind} {d['domain']}, {rule}{default}  "
                   f"[{' | '.join(d['select'])}]")
    for inv in g.invariants:
        click.echo(f"  invariant: {inv.text}")


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@grammar_option
@json_option
def sites(file: str, grammar: str, as_json: bool) -> None:
    """List the grammar's sites in FILE: value, line, kind, domain and mutation."""
    program = load_program(file, grammar)
    g = program.grammar
    absent = {s.name: s.default for s in g.sites if s.name not in program.present}
    if as_json:
        echo_json({
            "file": file,
            "grammar": g.name,
            "hash": program.hash,
            "sites": [{**site.to_dict(), **_spec_fields(g.site(site.name))}
                      for site in program.sites],
            "defaults": absent,
        })
        return
    rows = [("site", "value", "line", "kind", "domain", "mutation", "binding")]
    for site in program.sites:
        spec = g.site(site.name)
        fields = _spec_fields(spec)
        rows.append((site.name, site.literal, str(site.line), spec.kind.value, fields["domain"],
                     fields["rule"], site.label))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if absent:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in absent.items() if v is not None)
        click.echo(f"not in the file, grammar defaults: {shown}")


def _spec_fields(spec: object) -> dict[str, str]:
    from deepphoenix.grammar import SiteSpec

    assert isinstance(spec, SiteSpec)
    if spec.derive is not None:
        rule = f"derived: {spec.derive.text}"
    elif not spec.mutable:
        rule = "fixed"
    else:
        rule = spec.operator.describe()
    domain = spec.domain.describe(spec.kind) if spec.proposable else "-"
    return {"domain": domain, "rule": rule}


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@grammar_option
@click.option("-n", "count", type=click.IntRange(min=1), default=8, show_default=True,
              help="How many distinct variants.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--max-edits", type=click.IntRange(min=1), default=3, show_default=True,
              help="Each variant chains 1..K single-site moves (the paper's refinement is 1).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write DIR/<hash>.py files instead of printing diffs.")
@json_option
def mutate(file: str, grammar: str, count: int, seed_: int, max_edits: int,
           out_dir: Path | None, as_json: bool) -> None:
    """Draw N distinct valid variants of FILE from the grammar.

    Without --out, print each variant's unified diff; with it, write DIR/<hash>.py. FILE
    itself is never written.
    """
    program = load_program(file, grammar)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise SourceError(f"{out_dir}: exists and is not a directory")
    variants = DistinctVariants(RandomProposer(max_edits), program, count, random.Random(seed_))
    records = []
    produced = 0
    for mutation in variants:
        produced += 1
        variant = mutation.variant
        assert variant is not None
        edits = ", ".join(str(e) for e in variant.changes)
        if out_dir is not None:
            target = out_dir / f"{variant.hash}.py"
            write_text_atomic(target, variant.source)
            records.append({"hash": variant.hash, "path": str(target), "edits": edits})
        elif as_json:
            records.append({"hash": variant.hash, "edits": edits, "source": variant.source})
        else:
            a_name = file if file.startswith("/") else f"a/{file}"  # never a//abs/path
            click.echo(unified_diff(program.text, variant.source, a_name,
                                    f"b/{variant.hash}.py  ({edits})"), nl=False)
    if as_json:
        echo_json({"file": file, "variants": records, "exhausted": variants.exhausted})
    elif out_dir is not None:
        click.echo(f"wrote {len(records)} variants to {out_dir}/")
    if variants.exhausted:
        click.echo(
            f"note: only {produced} distinct variants of {file} are within {max_edits} "
            f"edit(s) under grammar {program.grammar.name!r} (no new one in "
            f"{variants.stall} draws); raise --max-edits for more", err=True,
        )


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@grammar_option
@json_option
def check(file: str, grammar: str, as_json: bool) -> None:
    """Check FILE against the grammar's domains, derivations and invariants.

    Exit 0 when all hold; exit 1 with the broken rule and its values otherwise. With
    --grammar infer the grammar comes from FILE itself, so its domains hold FILE's values
    by construction: that checks only that FILE parses and has sites.
    """
    program = load_program(file, grammar)
    verdict = program.grammar.check(program.values, program.present)
    if as_json:
        echo_json({"file": file, "grammar": program.grammar.name, "ok": verdict.ok,
                   "outcome": verdict.outcome.value, "reason": verdict.reason})
        if not verdict.ok:
            raise SystemExit(1)
        return
    if not verdict.ok:
        fail(f"{file}: {verdict.outcome.value}: {verdict.reason}")
    sites, rules = len(program.sites), len(program.grammar.invariants)
    click.echo(f"{file}: ok ({sites} site{'' if sites == 1 else 's'}, {rules} "
               f"invariant{' holds' if rules == 1 else 's hold'})")
    if program.grammar.origin == "inferred":
        click.echo("note: the grammar was inferred from this file, so its values are in "
                   "domain by construction; pass --grammar NAME|PATH to check against a "
                   "grammar", err=True)


@click.command()
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@grammar_option
@json_option
def diff(a: str, b: str, grammar: str, as_json: bool) -> None:
    """Reduce the change from A to B to edits at A's sites; report anything else as
    ungrounded.

    Exit 0 when every change is an edit at a site (or nothing changed); exit 1 when some
    change is ungrounded."""
    program = load_program(a, grammar)
    result = diff_text(program, read_source(b), path=b)
    if as_json:
        echo_json({"a": a, "b": b, "grammar": program.grammar.name, **result.to_dict()})
        if result.ungrounded:
            raise SystemExit(1)
        return
    if not result.edits and result.grounded:
        click.echo("no changes at sites")
    for edit in result.edits:
        spec = program.grammar.site(edit.site)
        note = " (derived)" if spec.derived else (" (fixed)" if not spec.mutable else "")
        old = format_value(program.values[edit.site])
        click.echo(f"{edit.site}: {old} -> {format_value(edit.value)}{note}")
    for change in result.ungrounded:
        click.echo(f"ungrounded: {change}")
    if result.ungrounded:
        raise SystemExit(1)
