"""The smoothed losses (from logits, and from hidden states + lm_head) against an independent
float64 reference (plain log_softmax)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ual_dagster.train.loss import uncertainty_smoothed_linear_loss, uncertainty_smoothed_loss

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
    want, want_grad = loss_and_grad(
        lambda x: reference(x, labels, torch.full_like(labels, 0.2, dtype=torch.float64)),
        logits.to(torch.bfloat16).double(),
    )
    assert z.grad.dtype == torch.bfloat16
    assert torch.allclose(loss.double(), want, rtol=1e-5)
    assert torch.allclose(z.grad.double(), want_grad, atol=1e-2 / labels.numel())


def test_bad_shapes_are_clear_errors():
    logits, labels = random_case(9)
    with pytest.raises(ValueError, match="epsilon shape"):
        uncertainty_smoothed_loss(logits, labels, torch.zeros(5))
    with pytest.raises(ValueError, match="labels shape"):
        uncertainty_smoothed_loss(logits, labels[:, :3], 0.1)


# ---- uncertainty_smoothed_linear_loss: the same loss straight from hidden states ----


def linear_case(seed, B=3, T=9, H=12, V=37, ignore_frac=0.3, bias=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, H, generator=g)
    weight = torch.randn(V, H, generator=g) / H**0.5 * 3
    b = torch.randn(V, generator=g) if bias else None
    labels = torch.randint(0, V, (B, T), generator=g)
    labels[torch.rand(B, T, generator=g) < ignore_frac] = IGNORE
    return hidden, weight, b, labels


def linear_loss_and_grads(fn, hidden, weight, bias, dtype=None):
    """fn(hidden, weight, bias) with all three as leaves; returns the value and their gradients."""
    leaves = [t if t is None else t.to(dtype or t.dtype).clone().requires_grad_() for t in (hidden, weight, bias)]
    out = fn(*leaves)
    out.backward()
    return out.detach(), [t if t is None else t.grad for t in leaves]


def linear_reference(hidden, weight, bias, labels, eps_tok, normalizer=None):
    logits = hidden.double() @ weight.double().T
    if bias is not None:
        logits = logits + bias.double()
    return reference(logits, labels, eps_tok, normalizer)


def assert_matches(got, want, rtol=1e-5, atol=1e-6):
    (value, grads), (want_value, want_grads) = got, want
    assert torch.allclose(value.double(), want_value, rtol=rtol, atol=atol)
    for g, w in zip(grads, want_grads):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.allclose(g.double(), w, rtol=rtol, atol=atol), (g.double() - w).abs().max()


@pytest.mark.parametrize("chunk", [1, 4, None])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_per_sample_eps_matches_float64_reference(chunk, with_bias):
    hidden, weight, bias, labels = linear_case(10, bias=with_bias)
    eps = torch.tensor([0.0, 0.13, 0.4])
    got = linear_loss_and_grads(
        lambda h, w, b: uncertainty_smoothed_linear_loss(h, w, labels, eps, bias=b, chunk_tokens=chunk),
        hidden,
        weight,
        bias,
    )
    want = linear_loss_and_grads(
        lambda h, w, b: linear_reference(h, w, b, labels, eps[:, None].expand_as(labels)),
        hidden,
        weight,
        bias,
        dtype=torch.float64,
    )
    assert_matches(got, want)


def test_linear_per_token_eps_flat_inputs_and_normalizer_match_reference():
    hidden, weight, bias, labels = linear_case(11, B=1, T=23, V=50)
    hidden, labels = hidden[0], labels[0]  # (N, H) and (N,)
    eps = torch.rand(23, generator=torch.Generator().manual_seed(1)) * 0.5
    got = linear_loss_and_grads(
        lambda h, w, b: uncertainty_smoothed_linear_loss(h, w, labels, eps, bias=b, chunk_tokens=3, normalizer=40),
        hidden,
        weight,
        bias,
    )
    want = linear_loss_and_grads(
        lambda h, w, b: linear_reference(h, w, b, labels, eps, normalizer=40), hidden, weight, bias, dtype=torch.float64
    )
    assert_matches(got, want)


def test_linear_custom_ignore_index_and_all_ignored():
    hidden, weight, bias, labels = linear_case(12, V=30)
    labels[labels == IGNORE] = 30  # a different sentinel, outside the vocabulary
    eps = torch.tensor([0.1, 0.0, 0.2])
    masked = labels.masked_fill(labels == 30, IGNORE)
    got = linear_loss_and_grads(
        lambda h, w, b: uncertainty_smoothed_linear_loss(h, w, labels, eps, ignore_index=30, bias=b, chunk_tokens=5),
        hidden,
        weight,
        bias,
    )
    want = linear_loss_and_grads(
        lambda h, w, b: linear_reference(h, w, b, masked, eps[:, None].expand_as(labels)),
        hidden,
        weight,
        bias,
        dtype=torch.float64,
    )
    assert_matches(got, want)
    assert torch.count_nonzero(got[1][0][masked == IGNORE]) == 0

    nothing = torch.full_like(labels, IGNORE)
    value, (gh, gw, gb) = linear_loss_and_grads(
        lambda h, w, b: uncertainty_smoothed_linear_loss(h, w, nothing, eps, bias=b), hidden, weight, bias
    )
    assert value.item() == 0.0
    assert gh.shape == hidden.shape and not gh.any() and not gw.any() and not gb.any()


def test_linear_frozen_weight_gets_no_gradient_and_no_grad_gives_the_value():
    hidden, weight, _, labels = linear_case(13)
    h = hidden.clone().requires_grad_()
    loss = uncertainty_smoothed_linear_loss(h, weight, labels, 0.1, chunk_tokens=4)
    loss.backward()
    want = linear_loss_and_grads(
        lambda hh, w, b: linear_reference(hh, w, b, labels, torch.full(labels.shape, 0.1)),
        hidden,
        weight,
        None,
        dtype=torch.float64,
    )
    assert weight.grad is None and torch.allclose(h.grad.double(), want[1][0], atol=1e-6)
    with torch.no_grad():
        again = uncertainty_smoothed_linear_loss(h, weight, labels, 0.1, chunk_tokens=4)
    assert not again.requires_grad and torch.allclose(again, loss.detach())


def test_linear_equals_logits_path_under_accumulation_and_incoming_gradient():
    """Two micro-batches normalised by the total, and a loss scaled by 3 before backward."""
    hidden, weight, bias, labels = linear_case(14, B=4, T=8, V=31)
    eps = torch.tensor([0.0, 0.1, 0.2, 0.3])
    total = int((labels != IGNORE).sum())

    def accumulated(fn):
        h, w, b = (t.clone().requires_grad_() for t in (hidden, weight, bias))
        for sl in (slice(0, 2), slice(2, 4)):
            (3 * fn(h[sl], w, b, labels[sl], eps[sl])).backward()
        return h.grad, w.grad, b.grad

    ours = accumulated(
        lambda h, w, b, y, e: uncertainty_smoothed_linear_loss(h, w, y, e, bias=b, chunk_tokens=4, normalizer=total)
    )
    logits_path = accumulated(
        lambda h, w, b, y, e: uncertainty_smoothed_loss(h @ w.T + b, y, e, chunk_tokens=4, normalizer=total)
    )
    for a, b in zip(ours, logits_path):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_linear_bf16_matches_the_bf16_logits_path():
    hidden, weight, bias, labels = linear_case(15, B=2, T=16, H=32, V=64)
    eps = torch.tensor([0.05, 0.2])
    got = linear_loss_and_grads(
        lambda h, w, b: uncertainty_smoothed_linear_loss(h, w, labels, eps, bias=b, chunk_tokens=5),
        hidden,
        weight,
        bias,
        dtype=torch.bfloat16,
    )
    want = linear_loss_and_grads(
        lambda h, w, b: uncertainty_smoothed_loss(torch.nn.functional.linear(h, w, b), labels, eps, chunk_tokens=5),
        hidden,
        weight,
        bias,
        dtype=torch.bfloat16,
    )
    assert torch.allclose(got[0], want[0], rtol=1e-3)
    assert all(g.dtype == torch.bfloat16 for g in got[1])
    for g, w in zip(got[1], want[1]):
        # bf16 has 8 bits of mantissa; the weight gradient here sums in fp32 and rounds once.
        assert torch.allclose(g.float(), w.float(), rtol=2e-2, atol=2e-2 * w.float().abs().max())


def test_linear_never_allocates_a_tokens_by_vocab_tensor():
    """Every tensor created during forward + backward is recorded; none is as large as (N x V)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class LargestOutput(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    LargestOutput.largest = max(LargestOutput.largest, t.numel())
            return out

    N, H, V, chunk = 64, 8, 500, 4
    g = torch.Generator().manual_seed(16)
    hidden = torch.randn(N, H, generator=g).requires_grad_()
    weight = torch.randn(V, H, generator=g).requires_grad_()
    labels = torch.randint(0, V, (N,), generator=g)
    with LargestOutput():
        uncertainty_smoothed_linear_loss(hidden, weight, labels, 0.1, chunk_tokens=chunk).backward()
    # The largest are the (chunk x V) buffers and the (V x H) weight gradient.
    assert LargestOutput.largest <= max(chunk * V, V * H) < N * V


def test_linear_bad_inputs_are_clear_errors():
    hidden, weight, bias, labels = linear_case(17)
    with pytest.raises(ValueError, match="hidden must be"):
        uncertainty_smoothed_linear_loss(hidden[..., :5], weight, labels, 0.1)
    with pytest.raises(ValueError, match="labels shape"):
        uncertainty_smoothed_linear_loss(hidden, weight, labels[:, :2], 0.1)
    with pytest.raises(ValueError, match="bias must be"):
        uncertainty_smoothed_linear_loss(hidden, weight, labels, 0.1, bias=bias[:3])
    with pytest.raises(ValueError, match="share one dtype"):
        uncertainty_smoothed_linear_loss(hidden.double(), weight, labels, 0.1)
    with pytest.raises(ValueError, match="epsilon shape"):
        uncertainty_smoothed_linear_loss(hidden, weight, labels, torch.zeros(5))
