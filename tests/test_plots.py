"""Learning-curve plots of a run (agents.plots.curves_figure and its command line)."""

import numpy as np
import pytest

from agents.plots import curves_figure, main, moving_average
from mpenv.logger import RunLogger


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
