from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from deepphoenix.corpus import (
    HELDOUT_FILES,
    SEPARATOR,
    TRAIN_FILES,
    LMDataset,
    build_lm_dataset,
    make_blocks,
    read_corpus,
    stdlib_root,
)
from deepphoenix.errors import ConfigError


def test_file_lists_are_disjoint_sized_and_present() -> None:
    assert not set(TRAIN_FILES) & set(HELDOUT_FILES)
    assert len(set(TRAIN_FILES)) == len(TRAIN_FILES)
    assert 12 <= len(TRAIN_FILES) <= 20
    assert 3 <= len(HELDOUT_FILES) <= 5
    for name in (*TRAIN_FILES, *HELDOUT_FILES):
        assert (stdlib_root() / name).is_file(), name


def test_read_corpus_joins_files_and_records_their_hashes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    (tmp_path / "b.py").write_bytes(b"y = 2\n")
    corpus = read_corpus(["b.py", "a.py"], root=tmp_path)
    assert corpus.data == b"y = 2\n" + SEPARATOR + b"x = 1\n"
    assert corpus.manifest == [
        {"name": "b.py", "size": 6, "sha256": hashlib.sha256(b"y = 2\n").hexdigest()},
        {"name": "a.py", "size": 6, "sha256": hashlib.sha256(b"x = 1\n").hexdigest()},
    ]
    assert corpus.root == str(tmp_path)


def test_read_corpus_defaults_to_the_stdlib() -> None:
    corpus = read_corpus(TRAIN_FILES)
    assert [f.name for f in corpus.files] == list(TRAIN_FILES)
    first = (stdlib_root() / TRAIN_FILES[0]).read_bytes()
    assert corpus.data.startswith(first + SEPARATOR)
    assert len(corpus.data) == sum(f.size for f in corpus.files) + len(SEPARATOR) * (
        len(TRAIN_FILES) - 1
    )
    assert len(corpus.data) > 100_000


def test_missing_file_is_a_one_line_config_error(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_bytes(b"x = 1\n")
    with pytest.raises(ConfigError) as info:
        read_corpus(["a.py", "nowhere.py"], root=tmp_path)
    message = str(info.value)
    assert "'nowhere.py'" in message
    assert str(tmp_path) in message
    assert "\n" not in message


def test_build_lm_dataset_names_the_missing_stdlib_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=TRAIN_FILES[0]):
        build_lm_dataset(64, 4, 4, seed=0, root=tmp_path)


def test_make_blocks_shape_values_and_origin() -> None:
    data = bytes(range(256)) * 3
    blocks = make_blocks(data, block_size=16, count=10, seed=3)
    assert len(blocks) == 10
    for block in blocks:
        assert len(block) == 17
        assert all(isinstance(v, int) and 0 <= v < 256 for v in block)
        assert bytes(block) in data


def test_make_blocks_is_deterministic_in_its_seed() -> None:
    data = read_corpus(TRAIN_FILES).data
    assert make_blocks(data, 64, 32, seed=7) == make_blocks(data, 64, 32, seed=7)
    assert make_blocks(data, 64, 32, seed=7) != make_blocks(data, 64, 32, seed=8)


def test_make_blocks_reaches_both_ends_of_short_data() -> None:
    data = b"abcdef"
    blocks = make_blocks(data, block_size=4, count=50, seed=0)
    assert {bytes(b) for b in blocks} == {b"abcde", b"bcdef"}


def test_make_blocks_rejects_data_shorter_than_one_block() -> None:
    with pytest.raises(ConfigError, match="shorter than one block"):
        make_blocks(b"abcd", block_size=4, count=1, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block_size": 0}, "block_size=0"),
        ({"block_size": "8"}, "block_size='8'"),
        ({"count": -1}, "count=-1"),
        ({"seed": True}, "seed=True"),
    ],
)
def test_make_blocks_validates_its_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"block_size": 4, "count": 1, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        make_blocks(b"abcdefgh", **args)  # type: ignore[arg-type]


def test_build_lm_dataset_is_deterministic_and_keeps_heldout_apart() -> None:
    first = build_lm_dataset(64, 256, 64, seed=0)
    assert first == build_lm_dataset(64, 256, 64, seed=0)
    assert first.train != build_lm_dataset(64, 256, 64, seed=1).train
    assert len(first.train) == 256 and len(first.heldout) == 64
    assert all(len(b) == 65 for b in (*first.train, *first.heldout))
    train_text = read_corpus(TRAIN_FILES).data
    heldout_text = read_corpus(HELDOUT_FILES).data
    assert all(bytes(b) in train_text for b in first.train)
    assert all(bytes(b) in heldout_text for b in first.heldout)
    # Held-out blocks are not training text (a 65-byte run of code is all but unique).
    assert sum(bytes(b) in train_text for b in first.heldout) <= 2


def test_manifest_records_files_hashes_and_settings() -> None:
    manifest = build_lm_dataset(32, 8, 4, seed=5).manifest
    assert manifest["block_size"] == 32
    assert manifest["seed"] == 5
    assert [f["name"] for f in manifest["train_files"]] == list(TRAIN_FILES)
    assert [f["name"] for f in manifest["heldout_files"]] == list(HELDOUT_FILES)
    expected = hashlib.sha256((stdlib_root() / HELDOUT_FILES[0]).read_bytes()).hexdigest()
    assert manifest["heldout_files"][0]["sha256"] == expected


def test_lm_dataset_json_round_trips() -> None:
    dataset = build_lm_dataset(16, 8, 4, seed=2)
    text = dataset.to_json()
    json.loads(text)
    assert LMDataset.from_json(text) == dataset


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("train"),
        lambda d: d["manifest"].update(format=99),
        lambda d: d["train"][0].append(1),
        lambda d: d["heldout"][0].__setitem__(0, 256),
        lambda d: d["manifest"].update(block_size="16"),
    ],
)
def test_lm_dataset_from_json_rejects_damaged_documents(mutate: object) -> None:
    document = json.loads(build_lm_dataset(16, 2, 2, seed=0).to_json())
    mutate(document)  # type: ignore[operator]
    with pytest.raises(ConfigError):
        LMDataset.from_json(json.dumps(document))


def test_lm_dataset_from_json_rejects_non_json() -> None:
    with pytest.raises(ConfigError, match="not an LM dataset"):
        LMDataset.from_json("{nope")
