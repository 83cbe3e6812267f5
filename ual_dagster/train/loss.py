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


def _rows(logits2d, positions, s: int, e: int, first: int, contiguous: bool, out: torch.Tensor | None = None):
    """The chunk's logits rows as fp32: a view when contiguous and fp32, else a copy
    (into `out[: e - s]` when given)."""
    if contiguous:
        rows = logits2d[first : first + (e - s)]
        if rows.dtype == torch.float32:
            return rows
        if out is None:
            return rows.float()
        return out[: e - s].copy_(rows)
    if out is None:
        return logits2d.index_select(0, positions[s:e]).float()
    if logits2d.dtype == torch.float32:
        return torch.index_select(logits2d, 0, positions[s:e], out=out[: e - s])
    return out[: e - s].copy_(logits2d.index_select(0, positions[s:e]))


class _SmoothedCrossEntropy(torch.autograd.Function):
    # Per chunk only the passes over (chunk x V) run in the loop; everything per token is
    # vectorised over all targets at once. Few, large ops matter on a busy CPU, where each
    # op is a parallel region whose threads must all be scheduled.

    @staticmethod
    def forward(ctx, logits2d, flat_labels, eps_tokens, positions, normalizer, chunk_tokens):
        vocab = logits2d.shape[1]
        targets = flat_labels.index_select(0, positions)
        eps = eps_tokens.index_select(0, positions)
        n = positions.numel()
        lse = torch.empty(n, dtype=torch.float32, device=logits2d.device)
        any_smoothing = bool((eps != 0).any()) if n else False
        row_sums = torch.empty(n, dtype=torch.float32, device=logits2d.device) if any_smoothing else None
        # One reused (chunk x V) work buffer: a fresh multi-MB temporary per chunk would be
        # a new mmap each time, paid again in page faults.
        work = torch.empty((min(chunk_tokens, n), vocab), dtype=torch.float32, device=logits2d.device)
        for s, e, first, contiguous in _chunks(positions, chunk_tokens):
            rows = _rows(logits2d, positions, s, e, first, contiguous, out=work)
            if any_smoothing:
                torch.sum(rows, dim=1, out=row_sums[s:e])
            row_max = rows.amax(dim=1, keepdim=True)
            buf = work[: e - s]
            torch.sub(rows, row_max, out=buf)  # may overwrite `rows` when it is `work`: fine, read last
            buf.exp_()
            torch.sum(buf, dim=1, out=lse[s:e])
            lse[s:e].log_().add_(row_max.squeeze(1))
        z_y = logits2d[positions, targets].float()
        token_loss = lse - z_y
        if any_smoothing:
            token_loss = token_loss + eps * (z_y - row_sums / vocab)
        norm = float(normalizer) if not torch.is_tensor(normalizer) else float(normalizer.item())
        norm = norm if norm > 0 else 1.0
        ctx.save_for_backward(logits2d, targets, eps, lse, positions)
        ctx.norm = norm
        ctx.chunk_tokens = chunk_tokens
        ctx.any_smoothing = any_smoothing
        return token_loss.sum() / norm

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
        shift = (lse if log_scale is None else lse - log_scale)[:, None]
        uniform_part = ((scale / vocab) * eps)[:, None] if ctx.any_smoothing else None
        target_part = (-scale * (1.0 - eps))[:, None]
        target_cols = targets[:, None]
        direct = logits2d.dtype == torch.float32  # contiguous fp32 chunks are computed inside `grad`
        work = torch.empty((min(ctx.chunk_tokens, positions.numel()), vocab), dtype=torch.float32, device=grad.device)
        for s, e, first, contiguous in _chunks(positions, ctx.chunk_tokens):
            if direct and contiguous:
                out = grad[first : first + (e - s)]
                torch.sub(logits2d[first : first + (e - s)], shift[s:e], out=out)
            else:
                out = _rows(logits2d, positions, s, e, first, contiguous, out=work).sub_(shift[s:e])
            out.exp_()
            if log_scale is None:
                out.mul_(scale)
            if uniform_part is not None:
                out.sub_(uniform_part[s:e])
            out.scatter_add_(1, target_cols[s:e], target_part[s:e])
            if not (direct and contiguous):
                grad.index_copy_(0, positions[s:e], out.to(grad.dtype))
        return grad, None, None, None, None, None
