"""Gaussian joint heatmaps and their argmax / quarter-offset / soft-argmax decoders."""

import pytest
import torch

from vision3d.body.heatmaps import argmax_decode, gaussian_heatmaps, quarter_offset_refine, soft_argmax


def test_peak_is_one_at_integer_keypoint():
    keypoints = torch.tensor([[3.0, 5.0], [0.0, 0.0], [15.0, 11.0]], dtype=torch.float64)
    maps = gaussian_heatmaps(keypoints, 12, 16, sigma=1.5)
    assert maps.shape == (3, 12, 16) and maps.dtype == torch.float64
    for k, (x, y) in enumerate(keypoints.long().tolist()):
        assert maps[k, y, x] == 1.0
        assert maps[k].max() == 1.0 and (maps[k] < 1.0).sum() == 12 * 16 - 1
    # The formula itself at one off-peak pixel.
    expected = torch.exp(torch.tensor(-(2.0**2 + 1.0**2) / (2 * 1.5**2), dtype=torch.float64))
    assert maps[0, 6, 5] == pytest.approx(expected.item(), rel=1e-12)


def test_peak_at_rounded_subpixel_keypoint():
    maps = gaussian_heatmaps(torch.tensor([[6.4, 2.7]]), 10, 10, sigma=2.0)
    coords, scores = argmax_decode(maps)
    assert coords.tolist() == [[6.0, 3.0]] and 0 < scores.item() < 1


def test_invisible_joints_give_zero_maps():
    keypoints = torch.rand(2, 4, 2) * 10
    visible = torch.tensor([[True, False, True, True], [False, False, True, False]])
    maps = gaussian_heatmaps(keypoints, 11, 13, sigma=2.0, visible=visible)
    assert maps.shape == (2, 4, 11, 13)
    assert torch.all(maps[~visible] == 0)
    assert torch.all(maps[visible].flatten(1).amax(1) > 0)
    with pytest.raises(ValueError, match="visible must have shape"):
        gaussian_heatmaps(keypoints, 11, 13, visible=visible[0])


def test_argmax_decode_recovers_integer_keypoints_batched():
    generator = torch.Generator().manual_seed(0)
    height, width = 24, 32
    x = torch.randint(0, width, (3, 5, 7), generator=generator)
    y = torch.randint(0, height, (3, 5, 7), generator=generator)
    keypoints = torch.stack([x, y], dim=-1).float()
    maps = gaussian_heatmaps(keypoints, height, width, sigma=2.0)
    assert maps.shape == (3, 5, 7, height, width)
    coords, scores = argmax_decode(maps)
    assert coords.shape == (3, 5, 7, 2) and scores.shape == (3, 5, 7)
    torch.testing.assert_close(coords, keypoints, rtol=0, atol=0)
    torch.testing.assert_close(scores, torch.ones_like(scores))


@pytest.mark.parametrize(("sigma", "beta"), [(2.0, 20.0), (3.0, 20.0), (5.0, 50.0)])
def test_soft_argmax_recovers_subpixel_keypoints(sigma, beta):
    keypoints = torch.tensor([[10.3, 7.6], [25.75, 20.1], [4.5, 14.9]], dtype=torch.float64)
    maps = gaussian_heatmaps(keypoints, 32, 40, sigma=sigma)
    coords = soft_argmax(maps, beta=beta)
    assert coords.shape == (3, 2) and coords.dtype == torch.float64
    assert (coords - keypoints).abs().max() < 0.05


def test_soft_argmax_is_differentiable():
    keypoints = torch.tensor([[[10.3, 7.6], [3.2, 4.9]]])
    maps = gaussian_heatmaps(keypoints, 16, 20, sigma=2.0).requires_grad_(True)
    coords = soft_argmax(maps)
    assert coords.shape == (1, 2, 2)
    coords.sum().backward()
    assert maps.grad is not None and maps.grad.shape == maps.shape
    assert torch.isfinite(maps.grad).all() and maps.grad.abs().sum() > 0
    # Large beta: softmax subtracts the max, so nothing overflows.
    maps.grad = None
    soft_argmax(maps, beta=1e4).sum().backward()
    assert torch.isfinite(maps.grad).all()


def test_quarter_offset_moves_toward_higher_neighbour():
    keypoints = torch.tensor([[10.3, 7.6], [5.0, 5.0], [0.2, 3.0]])
    maps = gaussian_heatmaps(keypoints, 16, 20, sigma=2.0)
    coords, _ = argmax_decode(maps)
    refined = quarter_offset_refine(maps, coords)
    # (10, 8) -> right (10.3 > 10) and up (7.6 < 8); an exact keypoint stays; x = 0 is on the border and stays.
    torch.testing.assert_close(refined, torch.tensor([[10.25, 7.75], [5.0, 5.0], [0.0, 3.0]]))
    assert (refined - keypoints)[0].abs().max() < (coords - keypoints)[0].abs().max()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[..., K, 2\]"):
        gaussian_heatmaps(torch.zeros(3, 3), 4, 4)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(torch.zeros(3, 2), 4, 4, sigma=0.0)
    with pytest.raises(ValueError, match=r"\[..., K, H, W\]"):
        argmax_decode(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="beta"):
        soft_argmax(torch.zeros(1, 4, 4), beta=-1.0)
