"""Faults around a run: damaged checkpoints, pickles, non-finite updates, changed recipes, a second run, a full disk."""

from __future__ import annotations

import json
import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from adaptkit.cli import main
from adaptkit.recipe import Recipe
from adaptkit.train import checkpoint, run

ROOT = Path(__file__).resolve().parents[2]


def adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "adapter" / "adapter.safetensors")


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [x for x in result.stderr.replace("\r", "\n").splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


def test_checkpoint_state_round_trips_exactly_without_pickle(tmp_path):
    param = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.AdamW([param], lr=1e-3, betas=(0.8, 0.95))
    param.grad = torch.randn(3, 2)
    opt.step()
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": checkpoint.rng_state(), "x": {"nested": [1.5, None, "s"]}}
    path = checkpoint.save(tmp_path, 7, state)
    assert path.name == "step_00000007.safetensors" and not list(tmp_path.glob(".step.*"))
    back = checkpoint.load(path)
    assert back["step"] == 7 and back["x"] == state["x"]
    assert list(back["optimizer"]["state"]) == [0] and back["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.95)
    for key, value in state["optimizer"]["state"][0].items():
        assert torch.equal(back["optimizer"]["state"][0][key], value), key
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"]) and back["rng"]["python"] == state["rng"]["python"]
    assert np.array_equal(back["rng"]["numpy"][1], state["rng"]["numpy"][1])
    checkpoint.set_rng_state(back["rng"])
    with pytest.raises(ValueError, match="non-finite"):
        checkpoint.save(tmp_path, 8, {"w": torch.tensor([float("nan")])})


def test_nothing_in_adaptkit_unpickles():
    for path in (ROOT / "adaptkit").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "torch.load(" not in text and "weights_only=False" not in text and "import pickle" not in text, path


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['ADAPTKIT_TEST_MARKER']}",))


def test_a_crafted_pickle_in_the_checkpoint_folder_is_never_executed(make_recipe, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("ADAPTKIT_TEST_MARKER", str(marker))
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step_00000001.pt").write_bytes(pickle.dumps({"step": _Evil()}))
    line = one_line_error(CliRunner().invoke(main, ["train", str(make_recipe()), "--resume"]))
    assert "a pickle checkpoint of an older adaptkit; it is never loaded" in line
    (folder / "step_00000002.safetensors").write_bytes(pickle.dumps({"step": _Evil()}))  # a pickle under our name
    line = one_line_error(CliRunner().invoke(main, ["train", str(make_recipe()), "--resume"]))
    assert "no readable checkpoint (1 damaged)" in line
    assert not marker.exists()


def test_a_damaged_newest_checkpoint_a_torn_metrics_line_and_stale_temporaries_do_not_block_resume(make_recipe, tmp_path, caplog):
    recipe = Recipe.load(make_recipe(train={"max_steps": 4, "save_every": 1}, data={"dev": None}))
    run(recipe)
    out = recipe.output_dir
    want = adapter(out)
    kept = checkpoint.checkpoints(out / "checkpoints")
    assert [p.name for p in kept] == ["step_00000003.safetensors", "step_00000004.safetensors"]
    data = bytearray(kept[-1].read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in the tensor data
    kept[-1].write_bytes(bytes(data))
    for name in ("adapter", "merged"):
        import shutil

        shutil.rmtree(out / name)
    (out / "summary.json").unlink()
    (out / "checkpoints" / ".step.dead").write_bytes(b"")
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "lo')
    summary = run(Recipe.load(make_recipe(train={"max_steps": 4, "save_every": 1}, data={"dev": None})), resume=True)
    assert summary.resumed_from == 3
    assert any("skipping" in r.getMessage() and "step_00000004" in r.getMessage() and "digest" in r.getMessage()
               for r in caplog.records)
    assert_same(want, adapter(out))
    assert not list((out / "checkpoints").glob(".step.*"))
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_an_update_that_blows_up_stops_with_a_finite_checkpoint_named(make_recipe):
    path = make_recipe(train={"lr": 1e10, "max_steps": 12, "save_every": 1, "clip": None}, data={"dev": None})
    threads = {t for t in threading.enumerate() if t.name != "tqdm_monitor"}
    line = one_line_error(CliRunner().invoke(main, ["train", str(path)]))
    assert {t for t in threading.enumerate() if t.name != "tqdm_monitor"} == threads  # the TensorBoard writer closed too
    # whichever of the three guards fires first: the loss, a gradient (before the update), a weight (after it)
    guards = ("loss is nan", "is not finite (loss ", "non-finite (train.lr ")
    assert "training stopped, last good checkpoint: " in line and any(g in line for g in guards), line
    named = Path(line.rsplit("last good checkpoint: ", 1)[1])
    state = checkpoint.load(named)
    tensors = list(state["adapter"].values()) + [v for s in state["optimizer"]["state"].values() for v in s.values()]
    assert len(tensors) > 6 and all(bool(torch.isfinite(t).all()) for t in tensors)
    assert not (path.parent / "run" / "adapter").exists()


def test_resume_refuses_a_changed_recipe_accepts_an_allowed_change_and_leaves_a_finished_run_alone(make_recipe, tmp_path):
    path = make_recipe(train={"max_steps": 3}, data={"dev": None})
    assert CliRunner().invoke(main, ["train", str(path)]).exit_code == 0
    summary = path.parent / "run" / "summary.json"
    before = (summary.read_bytes(), summary.stat().st_mtime_ns)
    again = CliRunner().invoke(main, ["train", str(path), "--resume"])
    assert again.exit_code == 0 and "already finished (3 steps); nothing to do" in again.output
    assert (summary.read_bytes(), summary.stat().st_mtime_ns) == before

    line = one_line_error(CliRunner().invoke(main, ["train", str(path), "--resume", "train.lr=0.5", "train.seed=4"]))
    assert "differs from its checkpoint step_00000003.safetensors in train.lr (0.01 -> 0.5), train.seed (0 -> 4)" in line
    line = one_line_error(CliRunner().invoke(main, ["train", str(path), "--resume", "train.max_steps=5"]))
    assert "train.max_steps (3 -> 5); accept with --allow-change train.max_steps" in line
    done = CliRunner().invoke(main, ["train", str(path), "--resume", "train.max_steps=5", "train.lr=0.02",
                                     "--allow-change", "train.max_steps", "--allow-change", "train.lr"])
    assert done.exit_code == 0 and "trained 5 steps" in done.output, done.output
    line = one_line_error(CliRunner().invoke(main, ["train", str(path), "--resume", "train.max_steps=5", "--allow-change", "train.seed"]))
    assert "--allow-change train.seed: only" in line

    manifest = tmp_path / "changed.jsonl"
    original = Path(Recipe.load(path).data.train)
    rows = [json.loads(x) for x in original.read_text().splitlines()[:4]]
    manifest.write_text("".join(json.dumps({**r, "audio": str(original.parent / r["audio"])}) + "\n" for r in rows))
    line = one_line_error(CliRunner().invoke(main, ["train", str(path), "--resume", f"data.train={manifest}", "train.max_steps=5", "train.lr=0.02"]))
    assert "in data.train (sha256 " in line and "start a new run in another output_dir" in line


def test_a_second_run_into_the_same_output_dir_is_refused(make_recipe, tmp_path):
    from adaptkit.train.guard import output_lock

    path = make_recipe()
    with output_lock(tmp_path / "run"):
        line = one_line_error(CliRunner().invoke(main, ["train", str(path)]))
    assert f"output_dir {tmp_path / 'run'} is in use by another run (pid {os.getpid()} on " in line
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def _allocated(folder: Path, skip: tuple[str, ...]) -> int:
    """Bytes the files under `folder` take on its disk (whole blocks), leaving out the top folders `skip`."""
    files = [f for f in folder.rglob("*") if f.is_file() and f.relative_to(folder).parts[0] not in skip]
    return sum(f.stat().st_blocks * 512 for f in files)


def test_a_disk_that_fills_up_mid_run_is_one_line_and_the_run_resumes(make_recipe, tmp_path):
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    probe = Recipe.load(make_recipe(train={"max_steps": 1}, data={"dev": None}, output_dir=str(tmp_path / "probe")))
    run(probe)
    size = checkpoint.latest(probe.output_dir / "checkpoints").stat().st_size
    others = _allocated(probe.output_dir, skip=("checkpoints", "adapter", "merged"))  # lock, metrics, tensorboard
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        path = make_recipe(train={"max_steps": 6, "save_every": 1, "merged": False}, data={"dev": None}, output_dir=str(disk / "run"))
        filler = disk / "filler"
        with filler.open("wb") as f:  # leave room for the data files and one checkpoint, not two
            f.write(b"\0" * (shutil.disk_usage(disk).free - int(1.5 * size) - others - (1 << 13)))
        line = one_line_error(CliRunner().invoke(main, ["train", str(path)]))
        assert "No space left on device" in line and str(disk) in line, line
        assert not list((disk / "run" / "checkpoints").glob(".step.*"))
        filler.unlink()
        result = CliRunner().invoke(main, ["train", str(path), "--resume"])
        assert result.exit_code == 0 and "trained 6 steps" in result.output, result.output
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only tmpfs: writes fail with EROFS even for root, who ignores permission bits."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a read-only tmpfs needs root")
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("where", ["run", "."])
def test_a_read_only_output_dir_is_one_line_naming_it(make_recipe, read_only_folder, where):
    out = read_only_folder / where
    path = make_recipe(train={"max_steps": 1}, data={"dev": None}, output_dir=str(out))
    line = one_line_error(CliRunner().invoke(main, ["train", str(path)]))
    assert str(read_only_folder) in line, line
    assert "Read-only file system" in line or "not writable" in line, line


def test_synth_into_a_read_only_folder_is_one_line_naming_it(read_only_folder):
    line = one_line_error(CliRunner().invoke(main, ["synth", "--lang", "en", "--n", "4", "--jobs", "1",
                                                    "--out", str(read_only_folder / "calls")]))
    assert str(read_only_folder / "calls") in line and "Read-only file system" in line, line
