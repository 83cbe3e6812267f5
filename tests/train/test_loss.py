"""uncertainty_smoothed_loss against an independent float64 reference (plain log_softmax)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ual_dagster.train.loss import uncertainty_smoothed_loss

IGNORE = -100


def reference(logits, labels, eps_tok, normalizer=None):
    """float64: mean over targets of (1-eps) * -log p_y + eps * mean_v(-log p_v)."""
    logp = logits.double().log_softmax(-1)
    mask = labels != IGNORE
    nll = -logp.gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)
    uniform = -logp.mean(-1)
    per_tok = ((1 - eps_tok.double()) * nll + eps_tok.double() * uniform) * mask
    norm = mask.sum() if normalizer is None else normalizer
    return per_tok.sum() / max(float(norm), 1.0)


def random_case(seed, B=3, T=9, V=37, ignore_frac=0.3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * 3
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[torch.rand(B, T, generator=g) < ignore_frac] = IGNORE
    return logits, labels


def loss_and_grad(fn, logits):
    x = logits.clone().requires_grad_()
    out = fn(x)
    out.backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("chunk", [1, 4, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_per_sample_eps_matches_float64_reference(seed, chunk):
    logits, labels = random_case(seed)
    eps = torch.tensor([0.0, 0.13, 0.4])
    got, grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, labels, eps, chunk_tokens=chunk), logits)
    want, want_grad = loss_and_grad(lambda z: reference(z, labels, eps[:, None].expand_as(labels)), logits.double())
    assert torch.allclose(got.double(), want, rtol=1e-6, atol=1e-6)
    assert torch.allclose(grad.double(), want_grad, rtol=1e-5, atol=1e-7)


def test_per_token_eps_matches_reference():
    logits, labels = random_case(2, B=2, T=11, V=50)
    eps = torch.rand(2, 11, generator=torch.Generator().manual_seed(3)) * 0.5
    got, grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, labels, eps, chunk_tokens=3), logits)
    want, want_grad = loss_and_grad(lambda z: reference(z, labels, eps), logits.double())
    assert torch.allclose(got.double(), want, rtol=1e-6, atol=1e-6)
    assert torch.allclose(grad.double(), want_grad, rtol=1e-5, atol=1e-7)


def test_ignored_positions_get_zero_gradient():
    logits, labels = random_case(4)
    _, grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, labels, 0.1, chunk_tokens=2), logits)
    assert torch.count_nonzero(grad[labels == IGNORE]) == 0
    assert torch.count_nonzero(grad[labels != IGNORE]) > 0


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_constant_eps_equals_torch_label_smoothing(eps):
    logits, labels = random_case(5, B=4, T=6, V=29)
    ours, ours_grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, labels, eps, chunk_tokens=5), logits)
    ce, ce_grad = loss_and_grad(
        lambda z: F.cross_entropy(z.reshape(-1, 29), labels.reshape(-1), label_smoothing=eps, ignore_index=IGNORE),
        logits,
    )
    assert torch.allclose(ours, ce, rtol=1e-5, atol=1e-6)
    assert torch.allclose(ours_grad, ce_grad, rtol=1e-4, atol=1e-7)


def test_all_ignored_row_and_batch_give_zero_not_nan():
    logits, labels = random_case(6)
    labels[1] = IGNORE
    eps = torch.tensor([0.1, 0.2, 0.3])
    got, grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, labels, eps), logits)
    want = reference(logits, labels, eps[:, None].expand_as(labels))
    assert torch.allclose(got.double(), want, atol=1e-6)
    assert torch.count_nonzero(grad[1]) == 0

    all_ignored = torch.full_like(labels, IGNORE)
    got, grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, all_ignored, eps), logits)
    assert got.item() == 0.0
    assert torch.isfinite(grad).all() and torch.count_nonzero(grad) == 0


def test_gradient_accumulation_with_total_normalizer_equals_one_batch():
    logits, labels = random_case(7, B=4, T=8, V=31)
    eps = torch.tensor([0.0, 0.1, 0.2, 0.3])
    total = int((labels != IGNORE).sum())
    full, full_grad = loss_and_grad(lambda z: uncertainty_smoothed_loss(z, labels, eps, chunk_tokens=4), logits)

    x = logits.clone().requires_grad_()
    parts = [
        uncertainty_smoothed_loss(x[:2], labels[:2], eps[:2], chunk_tokens=4, normalizer=total),
        uncertainty_smoothed_loss(x[2:], labels[2:], eps[2:], chunk_tokens=4, normalizer=total),
    ]
    for p in parts:
        p.backward()
    assert torch.allclose(sum(p.detach() for p in parts), full, rtol=1e-6)
    assert torch.allclose(x.grad, full_grad, rtol=1e-5, atol=1e-8)


def test_flat_inputs_and_bf16_logits():
    logits, labels = random_case(8, B=1, T=16, V=40)
    flat, flat_labels = logits[0], labels[0]
    got = uncertainty_smoothed_loss(flat, flat_labels, 0.2)
    assert torch.allclose(got.double(), reference(flat, flat_labels, torch.full((16,), 0.2)), atol=1e-6)

    z = logits.to(torch.bfloat16).requires_grad_()
    loss = uncertainty_smoothed_loss(z, labels, 0.2)
    loss.backward()
    want, want_grad = loss_and_grad(lambda x: reference(x, labels, torch.full_like(labels, 0.2, dtype=torch.float64)), logits.to(torch.bfloat16).double())
    assert z.grad.dtype == torch.bfloat16
    assert torch.allclose(loss.double(), want, rtol=1e-5)
    assert torch.allclose(z.grad.double(), want_grad, atol=1e-2 / labels.numel())


def test_bad_shapes_are_clear_errors():
    logits, labels = random_case(9)
    with pytest.raises(ValueError, match="epsilon shape"):
        uncertainty_smoothed_loss(logits, labels, torch.zeros(5))
    with pytest.raises(ValueError, match="labels shape"):
        uncertainty_smoothed_loss(logits, labels[:, :3], 0.1)
