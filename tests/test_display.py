"""mpenv.display: headless rendering backends, picked at ``import mpenv`` only when there is no display."""

import os
import subprocess
import sys

import pytest

from mpenv.display import HEADLESS_BACKENDS, display_available, use_headless_backends

DISPLAY_VARIABLES = ("DISPLAY", "WAYLAND_DISPLAY")


def headless_environment() -> dict[str, str]:
    """This process's environment without a display and without any rendering backend chosen."""
    drop = {*DISPLAY_VARIABLES, *HEADLESS_BACKENDS}
    return {name: value for name, value in os.environ.items() if name not in drop}


@pytest.fixture
def clean_environ(monkeypatch):
    for name in (*DISPLAY_VARIABLES, *HEADLESS_BACKENDS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland display variables")
def test_backends_are_set_only_without_a_display(clean_environ):
    assert not display_available()
    use_headless_backends()
    assert os.environ["MUJOCO_GL"] == "egl" and os.environ["SDL_VIDEODRIVER"] == "offscreen"
    for name in HEADLESS_BACKENDS:
        clean_environ.delenv(name)
    clean_environ.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display_available()
    use_headless_backends()
    assert not any(name in os.environ for name in HEADLESS_BACKENDS)


def test_a_backend_the_user_chose_is_kept(clean_environ):
    clean_environ.setenv("SDL_VIDEODRIVER", "dummy")
    clean_environ.setenv("MUJOCO_GL", "osmesa")
    use_headless_backends()
    assert os.environ["SDL_VIDEODRIVER"] == "dummy" and os.environ["MUJOCO_GL"] == "osmesa"


RENDER_CARTPOLE = """
import hashlib, sys
import gymnasium as gym
import imageio.v2 as imageio
if sys.argv[1] == "mpenv":
    import mpenv
env = gym.make("CartPole-v1", render_mode="rgb_array")
env.reset(seed=0)
frames = [env.render() for _ in range(3)]
with imageio.get_writer(sys.argv[2], fps=30, codec="libx264", macro_block_size=1) as writer:
    for frame in frames:
        writer.append_data(frame)
print(hashlib.sha256(b"".join(f.tobytes() for f in frames)).hexdigest())
"""


def test_pygame_video_without_a_display_prints_nothing_and_draws_the_same_frames(tmp_path):
    """SDL's Wayland probe printed ``error: XDG_RUNTIME_DIR is invalid ...`` for every CartPole video."""
    pytest.importorskip("pygame")
    runs = {}
    for variant in ("mpenv", "plain"):
        result = subprocess.run(
            [sys.executable, "-c", RENDER_CARTPOLE, variant, str(tmp_path / f"{variant}.mp4")],
            env=headless_environment(), capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        runs[variant] = result
    assert "XDG_RUNTIME_DIR" not in runs["mpenv"].stderr, runs["mpenv"].stderr
    assert runs["mpenv"].stdout == runs["plain"].stdout  # SDL's own fallback is the same offscreen driver
    assert (tmp_path / "mpenv.mp4").stat().st_size > 0
