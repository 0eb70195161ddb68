"""mpenv-gen (generative.train): short runs through the real CLI, files, resume, interruption, errors."""

import re
from pathlib import Path

import pytest
import torch

from generative import train
from mpenv.logger import read_scalars

SHORT = ["--epochs", "3", "--sample-every", "2", "--iwae-k", "5", "--seed", "1"]


def only_run_dir(logdir: Path) -> Path:
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("runs")
    assert train.main(["train", "vae", "--data", "digits-binary", "--logdir", str(logdir), *SHORT]) == 0
    return only_run_dir(logdir)


def test_a_run_writes_config_checkpoint_scalars_and_images(vae_run):
    assert {"config.json", "checkpoint.pt"} <= {p.name for p in vae_run.iterdir()}
    steps, values = read_scalars(vae_run, "loss/val")
    assert list(steps) == [1, 2, 3] and torch.isfinite(torch.tensor(values)).all()
    assert len(read_scalars(vae_run, "nll/val_bits_per_dim")[0]) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(vae_run))
    events.Reload()
    assert {"samples", "reconstructions"} <= set(events.Tags()["images"])


def test_eval_and_sample(vae_run, tmp_path, capsys):
    assert train.main(["eval", str(vae_run), "--iwae-k", "5"]) == 0
    line = capsys.readouterr().out
    nats, bits = map(float, re.search(r"test NLL ([\d.]+) nats, ([\d.]+) bits/dim \(IWAE bound, k=5\)", line).groups())
    assert bits == pytest.approx(nats / (64 * 0.6931471805599453), rel=1e-3)
    assert train.main(["sample", str(vae_run), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_resume_continues_the_epochs(vae_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(vae_run, run)
    config = (run / "config.json").read_text().replace('"epochs": 3', '"epochs": 5')
    (run / "config.json").write_text(config)
    assert train.main(["train", "--resume", str(run), "--sample-every", "10", "--iwae-k", "2"]) == 0
    steps, _ = read_scalars(run, "loss/val")
    assert sorted(set(steps)) == [1, 2, 3, 4, 5]


def test_models_without_likelihood_and_conditional_models(tmp_path, capsys):
    assert train.main(["train", "autoencoder", "--logdir", str(tmp_path / "ae"), *SHORT]) == 0
    assert "(no likelihood)" in capsys.readouterr().out
    assert train.main(["sample", str(only_run_dir(tmp_path / "ae")), "--out", str(tmp_path / "x.png")]) == 2
    assert "cannot sample" in capsys.readouterr().err
    assert train.main(["train", "cvae", "--logdir", str(tmp_path / "cvae"), *SHORT]) == 0
    assert "IWAE bound" in capsys.readouterr().out


def test_ctrl_c_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    real_fit = train.fit

    def interrupted_fit(*args, **kwargs):
        kwargs["epochs"] = 2
        real_fit(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupted_fit)
    assert train.main(["train", "vae", "--logdir", str(tmp_path), *SHORT]) == 130
    run = only_run_dir(tmp_path)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2
    assert "last checkpoint is kept" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "vea"], "unknown model 'vea'"),
        (["train", "vae", "--data", "mnist"], "unknown data set 'mnist'"),
        (["train", "made", "--data", "digits"], "binary"),
        (["train", "vae", "--model-kwargs", '{"latent": 3}'], "bad model kwargs"),
        (["train", "cvae", "--data", "omniglot28"], "needs labelled data"),
        (["eval", "/nonexistent/run"], "no such checkpoint"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    assert train.main([*argv, "--logdir", str(tmp_path)] if argv[0] == "train" else argv) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_corrupt_checkpoint_names_the_file(vae_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "broken"
    shutil.copytree(vae_run, run)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert train.main(["eval", str(run)]) == 2
    assert "checkpoint.pt: not a readable torch checkpoint" in capsys.readouterr().err
