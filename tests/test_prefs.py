"""The preference store: labels, undo, majority preferences, kappa, imports, crash safety."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatforge.align.prefs import PrefStore, cohen_kappa
from chatforge.errors import InputError
from tests.conftest import shared_file


@pytest.fixture
def store(tmp_path: Path) -> PrefStore:
    s = PrefStore(tmp_path / "prefs")
    for i in range(4):
        s.add_pair(f"q{i}", f"a{i}", f"b{i}", meta_a={"seed": 1}, meta_b={"seed": 2},
                   split="heldout" if i == 3 else "train")
    return s


def test_the_store_is_wal_with_full_sync(store: PrefStore) -> None:
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.path.name == "prefs.db"


def test_a_file_that_is_not_a_store_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "prefs.db").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(InputError, match="prefs.db: not a preference store"):
        PrefStore(tmp_path / "prefs.db")


def test_a_later_label_replaces_the_labellers_own_and_history_keeps_both(store) -> None:
    store.label(1, "A", "ann")
    store.label(1, "B", "bob")
    store.label(1, "B", "ann")
    assert {(x.labeller, x.choice) for x in store.labels(pair_id=1)} == {("ann", "B"), ("bob", "B")}
    assert [h["choice"] for h in store.history("ann")] == ["A", "B"]


def test_undo_removes_the_last_label_and_the_pair_comes_back(store) -> None:
    store.label(1, "A", "ann")
    store.label(2, "tie", "ann")
    assert store.next_unlabelled("ann").id == 3
    assert store.undo("ann") == 2
    assert store.next_unlabelled("ann").id == 2
    assert store.undo("ann") == 1
    assert store.undo("ann") is None
    assert store.undo("nobody") is None
    assert [h["action"] for h in store.history("ann")] == ["label", "label", "undo", "undo"]


def test_next_unlabelled_resumes_per_labeller_and_split(store) -> None:
    for pid in (1, 2):
        store.label(pid, "skip", "ann")
    assert store.next_unlabelled("ann").id == 3
    assert store.next_unlabelled("bob").id == 1
    assert store.next_unlabelled("ann", split="heldout").id == 4
    store.label(3, "A", "ann")
    assert store.next_unlabelled("ann", split="train") is None
    assert store.labelled_count("ann") == 3


def test_bad_labels_are_one_line_errors(store) -> None:
    with pytest.raises(InputError, match="not one of"):
        store.label(1, "C", "ann")
    with pytest.raises(InputError, match="no pair 99"):
        store.label(99, "A", "ann")
    with pytest.raises(InputError, match="needs a name"):
        store.label(1, "A", " ")


def test_preferences_take_the_majority_and_resolve_chosen(store) -> None:
    store.label(1, "A", "ann")
    store.label(1, "A", "bob")
    store.label(1, "B", "cid")
    store.label(2, "A", "ann")
    store.label(2, "B", "bob")  # even vote: left out
    store.label(3, "tie", "ann")  # no vote
    store.label(4, "B", "ann")
    prefs = {p["pair_id"]: p for p in store.preferences()}
    assert set(prefs) == {1, 4}
    assert (prefs[1]["chosen"], prefs[1]["rejected"]) == ("a0", "b0")
    assert (prefs[4]["chosen"], prefs[4]["rejected"], prefs[4]["split"]) == ("b3", "a3", "heldout")
    assert [p["pair_id"] for p in store.preferences(split="heldout")] == [4]
    only_cid = store.preferences(labellers=["cid"])
    assert [(p["pair_id"], p["chosen"]) for p in only_cid] == [(1, "b0")]


def test_label_many_is_one_transaction(store) -> None:
    with pytest.raises(InputError, match="no pair 9"):
        store.label_many([(1, "A"), (9, "B")], "judge:rule")
    assert store.labels(labeller="judge:rule") == []
    store.label_many([(1, "A"), (2, "B")], "judge:rule")
    assert [(x.pair_id, x.choice) for x in store.labels(labeller="judge:rule")] == [(1, "A"), (2, "B")]


def test_add_pairs_is_one_transaction(store) -> None:
    with pytest.raises(InputError):
        store.add_pairs([{"prompt": "x", "response_a": "a", "response_b": "b"},
                         {"prompt": "y", "response_a": 3, "response_b": "b"}])
    assert store.count() == 4
    ids = store.add_pairs([{"prompt": "x", "response_a": "a", "response_b": "b", "source": "t"}])
    assert store.pairs(source="t")[0].id == ids[0]


def test_cohen_kappa_on_a_hand_made_table() -> None:
    # 10 pairs, two raters. Table (rows: rater 1, cols: rater 2), order A, B, tie:
    #   A: 4 1 0 / B: 1 3 0 / tie: 0 0 1   -> p_o = 8/10
    # marginals r1 (5, 4, 1), r2 (5, 4, 1): p_e = (25 + 16 + 1) / 100 = 0.42
    # kappa = (0.8 - 0.42) / 0.58 = 0.655172...
    r1 = ["A"] * 5 + ["B"] * 4 + ["tie"]
    r2 = ["A"] * 4 + ["B"] + ["A"] + ["B"] * 3 + ["tie"]
    assert cohen_kappa(r1, r2) == pytest.approx(0.38 / 0.58)
    assert cohen_kappa(r1, r1) == 1.0
    assert cohen_kappa(["A", "B"], ["B", "A"]) == pytest.approx(-1.0)
    assert cohen_kappa(["A", "A"], ["A", "A"]) == 1.0
    with pytest.raises(ValueError):
        cohen_kappa(["A"], [])


def test_cohen_kappa_matches_sklearn() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    r1 = ["A"] * 5 + ["B"] * 4 + ["tie"] + ["A", "tie", "B"]
    r2 = ["A"] * 4 + ["B"] + ["A"] + ["B"] * 3 + ["tie"] + ["tie", "A", "A"]
    assert cohen_kappa(r1, r2) == pytest.approx(sklearn.cohen_kappa_score(r1, r2))


def test_stats_report_counts_agreement_and_position_bias(store) -> None:
    for pid, (a, b) in enumerate([("A", "A"), ("B", "A"), ("A", "A"), ("skip", "B")], 1):
        store.label(pid, a, "ann")
        store.label(pid, b, "bob")
    s = store.stats()
    assert s["labellers"]["ann"]["labels"] == 4 and s["labellers"]["ann"]["skip"] == 1
    (ag,) = s["agreement"]
    assert ag["labellers"] == ["ann", "bob"] and ag["pairs"] == 3  # the skip is left out
    assert ag["raw"] == pytest.approx(2 / 3)
    assert ag["kappa"] == pytest.approx(cohen_kappa(["A", "B", "A"], ["A", "A", "A"]))
    assert s["position_bias"]["a_share"] == pytest.approx(5 / 7)


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_import_jsonl_counts_bad_rows_flips_sides_and_round_trips(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(40)]
    rows += ["{not json", {"prompt": "q", "chosen": "x"}, {"prompt": "q", "chosen": "s",
                                                           "rejected": "s"}]
    rows.append({"prompt": "hi", "chosen": "c", "rejected": "r",
                 "messages": [{"role": "system", "content": "be kind"},
                              {"role": "user", "content": "hi"}]})
    store = PrefStore(tmp_path / "p.db")
    st = store.import_jsonl(_write_jsonl(tmp_path / "in.jsonl", rows))
    assert (st.read, st.imported, sum(st.skipped.values())) == (44, 41, 3)
    assert st.skipped["missing or empty rejected"] == 1
    labels = store.labels(labeller="import:in.jsonl")
    assert len(labels) == 41
    a_share = sum(lab.choice == "A" for lab in labels) / len(labels)
    assert 0.2 < a_share < 0.8  # the chosen answer is not always A
    again = store.import_jsonl(tmp_path / "in.jsonl")
    assert (again.imported, again.duplicates) == (0, 41)
    assert store.export_jsonl(tmp_path / "out.jsonl") == 41
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {(r["prompt"], r["chosen"], r["rejected"]) for r in out[:40]} == {
        (f"q{i}", f"good {i}", f"bad {i}") for i in range(40)}
    assert out[40]["messages"][0]["content"] == "be kind"
    fresh = PrefStore(tmp_path / "fresh.db")
    assert fresh.import_jsonl(tmp_path / "out.jsonl").imported == 41


def test_an_import_with_no_good_row_is_an_error(tmp_path: Path) -> None:
    store = PrefStore(tmp_path / "p.db")
    with pytest.raises(InputError, match="no preference pair.*not JSON x2"):
        store.import_jsonl(_write_jsonl(tmp_path / "bad.jsonl", ["{", "nope"]))
    with pytest.raises(InputError, match="no such file"):
        store.import_hh_rlhf(tmp_path / "missing.jsonl.gz")


def test_hh_rlhf_prompt_is_the_last_human_turn_and_messages_the_dialogue(tmp_path) -> None:
    shared = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: what is 2+2?\n\nAssistant: "
    rows = [{"chosen": shared + "4", "rejected": shared + "5"},
            {"chosen": "\n\nHuman: x\n\nAssistant: y", "rejected": "\n\nHuman: z\n\nAssistant: w"},
            {"chosen": "no markers", "rejected": "no markers"}]
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    store = PrefStore(tmp_path / "p.db")
    st = store.import_hh_rlhf(path)
    assert (st.imported, dict(st.skipped)) == (1, {
        "transcripts differ before the last answer": 1, "not a Human/Assistant transcript": 1})
    (pref,) = store.preferences()
    assert (pref["prompt"], pref["chosen"], pref["rejected"]) == ("what is 2+2?", "4", "5")
    assert pref["messages"] == [{"role": "user", "content": "hi"},
                                {"role": "assistant", "content": "hello"},
                                {"role": "user", "content": "what is 2+2?"}]


def test_real_hh_rlhf_file_imports_with_counts(tmp_path: Path) -> None:
    path = shared_file("hh-rlhf", "helpful-base-test.jsonl.gz")
    store = PrefStore(tmp_path / "p.db")
    st = store.import_hh_rlhf(path, split="heldout")
    assert st.read == 2354
    assert st.imported + st.duplicates + sum(st.skipped.values()) == st.read
    assert st.imported > 2200, st.as_dict()
    assert len(store.preferences(split="heldout")) == st.imported
    multi = [p for p in store.pairs() if "messages" in p.meta_a]
    assert multi and all(p.meta_a["messages"][-1]["content"] == p.prompt for p in multi)


def test_real_llamafactory_pairs_import_with_counts(tmp_path: Path) -> None:
    path = shared_file("llamafactory-demo", "dpo_en_demo.json")
    store = PrefStore(tmp_path / "p.db")
    st = store.import_llamafactory(path)
    assert st.read == 300
    assert st.imported + st.duplicates + sum(st.skipped.values()) == 300
    assert st.imported >= 290, st.as_dict()
    with_system = [p for p in store.pairs() if p.meta_a.get("messages", [{}])[0].get("role")
                   == "system"]
    assert len(with_system) >= 70


def test_kill_9_of_concurrent_writers_loses_no_committed_label(tmp_path: Path) -> None:
    db = tmp_path / "prefs.db"
    store = PrefStore(db)
    store.add_pairs([{"prompt": f"q{i}", "response_a": "a", "response_b": "b"}
                     for i in range(3000)])
    code = ("import sys; from chatforge.align.prefs import PrefStore; s = PrefStore(sys.argv[1])\n"
            "while (p := s.next_unlabelled(sys.argv[2])) is not None:\n"
            "    s.label(p.id, 'A', sys.argv[2]); print(p.id, flush=True)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), name],
                              stdout=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    committed: dict[str, list[int]] = {"w1": [], "w2": []}
    deadline = time.time() + 10
    for name, proc in zip(committed, procs, strict=True):
        while len(committed[name]) < 50 and time.time() < deadline:
            committed[name].append(int(proc.stdout.readline()))
    for proc in procs:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert all(len(v) >= 50 for v in committed.values())
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for name, ids in committed.items():
        stored = {lab.pair_id for lab in PrefStore(db).labels(labeller=name)}
        assert set(ids) <= stored  # everything reported as done is in the database



def test_decided_prompts_are_the_current_generations_told_apart_training_pairs(tmp_path: Path) -> None:
    from chatforge.align.collect import decided_prompts

    s = PrefStore(tmp_path / "prefs")
    meta = {"generation": "g2", "kind": "fact", "answer": "1921", "lang": "en", "messages": None}
    ids = s.add_pairs([
        {"prompt": "decided", "response_a": "1921", "response_b": "1922", "meta_a": meta, "meta_b": meta},
        {"prompt": "tied", "response_a": "1921", "response_b": "1921", "meta_a": meta, "meta_b": meta},
        {"prompt": "held out", "response_a": "x", "response_b": "y", "meta_a": meta, "meta_b": meta, "split": "heldout"},
        {"prompt": "older model", "response_a": "x", "response_b": "y",
         "meta_a": {**meta, "generation": "g1"}, "meta_b": meta},
        {"prompt": "imported", "response_a": "x", "response_b": "y", "source": "jsonl"},
    ])
    s.label_many([(ids[0], "B"), (ids[1], "tie"), (ids[2], "A"), (ids[3], "A"), (ids[4], "A")], "rule")
    assert decided_prompts(s, "g2") == [{"prompt": "decided", "messages": None, "kind": "fact", "answer": "1921",
                                         "lang": "en", "facts": None, "split": "train"}]


def test_pairs_an_earlier_corpus_imported_are_stale_and_the_users_own_imports_are_not(tmp_path: Path) -> None:
    """A regenerated corpus re-imports its pair files into the same store; the pairs only the
    old files held must not train beside the new ones."""
    from chatforge.align.collect import stale_corpus_pairs
    from chatforge.runs import RunDir

    run = RunDir(tmp_path / "run")
    eval_dir = run.corpus / "eval"
    eval_dir.mkdir(parents=True)
    store = PrefStore(run.path("prefs", "prefs.db"))
    old = [{"prompt": "q1", "chosen": "refuse", "rejected": "comply"},
           {"prompt": "q2", "chosen": "help", "rejected": "refuse"}]
    store.import_jsonl(_write_jsonl(eval_dir / "safety_prefs_train.jsonl", old))
    new = [old[0], {"prompt": "q2", "chosen": "Sure! help", "rejected": "refuse"}]
    store.import_jsonl(_write_jsonl(eval_dir / "safety_prefs_train.jsonl", new))
    store.import_jsonl(_write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "q3", "chosen": "a", "rejected": "b"}]))
    by_text = {(p.prompt, frozenset((p.response_a, p.response_b))): p.id for p in store.pairs()}
    assert len(by_text) == 4
    assert stale_corpus_pairs(store, run) == {by_text["q2", frozenset(("help", "refuse"))]}
    (eval_dir / "safety_prefs_train.jsonl").unlink()  # a corpus without the file: all of its pairs are stale
    assert stale_corpus_pairs(store, run) == {by_text[k] for k in by_text if k[0] != "q3"}
