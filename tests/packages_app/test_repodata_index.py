"""The raw-record split and the record index: what a sync parses is decided here."""

import json
import random
from array import array

import pytest

from packages_app.adapters import repodata_index
from packages_app.adapters.repodata import RepodataError
from packages_app.adapters.repodata import parse_repodata_file
from packages_app.adapters.repodata_index import INDEX_NAME
from packages_app.adapters.repodata_index import RawRepodata
from packages_app.adapters.repodata_index import RecordIndex
from packages_app.adapters.repodata_index import record_hash
from packages_app.adapters.repodata_index import write_records


def _record(name, version, **extra):
    return {"name": name, "version": version, "build": "0", "build_number": 0, **extra}


def _write(path, conda, tar=None, subdir="linux-64"):
    data = {"info": {"subdir": subdir}, "packages": tar or {}, "packages.conda": conda}
    path.write_text(json.dumps(data))
    return path


def test_delta_names_changed_added_and_removed_records_and_nothing_else(tmp_path):
    before = {f"p{i}-1.0-0.conda": _record(f"p{i}", "1.0", depends=["zlib"]) for i in range(50)}
    old_path = _write(tmp_path / "old.json", before, tar={"t-1.0-0.tar.bz2": _record("t", "1.0")})
    with RawRepodata(old_path, label="old", expected_subdir="linux-64") as raw:
        index = raw.snapshot(raw.hashes())
    index.fingerprint = {"rows": 51}
    index.save(tmp_path / "cache")

    after = dict(before)
    after["p3-1.0-0.conda"] = _record("p3", "1.0", depends=["zlib >=1.3"])
    after["new-2.0-0.conda"] = _record("new", "2.0")
    del after["p7-1.0-0.conda"]
    new_path = _write(tmp_path / "new.json", after, tar={"t-1.0-0.tar.bz2": _record("t", "1.0")})
    loaded = RecordIndex.load(tmp_path / "cache", fingerprint={"rows": 51})
    with RawRepodata(new_path, label="new", expected_subdir="linux-64") as raw:
        delta = raw.delta(loaded, raw.hashes())

    assert delta.changed["packages"] == {}
    assert set(delta.changed["packages.conda"]) == {"p3-1.0-0.conda", "new-2.0-0.conda"}
    assert delta.removed == ["p7-1.0-0.conda"]
    # The cut-out records are the file's own bytes: parsed, they equal the originals.
    write_records(tmp_path / "cut.json", "linux-64", delta.changed)
    parsed = {r.filename: r for r in parse_repodata_file(tmp_path / "cut.json").records}
    assert parsed["p3-1.0-0.conda"].depends == ["zlib >=1.3"]


def test_index_of_another_catalog_state_or_a_damaged_file_is_not_used(tmp_path):
    path = _write(tmp_path / "r.json", {"a-1.0-0.conda": _record("a", "1.0")})
    with RawRepodata(path, label="r", expected_subdir="linux-64") as raw:
        index = raw.snapshot(raw.hashes())
    index.fingerprint = {"live": 1}
    index.save(tmp_path)

    assert RecordIndex.load(tmp_path, fingerprint={"live": 1}) is not None
    assert RecordIndex.load(tmp_path, fingerprint={"live": 2}) is None
    (tmp_path / INDEX_NAME).write_bytes(b"conda-distro record index 1\n{not json")
    assert RecordIndex.load(tmp_path, fingerprint={"live": 1}) is None
    (tmp_path / INDEX_NAME).write_bytes(b"something else entirely")
    assert RecordIndex.load(tmp_path, fingerprint={"live": 1}) is None
    # A hash without its name (or a name without its hash): the pairs cannot be trusted.
    index.names_blob += b"\nb-1.0-0.conda"
    index.save(tmp_path)
    assert RecordIndex.load(tmp_path, fingerprint={"live": 1}) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b'{"packages.conda": {"x.conda": {"name": ', "not valid JSON"),
        (b"\x28\xb5\x2f\xfd\x00\x58\xff\xfe", "not valid JSON"),
        (b'{"packages": []}', "not valid JSON or not a repodata.json"),
        (b'{"info": {"subdir": "../../etc"}, "packages": {}}', "'../../etc'"),
    ],
)
def test_unreadable_files_raise_a_repodata_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "repodata.json"
    path.write_bytes(content)
    with pytest.raises(RepodataError, match="^the-label: ") as error:
        RawRepodata(path, label="the-label", expected_subdir="linux-64")
    assert message in str(error.value)


def test_hashes_equal_record_hash_of_every_record_in_file_order(tmp_path, monkeypatch):
    # The C-level pipeline against the one-record definition the stored indexes were written
    # with; slices smaller than the file so that several joins and page releases happen.
    monkeypatch.setattr(repodata_index, "HASH_SLICE_RECORDS", 3)
    conda = {f"p{i}-1.0-0.conda": _record(f"p{i}", "1.0", license="Zürich") for i in range(7)}
    tar = {f"t{i}-1.0-0.tar.bz2": _record(f"t{i}", "1.0") for i in range(4)}
    path = _write(tmp_path / "r.json", conda, tar=tar)
    with RawRepodata(path, label="r", expected_subdir="linux-64") as raw:
        expected = [
            record_hash(name, raw_record)
            for records in raw.groups.values()
            for name, raw_record in records.items()
        ]
        assert list(raw.hashes()) == expected
        assert len(set(expected)) == 11
        # Same raw bytes under another file name: another identity.
        assert record_hash("a-1-0.conda", b"{}") != record_hash("b-1-0.conda", b"{}")


def test_vanished_names_are_found_across_name_chunks_in_the_index_order(tmp_path, monkeypatch):
    before = {f"p{i:02d}-1.0-0.conda": _record(f"p{i:02d}", "1.0") for i in range(40)}
    with RawRepodata(
        _write(tmp_path / "old.json", before), label="o", expected_subdir="linux-64"
    ) as raw:
        index = raw.snapshot(raw.hashes())
    chunks = list(index.filename_chunks(size=50))
    assert len(chunks) > 3
    assert [name for chunk in chunks for name in chunk] == list(before)

    gone = ["p03-1.0-0.conda", "p17-1.0-0.conda", "p39-1.0-0.conda"]
    after = {name: record for name, record in before.items() if name not in gone}
    # Patched in place: its old bytes are gone from the file, its name is not.
    after["p10-1.0-0.conda"] = _record("p10", "1.0", license="MIT")
    with RawRepodata(
        _write(tmp_path / "new.json", after), label="n", expected_subdir="linux-64"
    ) as raw:
        monkeypatch.setattr(repodata_index, "NAMES_CHUNK_BYTES", 50)
        delta = raw.delta(index, raw.hashes())
    assert delta.removed == gone
    assert list(delta.changed["packages.conda"]) == ["p10-1.0-0.conda"]


def _edited(old: list[int], rng, edits: int) -> list[int]:
    new = list(old)
    for _ in range(edits):
        at = rng.randrange(len(new) + 1)
        kind = rng.choice(("change", "add", "remove", "add-run"))
        if kind == "change" and at < len(new):
            new[at] = rng.getrandbits(64)
        elif kind == "remove" and at < len(new):
            del new[at]
        elif kind == "add-run":
            new[at:at] = [rng.getrandbits(64) for _ in range(rng.randrange(1, 20))]
        else:
            new.insert(at, rng.getrandbits(64))
    return new


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(
    ("size", "edits", "block"),
    [(20_000, 5, 4), (20_000, 40, 64), (20_000, 40, 4096), (20_000, 0, 4096), (5_000, 300, 64)]
    + [(50, 5, 4), (1, 40, 4), (0, 5, 4), (3, 0, 4)],
)
def test_alignment_finds_every_record_the_other_file_lacks_and_few_others(
    seed, size, edits, block, monkeypatch
):
    rng = random.Random(seed)
    monkeypatch.setattr(repodata_index, "ALIGN_BLOCK", block)
    old = [rng.getrandbits(64) for _ in range(size)]
    new = _edited(old, rng, edits)

    aligned = repodata_index.align(array("Q", old), array("Q", new))

    if aligned is None:  # allowed where the edits leave nothing in common nearby
        assert size < 100 or edits > 40
        return
    new_positions, old_positions = aligned
    assert new_positions == sorted(set(new_positions))
    assert old_positions == sorted(set(old_positions))
    # Everything unmatched is reported (the delta depends on it)...
    old_set, new_set = set(old), set(new)
    assert {p for p, h in enumerate(new) if h not in old_set} <= set(new_positions)
    assert {p for p, h in enumerate(old) if h not in new_set} <= set(old_positions)
    # ...and little else: a matched pair is the same record, no need to look at it again.
    assert len(new_positions) + len(old_positions) <= 2 * edits * 20


def test_a_reordered_file_is_compared_as_sets_with_the_same_delta(tmp_path):
    before = {f"p{i:03d}-1.0-0.conda": _record(f"p{i:03d}", "1.0") for i in range(300)}
    with RawRepodata(
        _write(tmp_path / "old.json", before), label="o", expected_subdir="linux-64"
    ) as raw:
        index = raw.snapshot(raw.hashes())
    after = dict(reversed(before.items()))  # a channel that changed its order
    del after["p100-1.0-0.conda"]
    after["p007-1.0-0.conda"] = _record("p007", "1.0", license="MIT")
    with RawRepodata(
        _write(tmp_path / "new.json", after), label="n", expected_subdir="linux-64"
    ) as raw:
        hashes = raw.hashes()
        assert repodata_index.align(index.hashes, hashes) is None
        delta = raw.delta(index, hashes)
    assert list(delta.changed["packages.conda"]) == ["p007-1.0-0.conda"]
    assert delta.removed == ["p100-1.0-0.conda"]
