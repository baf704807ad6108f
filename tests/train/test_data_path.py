"""The data path: batches made in DataLoader workers change no bit, later epochs of a frozen cached
encoder read neither audio nor features, the data share of the step is measured, and a worker
neither holds the run lock nor stops on the run's signals."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from safetensors.torch import load_file

from adaptkit import child
from adaptkit.errors import AdaptkitError
from adaptkit.recipe import Recipe
from adaptkit.train import guard, run


def _logged(monkeypatch, stack_qwen3, log):
    """Wrap the audio loader and the architecture's feature extractor to append a line per call to
    `log` (what, and the pid of the process): a file, so that calls in forked workers count too."""
    import adaptkit.data.batching as batching
    from adaptkit.models import architecture

    kind = type(architecture(stack_qwen3))
    load_audio, features = batching.load_audio, kind.features

    def note(line: str) -> None:
        with open(log, "a") as f:
            f.write(f"{line} {os.getpid()}\n")

    def counted_audio(path, *args, **kwargs):
        note(f"audio {path}")
        return load_audio(path, *args, **kwargs)

    def counted_features(self, extractor, wave):
        note("features")
        return features(self, extractor, wave)

    monkeypatch.setattr(batching, "load_audio", counted_audio)
    monkeypatch.setattr(kind, "features", counted_features)


def test_workers_change_no_bit_and_later_epochs_read_neither_audio_nor_features(make_recipe, monkeypatch, tmp_path, stack_qwen3):
    """Two epochs (8 train calls, batches of 4) and three dev passes, with 0 and with 2 workers:
    the same adapter bit for bit, and in both every audio file read once and features computed once
    per sample (8 train + 2 dev), in the workers where there are some, the frozen encoder run once per
    train sample."""
    log = tmp_path / "calls.log"
    _logged(monkeypatch, stack_qwen3, log)
    adapters = {}
    for workers in (0, 2):
        log.write_text("")
        recipe = Recipe.load(make_recipe(train={"max_steps": None, "epochs": 2, "eval_every": 2, "data_workers": workers, "merged": False},
                                         output_dir=str(tmp_path / f"workers_{workers}")))
        summary = run(recipe)
        assert summary.steps == 4 and summary.encoded_samples == 8
        calls = [line.split() for line in log.read_text().splitlines()]
        audio = [path for what, path, _ in (c for c in calls if c[0] == "audio")]
        assert len(audio) == len(set(audio)) == 10, (workers, calls)
        assert [c[0] for c in calls].count("features") == 10, (workers, calls)
        here = {int(c[-1]) == os.getpid() for c in calls}
        assert here == {workers == 0}, "the data was loaded in another process than train.data_workers says"
        adapters[workers] = load_file(recipe.output_dir / "adapter" / "adapter.safetensors")
    assert set(adapters[0]) == set(adapters[2])
    for name, value in adapters[0].items():
        assert value.equal(adapters[2][name]), name
    assert not [t for t in threading.enumerate() if t.name == "QueueFeederThread"], "a worker's feeder thread outlived the run"


def test_the_data_share_of_the_step_is_reported_and_a_slow_data_path_raises_it(make_recipe, monkeypatch, tmp_path, capfd):
    import adaptkit.data.batching as batching

    load_audio = batching.load_audio

    def slow(*args, **kwargs):
        time.sleep(0.25)
        return load_audio(*args, **kwargs)

    shares = {}
    for name in ("normal", "slow"):
        if name == "slow":
            monkeypatch.setattr(batching, "load_audio", slow)
        recipe = Recipe.load(make_recipe(train={"max_steps": 2, "data_workers": 0, "merged": False}, data={"dev": None},
                                         output_dir=str(tmp_path / name)))
        summary = run(recipe)
        shares[name] = json.loads((recipe.output_dir / "summary.json").read_text())["data_wait_share"]
        assert shares[name] == summary.data_wait_share
    assert all(0 <= share <= 1 for share in shares.values()), shares
    assert shares["slow"] > shares["normal"], shares
    assert "data=" in capfd.readouterr().err  # the progress bar's postfix


def test_a_user_error_in_a_worker_is_its_one_line(make_recipe, monkeypatch):
    import adaptkit.data.batching as batching

    def vanished(path, *args, **kwargs):
        raise AdaptkitError(f"{path}: cannot read audio (No such file or directory)")

    monkeypatch.setattr(batching, "load_audio", vanished)
    path = make_recipe(train={"max_steps": 1, "data_workers": 2, "merged": False}, data={"dev": None})
    with pytest.raises(AdaptkitError) as err:
        run(Recipe.load(path))
    assert str(err.value).startswith(f"{path}: ") and str(err.value).endswith(": cannot read audio (No such file or directory)")
    assert "\n" not in str(err.value)


def test_a_random_draw_while_encoding_depends_on_the_sample_alone_and_moves_no_global_rng():
    """A feature extractor's dither in a worker or in the main process: the same noise for a sample."""
    import numpy as np
    import torch

    from adaptkit.data.loading import SampleDataset

    data = SampleDataset([None, None], lambda sample, n_audio: (float(torch.rand(())), float(np.random.rand())), seed=3)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    first = [data[0][1], data[1][1]]
    assert [data[0][1], data[1][1]] == first and first[0] != first[1]
    assert SampleDataset([None], data.encode_one, seed=4)[0][1] != first[0]
    assert torch.equal(torch.random.get_rng_state(), torch_state) and (np.random.get_state()[1] == numpy_state).all()


def test_a_forked_worker_neither_holds_the_run_lock_nor_stops_on_sigterm_or_sigint(tmp_path):
    """The run's lock is free once the run's process lets it go, though the worker it forked lives
    on; SIGTERM and SIGINT sent to the worker leave it running."""
    read, write = os.pipe()
    with guard.output_lock(tmp_path):
        pid = os.fork()
        if pid == 0:  # the worker: without detach_worker either signal would end it before it writes
            try:
                guard.detach_worker(os.getppid())
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)
                os.write(write, b"alive")
                time.sleep(60)
            finally:
                os._exit(0)
        os.close(write)
        assert os.read(read, 5) == b"alive"
    try:
        with guard.output_lock(tmp_path):  # a second run takes the lock while the worker still lives
            assert child.wait(pid, block=False) is None
    finally:
        os.kill(pid, signal.SIGKILL)
        child.wait(pid)
        os.close(read)
