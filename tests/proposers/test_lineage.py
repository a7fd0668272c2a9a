"""The ``learned`` proposer's parts: hindsight pairs from scored variants, the surrogate
that ranks a wide sample, and a real run that warm-starts and learns from its lineage.
(``kill -9`` + resume of a learned run: the default proposer's test in
tests/search/test_run.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deepphoenix.grammar import load_grammar
from deepphoenix.mutator import parse_program
from deepphoenix.proposers import Observation, hindsight_pairs
from deepphoenix.proposers._surrogate import Surrogate, encode
from deepphoenix.sandbox import Worker, WorkerSettings
from deepphoenix.seeds import seed_source
from deepphoenix.store import RunStore

T5 = load_grammar("t5")
TINY = parse_program(seed_source("tiny"), T5)


def _obs(name: str, score: float | None, status: str = "scored") -> Observation:
    return Observation("parent", name, {"num_layers": len(name)}, status, score)


def test_hindsight_pairs_point_from_worse_to_better_weighted_by_the_gain() -> None:
    observed = [_obs("a", 4.0), _obs("bb", 3.0), _obs("ccc", 2.0),
                _obs("dddd", None, "failed"), _obs("eeeee", None, "rejected")]
    rows = hindsight_pairs(observed)
    # every scored pair (worse, better): a->bb, a->ccc, bb->ccc; failures never pair
    pairs = {(w["num_layers"], b["num_layers"]): r for w, b, r in rows}
    assert set(pairs) == {(1, 2), (1, 3), (2, 3)}
    assert pairs[(1, 3)] == 4  # the whole spread: the most repeats
    assert pairs[(2, 3)] == pairs[(1, 2)] == 3  # half the spread
    assert rows[0][0]["num_layers"] == 1 and rows[0][1]["num_layers"] == 3  # largest first
    # a maximized score reverses every pair
    flipped = {(w["num_layers"], b["num_layers"]) for w, b, _ in hindsight_pairs(observed, -1)}
    assert flipped == {(b, w) for w, b in pairs}


def test_hindsight_pairs_respect_the_limits() -> None:
    observed = [_obs("x" * (i + 1), float(i)) for i in range(20)]
    rows = hindsight_pairs(observed, max_targets=2, limit=30)
    assert {b["num_layers"] for _, b, _ in rows} <= {1, 2}
    assert sum(r for _, _, r in rows) <= 30
    assert hindsight_pairs([_obs("a", 1.0), _obs("b", 1.0)]) == []  # no spread, no pair


def test_features_are_scaled_by_the_domain() -> None:
    specs = TINY.proposable
    low = encode(specs, {s.name: s.domain.low for s in specs})
    high = encode(specs, {s.name: s.domain.high for s in specs})
    assert low == [0.0] * len(specs) and high == [1.0] * len(specs)
    d_ff = [s.name for s in specs].index("d_ff")
    middle = encode(specs, {**TINY.values, "d_ff": 512})[d_ff]
    assert middle == pytest.approx(0.5)  # log scale: 512 = 64 * 8, half way to 64 * 64


def test_the_surrogate_spends_the_budget_where_it_expects_improvement() -> None:
    xs = [[i / 10] for i in range(11)]
    ys = [(x[0] - 0.7) ** 2 for x in xs[::2]]  # scored at 0, .2, .4, .6, .8, 1
    model = Surrogate(xs[::2], ys)
    mean, _ = model.predict([[0.7], [0.1]])
    assert mean[0] < mean[1]
    candidates = [[0.05], [0.35], [0.7], [0.95]]
    picked = model.choose(candidates, 3)
    assert picked[0] == 2
    assert len(set(picked)) == 3
    assert model.choose(candidates, 3) == picked  # deterministic: a resume ranks the same


def test_a_loaded_proposer_model_keeps_its_worker(tmp_path: Path) -> None:
    # transformers' progress bar leaves a tqdm thread behind, and the sandbox retires a
    # worker with a stray thread: every batch then paid a fresh worker and a reload.
    from deepphoenix.proposers import make_dataset, prepare_data
    from deepphoenix.proposers._t5 import T5Sampler, TrainSettings

    data = prepare_data(make_dataset(TINY, 64, seed=0), "source", tmp_path / "data", 400)
    with Worker(WorkerSettings(threads=1), name="trainer") as trainer:
        T5Sampler.train(TINY.text, data, TrainSettings(epochs=1, seed=0), trainer,
                         out=tmp_path / "model")
    with Worker(WorkerSettings(threads=1), name="sampler") as worker:
        proposer = T5Sampler.load(tmp_path / "model", worker)
        proposer.sample_texts(TINY, 2, seed=0)
        pid = worker.pid
        assert pid is not None  # still running after the job that loaded the model
        proposer.sample_texts(TINY, 2, seed=1)
        assert worker.pid == pid


def test_a_learned_run_warm_starts_and_learns_from_its_lineage(
        smoke_run: tuple[Path, str], tmp_path: Path) -> None:
    # The session's `deepphoenix run --preset smoke`, whose default proposer is `learned`;
    # copied (by this process's user, as `cp -r` would), since the second half below works
    # in the run's directory: the workers must still read the copied proposer model.
    shutil.copytree(smoke_run[0], tmp_path / "run")
    with RunStore.open(tmp_path / "run") as store:
        attempts = store.attempts()
        evaluations = store.evaluations_done()
    assert {a.proposer for a in attempts} == {"learned"}
    assert {a.source for a in attempts} <= {"t5", "gp", "draw"} and "t5" in {
        a.source for a in attempts}  # each candidate names the drawer that made it
    assert evaluations >= 10
    second = json.loads((tmp_path / "run" / "episodes" / "2" / "model" / "proposer.json")
                        .read_text())
    first = json.loads((tmp_path / "run" / "episodes" / "1" / "model" / "proposer.json")
                       .read_text())
    assert first["warm_start"] is None
    assert second["warm_start"] == str(smoke_run[0] / "episodes" / "1" / "model")  # the original
    hindsight = json.loads((tmp_path / "run" / "episodes" / "2" / "hindsight.json").read_text())
    assert len(hindsight["input_ids"]) == len(hindsight["labels"]) >= 32
    # The proposer read program views (its own pairs, beside the task's source pairs).
    assert first["view"] == second["view"] == 1
    view = json.loads((tmp_path / "run" / "data" / "view" / "data.json").read_text())
    assert view["view"] == 1 and view["mean_input_tokens"] < 40
    _an_episode_with_nothing_to_learn_reuses_the_weights_and_says_so(tmp_path / "run")


def _an_episode_with_nothing_to_learn_reuses_the_weights_and_says_so(run_dir: Path) -> None:
    from deepphoenix.executor import ExecutorSettings, get_executor
    from deepphoenix.proposers import HindsightProposer, ProposerContext, ProposerData

    folder = run_dir / "data" / "view"
    stored = json.loads((folder / "data.json").read_text())
    data = ProposerData.from_dict({**stored, "tokenizer_path": folder / "tokenizer.json",
                                   "tokens_path": folder / "tokens.json"})
    executor = get_executor("local", ExecutorSettings(workers=1))
    ctx = ProposerContext(run_dir=run_dir, executor=executor, seed=0, data=data,
                          seed_source=TINY.text)
    try:
        proposer = HindsightProposer(ctx)
        # Nothing scored yet: no improving pair, so episode 3 keeps episode 2's weights,
        # and the decision is a report the run stores.
        report = proposer.begin_episode(3, TINY, seed=1, stored=None)
        assert report == {"reused": 2, "losses": []}
        t5 = proposer.drawers[0]
        assert t5.model is not None
        assert t5.model.model_dir == (run_dir / "episodes" / "2" / "model").resolve()
        assert not (run_dir / "episodes" / "3").exists()
        # A resume has seen more results by then (improving pairs), yet keeps the decision.
        proposer.observe([_obs("a", 4.0), _obs("bb", 3.0), _obs("ccc", 2.0)])
        assert proposer.begin_episode(3, TINY, seed=1, stored=report) == report
        assert not (run_dir / "episodes" / "3").exists()
        # The pool the surrogate ranks: the T5's samples, the GP sampler's suggestions and
        # the grammar's draws, each valid, new and named by its drawer.
        companions = proposer.ranker.companions(TINY, 4, 5, (), proposer.drawers[1:])
        assert {c.source for c in companions} == {"gp", "draw"}
        assert all(c.mutation.ok for c in companions)
        hashes = [c.mutation.variant.hash for c in companions if c.mutation.variant]
        assert len(set(hashes)) == len(hashes) == len(companions)
        chosen = proposer.propose(TINY, 4, seed=5)
        assert len(chosen) == 4, proposer.failure
        assert {c.source for c in chosen} <= {"t5", "gp", "draw"}, proposer.failure
        proposer.close()
    finally:
        executor.close()


def test_the_ranking_keeps_to_candidates_a_model_of_the_constraint_expects_to_pass() -> None:
    # Bigger scored better, and every variant of 5 layers or more broke the cap: the
    # surrogate alone spends the slots up there; with the violations modelled it does not.
    from deepphoenix.proposers import Proposal
    from deepphoenix.proposers._pool import rank

    def seen(layers: int, score: float | None, violation: float) -> Observation:
        status = "scored" if score is not None else "rejected"
        return Observation("p", f"v{layers}", {"num_layers": layers}, status, score,
                           violation=violation)

    observed = [seen(1, 3.0, -1.0), seen(2, 2.5, -0.6), seen(3, 2.2, -0.3),
                seen(5, None, 0.2), seen(6, None, 0.4), seen(8, None, 0.8)]
    pool = [Proposal(TINY.apply({"num_layers": k}), "") for k in (1, 3, 4, 5, 6, 7, 8)]
    picked = [dict(pool[i].mutation.variant.values)["num_layers"] for i in rank(
        TINY, observed, 1.0, pool, 2)]  # type: ignore[union-attr]
    assert picked and all(k <= 4 for k in picked), picked
    # The same results without their violations (a run before the check): an over-cap
    # size is picked again.
    blind = [Observation(o.parent, o.child, o.values, o.status, o.score) for o in observed]
    assert max(dict(pool[i].mutation.variant.values)["num_layers"]  # type: ignore[union-attr]
               for i in rank(TINY, blind, 1.0, pool, 2)) >= 5


def test_before_anything_is_ranked_the_draws_expected_to_pass_come_first() -> None:
    # One variant scored (the seed, at the cap) and two rejected over it: the pool's own
    # order would spend both slots on the first two draws, both over the cap.
    from deepphoenix.proposers import Proposal
    from deepphoenix.proposers._pool import rank

    observed = [Observation("", "seed", {"num_layers": 2}, "scored", 3.0, violation=0.0),
                Observation("seed", "v6", {"num_layers": 6}, "rejected", None, violation=0.5),
                Observation("seed", "v8", {"num_layers": 8}, "rejected", None, violation=0.9)]
    pool = [Proposal(TINY.apply({"num_layers": k}), "") for k in (7, 8, 5, 1, 3)]
    picked = [dict(pool[i].mutation.variant.values)["num_layers"]  # type: ignore[union-attr]
              for i in rank(TINY, observed, 1.0, pool, 2)]
    assert sorted(picked) == [1, 3]
    blind = [Observation(o.parent, o.child, o.values, o.status, o.score) for o in observed]
    assert [dict(pool[i].mutation.variant.values)["num_layers"]  # type: ignore[union-attr]
            for i in rank(TINY, blind, 1.0, pool, 2)] == [7, 8]
