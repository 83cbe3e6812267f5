"""Label-smoothed cross-entropy with a smoothing value per sample or per token (UAL).

Per target token, with logits z over V classes, label y and smoothing eps:

    loss = (1 - eps) * (-log p_y) + eps * mean_v(-log p_v)
         = (lse - z_y) + eps * (z_y - mean_v z_v)          (lse = logsumexp(z))

    d loss / d z = softmax(z) - (1 - eps) * onehot(y) - eps / V

eps = 0 is plain cross-entropy; a constant eps is ordinary label smoothing, so
SFT, LS and UAL share this one function.

Memory: the forward keeps only the logits it was given (no log-softmax copy) and
one float per target token (its lse). Positions whose label is `ignore_index` are
skipped, and the rest are processed `chunk_tokens` rows at a time, so the only
(tokens x V) buffer beyond the logits is their gradient, allocated in backward and
filled chunk by chunk with the softmax recomputed from the saved lse.
"""

from __future__ import annotations

import math

import torch


def uncertainty_smoothed_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor | float,
    ignore_index: int = -100,
    chunk_tokens: int = 64,
    normalizer: int | float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Sum of per-token smoothed losses over non-ignored tokens, divided by `normalizer`.

    logits: (B, T, V) or (N, V); labels: (B, T) or (N,), already aligned with the
    logits (the caller does the causal shift). epsilon: a float, (B,) per sample or
    (B, T) per token. normalizer: the target-token count of the whole accumulated
    batch when gradients are accumulated over micro-batches; default: this batch's
    count. A batch without targets gives 0 with a zero gradient.
    """
    if logits.dim() < 2:
        raise ValueError(f"logits must be (..., V), got shape {tuple(logits.shape)}")
    vocab = logits.shape[-1]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match logits {tuple(logits.shape[:-1])}")
    eps_tokens = _per_token_epsilon(epsilon, labels).reshape(-1)
    flat_labels = labels.reshape(-1)
    target_positions = (flat_labels != ignore_index).nonzero().squeeze(1)
    if normalizer is None:
        normalizer = target_positions.numel()
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    return _SmoothedCrossEntropy.apply(
        logits.reshape(-1, vocab),
        flat_labels,
        eps_tokens,
        target_positions,
        normalizer,
        chunk_tokens,
    )


def _per_token_epsilon(epsilon: torch.Tensor | float, labels: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(epsilon):
        return torch.full(labels.shape, float(epsilon), dtype=torch.float32, device=labels.device)
    eps = epsilon.to(device=labels.device, dtype=torch.float32)
    if eps.dim() == 0:
        return eps.expand(labels.shape)
    if eps.shape == labels.shape:
        return eps
    if labels.dim() == 2 and eps.shape == labels.shape[:1]:
        return eps[:, None].expand(labels.shape)
    raise ValueError(
        f"epsilon shape {tuple(eps.shape)} must be () , (B,) = {tuple(labels.shape[:1])} "
        f"or (B, T) = {tuple(labels.shape)}"
    )


def _chunks(positions: torch.Tensor, chunk_tokens: int):
    """Yield (start, stop, first_row, contiguous) for each chunk of target positions.

    A chunk whose rows are consecutive in the logits is read as a view (no copy);
    otherwise its rows are gathered with index_select.
    """
    n = positions.numel()
    if n == 0:
        return
    # One host sync for all chunks: the first and last row of each.
    starts = list(range(0, n, chunk_tokens))
    stops = [min(s + chunk_tokens, n) for s in starts]
    firsts = positions[starts].tolist()
    lasts = positions[[e - 1 for e in stops]].tolist()
    for s, e, first, last in zip(starts, stops, firsts, lasts):
        yield s, e, first, (last - first) == (e - s - 1)


def _rows(logits2d: torch.Tensor, positions: torch.Tensor, s: int, e: int, first: int, contiguous: bool):
    if contiguous:
        return logits2d[first : first + (e - s)]
    return logits2d.index_select(0, positions[s:e])


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits2d, flat_labels, eps_tokens, positions, normalizer, chunk_tokens):
        vocab = logits2d.shape[1]
        targets = flat_labels.index_select(0, positions)
        eps = eps_tokens.index_select(0, positions)
        lse = torch.empty(positions.numel(), dtype=torch.float32, device=logits2d.device)
        total = torch.zeros((), dtype=torch.float32, device=logits2d.device)
        any_smoothing = bool((eps != 0).any()) if eps.numel() else False
        for s, e, first, contiguous in _chunks(positions, chunk_tokens):
            rows = _rows(logits2d, positions, s, e, first, contiguous).float()
            chunk_lse = torch.logsumexp(rows, dim=1)
            lse[s:e] = chunk_lse
            z_y = rows.gather(1, targets[s:e, None]).squeeze(1)
            token_loss = chunk_lse - z_y
            if any_smoothing:
                token_loss = token_loss + eps[s:e] * (z_y - rows.sum(dim=1) / vocab)
            total += token_loss.sum()
        norm = float(normalizer) if not torch.is_tensor(normalizer) else float(normalizer.item())
        norm = norm if norm > 0 else 1.0
        ctx.save_for_backward(logits2d, targets, eps, lse, positions)
        ctx.norm = norm
        ctx.chunk_tokens = chunk_tokens
        ctx.any_smoothing = any_smoothing
        return total / norm

    @staticmethod
    def backward(ctx, grad_out):
        logits2d, targets, eps, lse, positions = ctx.saved_tensors
        n_rows, vocab = logits2d.shape
        grad = torch.empty_like(logits2d)
        if positions.numel() < n_rows:
            ignored = torch.ones(n_rows, dtype=torch.bool, device=logits2d.device)
            ignored[positions] = False
            grad.index_fill_(0, ignored.nonzero().squeeze(1), 0.0)
        scale = float(grad_out) / ctx.norm
        # exp(z - lse + log scale) = scale * softmax(z): one pass instead of two when scale > 0.
        log_scale = math.log(scale) if scale > 0 else None
        in_place = logits2d.dtype == torch.float32
        for s, e, first, contiguous in _chunks(positions, ctx.chunk_tokens):
            rows = _rows(logits2d, positions, s, e, first, contiguous)
            shift = lse[s:e, None] if log_scale is None else (lse[s:e] - log_scale)[:, None]
            if in_place and contiguous:
                out = grad[first : first + (e - s)]
                torch.sub(rows, shift, out=out)
            elif in_place:
                out = rows.sub_(shift)  # `rows` is already a private copy (index_select)
            else:
                out = rows.float() - shift
            out.exp_()
            if log_scale is None:
                out.mul_(scale)
            if ctx.any_smoothing:
                out.sub_((scale / vocab) * eps[s:e, None])
            out.scatter_add_(1, targets[s:e, None], (-scale * (1.0 - eps[s:e]))[:, None])
            if not (in_place and contiguous):
                grad.index_copy_(0, positions[s:e], out.to(grad.dtype))
        return grad, None, None, None, None, None
