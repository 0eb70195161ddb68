"""Learning-curve plots of a run (agents.plots.curves_figure and its command line)."""

import numpy as np
import pytest

from agents.plots import curves_figure, main, moving_average
from mpenv.logger import RunLogger, read_scalars


def test_moving_average_is_a_trailing_mean():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(moving_average(values, 2), [1.0, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(moving_average(values, 10), np.cumsum(values) / np.arange(1, 6))


def test_curves_of_a_run(tmp_path, capsys):
    with RunLogger(tmp_path, {"algo": "test"}, progress=False) as log:
        for step in range(1, 41):
            log.log("charts/episodic_return", float(step), step * 10)
            log.log("losses/value_loss", 1.0 / step, step * 10)
    fig = curves_figure(tmp_path, ["charts/episodic_return", "losses/value_loss"], smooth=5)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "charts/episodic_return"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), np.arange(1, 41))
    main([str(tmp_path), "--tags", "losses/value_loss", "--out", str(tmp_path / "c.png")])
    assert (tmp_path / "c.png").stat().st_size > 1000 and "wrote" in capsys.readouterr().out
    with pytest.raises(KeyError, match="no scalar 'eval/nothing'"):
        curves_figure(tmp_path, ["eval/nothing"])


def test_bad_run_dirs_and_tags_are_one_line_errors_that_write_nothing(tmp_path, capsys):
    out = tmp_path / "c.png"
    assert main([str(tmp_path / "nope"), "--out", str(out)]) == 2
    expected = f"python -m agents.plots: error: {tmp_path / 'nope'}: no such run directory"
    assert capsys.readouterr().err.strip() == expected
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no TensorBoard scalars" in capsys.readouterr().err
    with RunLogger(tmp_path / "run", {"algo": "test"}, progress=False) as log:
        log.log("charts/episodic_return", 1.0, 1)
    assert main([str(tmp_path / "run"), "--tags", "eval/nothing", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tags" in err and "eval/nothing" in err and "charts/episodic_return" in err
    assert not out.exists()


def test_a_generative_run_without_episodes_plots_its_own_scalars(tmp_path, capsys):
    with RunLogger(tmp_path, {"model": "vae"}, progress=False) as log:  # what generative/train.py logs
        for epoch in range(1, 6):
            log.log("loss/train", 1.0 / epoch, epoch)
            log.log("loss/val", 1.5 / epoch, epoch)
    assert main([str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000 and "wrote" in capsys.readouterr().out
    fig = curves_figure(tmp_path, ["loss/train", "loss/val"])
    assert [ax.get_title() for ax in fig.axes] == ["loss/train", "loss/val"]


def test_read_scalars_reads_a_resumed_runs_files_in_the_order_they_were_written(tmp_path):
    """Two event files opened in the same second differ only in a counter, ``.9`` then ``.10``: as text they
    sort the wrong way round, and the resumed points must still come after the first run's."""
    for counter, steps in ((9, (1, 2)), (10, (3, 4))):
        part = tmp_path / f"part{counter}"
        with RunLogger(part, {"algo": "test"}, progress=False) as log:
            for step in steps:
                log.log("losses/loss", float(step), step)
        (event_file,) = part.glob("events.out.tfevents.*")
        event_file.rename(tmp_path / f"events.out.tfevents.1700000000.host.42.{counter}")
    steps, values = read_scalars(tmp_path, "losses/loss")
    assert steps.tolist() == [1, 2, 3, 4] and values.tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(KeyError, match="no scalar 'nope'"):
        read_scalars(tmp_path, "nope")
