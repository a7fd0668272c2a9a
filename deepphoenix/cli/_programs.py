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
    shown,
)
from deepphoenix.errors import ConfigError, SourceError
from deepphoenix.grammar import Grammar, format_grammar, format_value, grammar_names, load_grammar
from deepphoenix.mutator import (
    Bundle,
    diff_text,
    infer,
    parse_bundle,
    parse_program,
    read_source,
    unified_diff,
)
from deepphoenix.mutator._resolve import INFER
from deepphoenix.proposers import DistinctVariants, Refiner
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
    'gpt' a small GPT language model (the code-lm task); 'quine-coords', 'quine-onehot',
    'quine-rnn' (networks that predict their own weights) and 'quine-source' (an LSTM
    that prints its own file), scored by --objective self-replication. All run offline.
    """
    if list_names:
        for known in seed_names():
            click.echo(known)
        return
    click.echo(seed_source(name), nl=False)


@click.command()
@click.argument("name", required=False)
@click.option("--template", "template", type=click.Path(dir_okay=False, path_type=str),
              metavar="FILE", help="Print a starter grammar TOML inferred from FILE.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="With --template: write the TOML here instead of printing it.")
@json_option
def grammars(name: str | None, template: str | None, out_file: Path | None,
             as_json: bool) -> None:
    """List the registered grammars, or show one grammar's sites and invariants.

    With --template FILE, write a starter grammar inferred from FILE (sites grouped, the
    literals infer skipped listed as comments) for you to edit.
    """
    if template is not None:
        text = _template_toml(template)
        if out_file is None:
            click.echo(text, nl=False)
        else:
            write_text_atomic(out_file, text)
            click.echo(f"wrote {out_file}")
        return
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
        extras = "".join([
            f", moves with {', '.join(spec.moves_with)}" if spec.moves_with else "",
            f", when {spec.when.text}" if spec.when is not None else "",
            ", optional" if spec.optional else "",
        ])
        where = (f"hidden, read {spec.read.text}" if spec.read is not None else "hidden"
                 ) if spec.hidden else " | ".join(d["select"])
        kind = str(spec.kind)
        if spec.structure is not None:
            kind = spec.structure.placement
            where = " | ".join([*d["select"], *(f"{k} {d[k]}" for k in ("within", "after",
                                                                         "define") if k in d)])
            where = where or "annotation"
        click.echo(f"  {spec.name}: {kind} {d['domain']}, {rule}{default}{extras}  "
                   f"[{where}]")
    for inv in g.invariants:
        click.echo(f"  invariant: {inv.text}")


def _load_bundle(file: str, also: tuple[str, ...], grammar: str) -> Bundle:
    if grammar == INFER:
        raise ConfigError("--with needs a grammar that names its sites, not 'infer'")
    return parse_bundle([(path, read_source(path)) for path in (file, *also)],
                        load_grammar(grammar))


def _mutate_bundle(bundle: Bundle, count: int, seed: int, max_edits: int,
                   out_dir: Path | None, as_json: bool) -> None:
    proposer, rng = Refiner(max_edits), random.Random(seed)
    originals = {program.path: program.text for program in bundle.programs}
    seen: set[tuple[tuple[str, str], ...]] = set()
    records: list[dict[str, object]] = []
    for _ in range(count * 200):
        if len(records) >= count:
            break
        edits = proposer.draw_edits(bundle, rng)
        if not edits:
            continue
        result = bundle.apply(edits)
        if not result.ok or result.variant is None or result.variant.files in seen:
            continue
        seen.add(result.variant.files)
        variant = result.variant
        changes = ", ".join(str(e) for e in variant.changes)
        changed = {p: t for p, t in variant.files if t != originals[p]}
        if out_dir is not None:
            for path, text in variant.files:
                write_text_atomic(out_dir / str(len(records) + 1) / Path(path).name, text)
        elif not as_json:
            for path, text in changed.items():
                click.echo(shown(unified_diff(originals[path], text, f"a/{path}",
                                              f"b/{path}  ({changes})"), multiline=True),
                           nl=False)
        records.append({"edits": changes, "changed": sorted(changed),
                        **({"sources": changed} if as_json else {})})
    if as_json:
        echo_json({"files": list(originals), "variants": records})
    elif out_dir is not None:
        click.echo(f"wrote {len(records)} variants to {out_dir}/")


def _template_toml(file: str) -> str:
    text = read_source(file)
    found = infer(text, file, name=Path(file).stem)
    groups = found.groups()
    ordered = tuple(spec for specs in groups.values() for spec in specs)
    grammar = Grammar(found.grammar.name, ordered, description=found.grammar.description)
    headings = {specs[0].name: group for group, specs in groups.items()}
    program = parse_program(text, found.grammar, file)
    notes = {s.name: f"line {s.line}: {s.label} = {s.literal}" for s in program.sites}
    header = [
        f"# Starter grammar inferred from {file}.",
        "# Narrow the domains, delete the sites you will not search, add invariants",
        "# (see docs/guide/grammars.md).",
    ]
    skipped = [f"#   line {s.line}: {s.label} = {s.literal}  ({s.reason})" for s in found.skipped]
    footer = ["", "# Literals infer skipped:", *skipped] if skipped else []
    body = format_grammar(grammar, headings, notes)
    return "\n".join(header) + "\n" + body + "\n".join(footer) + ("\n" if footer else "")


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@grammar_option
@click.option("--all", "show_all", is_flag=True,
              help="With --grammar infer: also list the literals infer skipped, and why.")
@json_option
def sites(file: str, grammar: str, show_all: bool, as_json: bool) -> None:
    """List the grammar's sites in FILE: value, line, kind, domain and mutation."""
    program = load_program(file, grammar)
    g = program.grammar
    absent = {s.name: s.default for s in g.sites if s.name not in program.present}
    skipped = infer(program.text, file).skipped if show_all and grammar == INFER else ()
    if as_json:
        echo_json({
            "file": file,
            "grammar": g.name,
            "hash": program.hash,
            "sites": [{**site.to_dict(), **_spec_fields(g.site(site.name))}
                      for site in program.sites],
            "defaults": absent,
            **({"skipped": [s.to_dict() for s in skipped]} if show_all else {}),
        })
        return
    rows = [("site", "value", "line", "kind", "domain", "mutation", "binding")]
    for site in program.sites:
        spec = g.site(site.name)
        fields = _spec_fields(spec)
        if spec.structure is not None:  # a structural site's value is its alternative's name
            rows.append((site.name, str(site.value), str(site.line),
                         spec.structure.placement, fields["domain"], fields["rule"],
                         f"{site.label} ({site.selector})"))
            continue
        rows.append((site.name, site.literal, str(site.line), spec.kind.value, fields["domain"],
                     fields["rule"], site.label))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if absent:
        shown = ", ".join(f"{k}={format_value(v)}" for k, v in absent.items() if v is not None)
        if shown:
            click.echo(f"not in the file, grammar defaults: {shown}")
    if skipped:
        click.echo(f"skipped by infer ({len(skipped)}):")
        for s in skipped:
            click.echo(f"  line {s.line}: {s.label} = {s.literal}  ({s.reason})")
    elif show_all and grammar != INFER:
        click.echo("(--all lists what infer skips; use it with --grammar infer)")


def _spec_fields(spec: object) -> dict[str, str]:
    from deepphoenix.grammar import SiteSpec

    assert isinstance(spec, SiteSpec)
    if spec.derive is not None:
        rule = f"derived: {spec.derive.text}"
    elif not spec.mutable:
        rule = "fixed"
    else:
        rule = spec.operator.describe()
    domain = spec.describe_domain() if spec.proposable else "-"
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
@click.option("--with", "also", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              metavar="FILE", help="Also read FILE with the same grammar (repeatable); later "
              "files override earlier ones, as a config override does.")
@json_option
def mutate(file: str, grammar: str, count: int, seed_: int, max_edits: int,
           out_dir: Path | None, also: tuple[str, ...], as_json: bool) -> None:
    """Draw N distinct valid variants of FILE from the grammar.

    Without --out, print each variant's unified diff; with it, write DIR/<hash>.py (with
    --with, DIR/<k>/<name> for every file). FILE itself is never written.
    """
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise SourceError(f"{out_dir}: exists and is not a directory")
    if also:
        _mutate_bundle(_load_bundle(file, also, grammar), count, seed_, max_edits, out_dir,
                       as_json)
        return
    program = load_program(file, grammar)
    variants = DistinctVariants(Refiner(max_edits), program, count, random.Random(seed_))
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
            click.echo(shown(unified_diff(program.text, variant.source, a_name,
                                          f"b/{variant.hash}.py  ({edits})"),
                             multiline=True), nl=False)
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
@click.option("--with", "also", multiple=True, type=click.Path(dir_okay=False, path_type=str),
              metavar="FILE", help="Also read FILE with the same grammar (repeatable); later "
              "files override earlier ones, as a config override does.")
@json_option
def check(file: str, grammar: str, also: tuple[str, ...], as_json: bool) -> None:
    """Check FILE against the grammar's domains, derivations and invariants.

    Exit 0 when all hold; exit 1 with the broken rule and its values otherwise. With
    --with, the rules are checked on the values of all the files together. With
    --grammar infer the grammar comes from FILE itself, so its domains hold FILE's values
    by construction: that checks only that FILE parses and has sites.
    """
    if also:
        bundle = _load_bundle(file, also, grammar)
        verdict = bundle.check()
        files = ", ".join((file, *also))
        if as_json:
            echo_json({"files": [file, *also], "grammar": bundle.grammar.name,
                       "ok": verdict.ok, "outcome": verdict.outcome.value,
                       "reason": verdict.reason})
            if not verdict.ok:
                raise SystemExit(1)
            return
        if not verdict.ok:
            fail(f"{files}: {verdict.outcome.value}: {verdict.reason}")
        sites, rules = len(bundle.present), len(bundle.grammar.invariants)
        click.echo(f"{files}: ok ({sites} site{'' if sites == 1 else 's'}, {rules} "
                   f"invariant{' holds' if rules == 1 else 's hold'})")
        return
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
        click.echo(shown(f"{edit.site}: {old} -> {format_value(edit.value)}{note}"))
        if spec.structure is not None:  # the code the two alternatives differ by
            click.echo(shown(unified_diff(
                spec.structure.alternative(old).code + "\n",
                spec.structure.alternative(str(edit.value)).code + "\n",
                f"{edit.site}={old}", f"{edit.site}={edit.value}"), multiline=True), nl=False)
    for change in result.ungrounded:  # B's text, as it is: escaped for the terminal
        click.echo(shown(f"ungrounded: {change}"))
    if result.ungrounded:
        raise SystemExit(1)
