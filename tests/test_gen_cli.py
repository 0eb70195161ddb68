"""mpenv-gen (generative.train): short runs through the real CLI, files, resume, interruption, errors."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from generative import data, train
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
    # the likelihood curve: every epoch, nats and bits/dim of the same number (8 x 8 pixels)
    nll_steps, nats = read_scalars(vae_run, "nll/val")
    bits_steps, bits = read_scalars(vae_run, "nll/val_bits_per_dim")
    assert list(nll_steps) == list(bits_steps) == [1, 2, 3] and 0 < nats[-1] < nats[0]
    assert bits == pytest.approx(nats / (64 * math.log(2)), rel=1e-5)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(vae_run))
    events.Reload()
    assert {"samples", "reconstructions"} <= set(events.Tags()["images"])


def test_eval_and_sample(vae_run, tmp_path, capsys):
    assert train.main(["eval", str(vae_run), "--iwae-k", "5", "--device", "cpu"]) == 0
    line = capsys.readouterr().out
    nats, bits = map(float, re.search(r"test NLL ([\d.]+) nats, ([\d.]+) bits/dim \(IWAE bound, k=5\)", line).groups())
    assert bits == pytest.approx(nats / (64 * 0.6931471805599453), rel=1e-3)
    assert train.main(["sample", str(vae_run), "-n", "16", "--out", str(tmp_path / "s.png"), "--device", "cpu"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_train_and_eval_report_the_same_seeded_iwae_bound(vae_run, capsys):
    """train printed its test NLL with --iwae-k 5 (SHORT); eval with the same k prints the same number, and both
    name k; the default k is the same (1000) in both commands."""
    assert train.main(["eval", str(vae_run), "--iwae-k", "5"]) == 0
    first = capsys.readouterr().out
    assert train.main(["eval", str(vae_run), "--iwae-k", "5"]) == 0
    assert capsys.readouterr().out == first and "k=5)" in first
    defaults = {name: train.build_parser().parse_args([name, "x"]).iwae_k for name in ("train", "eval")}
    assert defaults == {"train": train.IWAE_K, "eval": train.IWAE_K}


def test_train_prints_what_eval_prints(tmp_path, capsys):
    assert train.main(["train", "vae", "--logdir", str(tmp_path), "--epochs", "2", "--iwae-k", "7"]) == 0
    trained = re.search(r"test NLL .*\n", capsys.readouterr().out).group()
    assert train.main(["eval", str(only_run_dir(tmp_path)), "--iwae-k", "7"]) == 0
    assert re.search(r"test NLL .*\n", capsys.readouterr().out).group() == trained and "k=7" in trained


def test_device_flag_reaches_sample_and_eval(vae_run, tmp_path, monkeypatch):
    """sample and eval build the model on the device --device names, through mpenv.device.get_device."""
    asked = []
    real = train.get_device

    def spy(spec):
        asked.append(spec)
        return real("cpu")

    monkeypatch.setattr(train, "get_device", spy)
    assert train.main(["eval", str(vae_run), "--iwae-k", "2", "--device", "cuda:3"]) == 0
    assert train.main(["sample", str(vae_run), "--out", str(tmp_path / "s.png"), "--device", "mps"]) == 0
    assert asked == ["cuda:3", "mps"]


def test_resume_continues_the_epochs(vae_run, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(vae_run, run)
    config = (run / "config.json").read_text().replace('"epochs": 3', '"epochs": 5')
    (run / "config.json").write_text(config)
    assert train.main(["train", "--resume", str(run), "--sample-every", "10", "--iwae-k", "2"]) == 0
    steps, _ = read_scalars(run, "loss/val")
    assert sorted(set(steps)) == [1, 2, 3, 4, 5]


def test_explicit_flags_take_effect_on_resume(vae_run, tmp_path, capsys):
    """--epochs, --learning-rate, --patience and --batch-size given on --resume replace the run's; the model, its
    data and seed cannot change; a total the run has already reached is an error that writes nothing."""
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(vae_run, run)
    argv = ["train", "--resume", str(run), "--epochs", "4", "--learning-rate", "0.0005", "--patience", "7",
            "--batch-size", "32", "--iwae-k", "2"]  # fmt: skip
    assert train.main(argv) == 0
    assert sorted(set(read_scalars(run, "loss/val")[0])) == [1, 2, 3, 4]  # 4 epochs in all, not the run's 3 + more
    steps, rates = read_scalars(run, "charts/learning_rate")
    assert rates[list(steps).index(4)] == pytest.approx(5e-4) and rates[list(steps).index(3)] == pytest.approx(1e-3)
    config = json.loads((run / "config.json").read_text())
    assert (config["epochs"], config["learning_rate"], config["patience"], config["batch_size"]) == (4, 5e-4, 7, 32)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["optimizers"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4)
    capsys.readouterr()
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    for bad, message in [(["--epochs", "4"], "--epochs 4: .* has trained 4 epochs already"),
                         (["--epochs", "2"], "--epochs 2: .* has trained 4 epochs already"),
                         (["--data", "digits"], "--data cannot change on --resume"),
                         (["--seed", "3"], "--seed cannot change on --resume")]:  # fmt: skip
        assert train.main(["train", "--resume", str(run), *bad]) == 2
        assert re.search(message, capsys.readouterr().err)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


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
        (["train", "made", "--data", "digits"], "binary model needs inputs in {0, 1}; binarize the data first "
                                                "(--binarize threshold or stochastic)"),
        (["train", "vae", "--model-kwargs", '{"latent": 3}'], "bad model kwargs (--model-kwargs)"),
        (["train", "vae", "--model-kwargs", "latent_dim=4"], "--model-kwargs must be a JSON object like"),
        (["train", "vae", "--model-kwargs", "[4]"], "--model-kwargs must be a JSON object like"),
        (["train", "cvae", "--data", "omniglot28"], "needs labelled data"),
        (["train", "made", "--data", "idx:/nope"], "--data idx:/nope: no such file /nope"),
        (["train", "made", "--data", "toy:rings", "--binarize", "threshold"], "--binarize threshold: binarize "
                                                                                "applies to images"),
        (["train", "made", "--data", "digits-binary", "--binarize", "stochastic"], "needs 'digits'"),
        (["train", "made", "--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["train", "made", "--epochs", "-3"], "--epochs must be at least 1, got -3"),
        (["train", "made", "--patience", "0"], "--patience must be at least 1"),
        (["train", "made", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["train", "made", "--learning-rate", "-1"], "--learning-rate must be a positive number"),
        (["train", "made", "--learning-rate", "nan"], "--learning-rate must be a positive number"),
        (["train", "made", "--sample-every", "0"], "--sample-every must be at least 1"),
        (["train", "vae", "--iwae-k", "0"], "--iwae-k must be at least 1"),
        (["train", "made", "--threads", "-1"], "--threads must be >= 0"),
        (["train", "made", "--device", "tpu"], "device"),
        (["eval", "/nonexistent/run"], "no such checkpoint"),
        (["eval", "/nonexistent/run", "--iwae-k", "0"], "--iwae-k must be at least 1"),
        (["sample", "/nonexistent/run", "-n", "0"], "-n must be at least 1, got 0"),
        (["sample", "/nonexistent/run", "-n", "-4"], "-n must be at least 1, got -4"),
        (["sample", "/nonexistent/run", "--out", "/missing/dir/s.png"], "--out /missing/dir/s.png: no such directory "
                                                                          "/missing/dir"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    assert train.main([*argv, "--logdir", str(tmp_path)] if argv[0] == "train" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpenv-gen: error: ") and err.count("\n") == 1 and message in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "message"), [
    (["-n", "0"], "-n must be at least 1, got 0"),
    (["-n", "-4"], "-n must be at least 1, got -4"),
    (["--out", "/missing/dir/s.png"], "--out /missing/dir/s.png: no such directory /missing/dir"),
    (["--device", "cuda:99"], "--device cuda:99"),
    (["--out", "."], "--out . is a directory"),
])  # fmt: skip
def test_bad_sample_arguments_on_a_real_run(vae_run, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # the default --out would land here
    assert train.main(["sample", str(vae_run), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpenv-gen: error: ") and err.count("\n") == 1 and message in err, err
    assert not any(tmp_path.iterdir())


def test_help_shows_the_defaults(capsys):
    for command, shown in [("train", ["(default: 200;", "(default: digits-binary)", "(default: 1000)",
                                      "(default: auto)", "(default: runs)", "(default: 1)"]),
                           ("sample", ["(default: 64)", "(default: samples.png)", "(default: auto)"]),
                           ("eval", ["(default: 1000)", "(default: auto)"])]:  # fmt: skip
        with pytest.raises(SystemExit):
            train.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(s in text for s in shown), (command, text)


def test_binarize_trains_every_model_on_an_idx_file(tmp_path, capsys):
    """An MNIST-format file of grey 8 x 8 images (the digits, scaled to 0..255) trains a binary model with
    --binarize threshold or stochastic; the data the run used are the thresholded / Bernoulli pixels."""
    grey = torch.cat(list(data.digits())).squeeze(1)  # [1797, 8, 8] in [0, 1]
    path = tmp_path / "digits-idx3-ubyte.gz"
    data.write_idx(path, (grey * 255).round().numpy().astype(np.uint8))
    assert train.main(["train", "made", "--data", f"idx:{path}", "--logdir", str(tmp_path / "x"), *SHORT]) == 2
    assert "--binarize threshold or stochastic" in capsys.readouterr().err
    for model, binarize in [("made", "threshold"), ("fvsbn", "stochastic"), ("vae", "threshold")]:
        logdir = tmp_path / f"{model}-{binarize}"
        argv = ["train", model, "--data", f"idx:{path}", "--binarize", binarize, "--logdir", str(logdir), *SHORT]
        assert train.main(argv) == 0
        run = only_run_dir(logdir)
        assert json.loads((run / "config.json").read_text())["binarize"] == binarize
        nll = read_scalars(run, "nll/val")[1]
        assert len(nll) == 3 and nll[-1] < 64 * math.log(2)  # better than a fair coin per pixel
        assert train.main(["eval", str(run), "--iwae-k", "5"]) == 0  # eval reloads the same binarized data
    train_split, _, _ = train.load_data(f"idx:{path}", 1, False, "threshold")
    assert set(train_split.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(train_split, (data.load(f"idx:{path}", seed=1).train * 255 >= 128).float())
    stochastic, _, _ = train.load_data(f"idx:{path}", 1, False, "stochastic")
    assert set(stochastic.unique().tolist()) == {0.0, 1.0} and not torch.equal(stochastic, train_split)


def test_corrupt_checkpoint_names_the_file(vae_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "broken"
    shutil.copytree(vae_run, run)
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert train.main(["eval", str(run)]) == 2
    assert "checkpoint.pt: not a readable torch checkpoint" in capsys.readouterr().err
