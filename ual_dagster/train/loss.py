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

`uncertainty_smoothed_linear_loss` goes one step further: it takes the hidden states
and the lm_head weight instead of the logits, and no (tokens x V) tensor exists at
all (see its docstring and docs/loss.md).
"""

from __future__ import annotations

import math

import torch


class TokenNLL:
    """The plain token NLL (-log p_y, cross-entropy without smoothing) of the targets the loss
    calls it is passed to saw, summed: the same pass has lse and z_y, so it costs one
    subtraction and a sum per token. A training curve of it compares across methods, where the
    smoothed objective of each method differs by construction."""

    def __init__(self) -> None:
        self._sum: torch.Tensor | None = None
        self.tokens = 0

    def add(self, nll_tokens: torch.Tensor) -> None:
        part = nll_tokens.detach().float().sum()
        self._sum = part if self._sum is None else self._sum + part
        self.tokens += nll_tokens.numel()

    @property
    def total(self) -> float:
        return float(self._sum) if self._sum is not None else 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.tokens if self.tokens else None


def uncertainty_smoothed_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor | float,
    ignore_index: int = -100,
    chunk_tokens: int = 64,
    normalizer: int | float | torch.Tensor | None = None,
    nll: TokenNLL | None = None,
) -> torch.Tensor:
    """Sum of per-token smoothed losses over non-ignored tokens, divided by `normalizer`.

    logits: (B, T, V) or (N, V); labels: (B, T) or (N,), already aligned with the
    logits (the caller does the causal shift). epsilon: a float, (B,) per sample or
    (B, T) per token. normalizer: the target-token count of the whole accumulated
    batch when gradients are accumulated over micro-batches; default: this batch's
    count. A batch without targets gives 0 with a zero gradient. nll: also add the targets'
    plain NLL (no smoothing, not normalised) to this accumulator; the loss is unchanged.
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
        nll,
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
    def forward(ctx, logits2d, flat_labels, eps_tokens, positions, normalizer, chunk_tokens, nll=None):
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
        if nll is not None:
            nll.add(token_loss)
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
        return grad, None, None, None, None, None, None


# Bytes of the fp32 (chunk x V) work buffer of the linear loss when chunk_tokens is not
# given. Each chunk streams the whole (V x H) weight through its matmuls (twice, three
# times when the weight requires grad), so chunks must be large enough to amortise that;
# small enough that the buffer stays a small fraction of the (N x V) logits it replaces.
# On CPU 64 MiB: 130 rows at V = 128,256 (measured 0.9-1.0x the time of matmul + loss at
# 128-1024 rows; 32-64 rows were 1.2-1.6x), 8,192 at V = 2,048. On a GPU the weight
# stream costs relatively more and memory less: 512 MiB (about 1,000 rows at 128k),
# an unmeasured guess that benchmarks/bench_loss.py --chunk-tokens can revisit.
LINEAR_CHUNK_BYTES = {"cpu": 64 * 2**20, "cuda": 512 * 2**20}


def linear_chunk_tokens(vocab: int, device: torch.device) -> int:
    """Default rows per chunk of uncertainty_smoothed_linear_loss for this vocabulary and device."""
    budget = LINEAR_CHUNK_BYTES.get(device.type, LINEAR_CHUNK_BYTES["cpu"])
    return max(1, budget // (4 * vocab))


def uncertainty_smoothed_linear_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    epsilon: torch.Tensor | float,
    ignore_index: int = -100,
    bias: torch.Tensor | None = None,
    chunk_tokens: int | None = None,
    normalizer: int | float | torch.Tensor | None = None,
    nll: TokenNLL | None = None,
) -> torch.Tensor:
    """`uncertainty_smoothed_loss(hidden @ weight.T + bias, labels, epsilon, ...)` without the logits.

    hidden: (B, T, H) or (N, H), the lm_head's input; weight: (V, H), the lm_head's
    weight; bias: (V,) or None; labels / epsilon / ignore_index / normalizer / nll as in
    `uncertainty_smoothed_loss`. hidden, weight and bias must share one dtype: the
    matmul runs in it (as `F.linear` would) and everything after it in fp32.
    chunk_tokens: target rows per chunk; default `linear_chunk_tokens(V, device)`.

    The logits of `chunk_tokens` target rows at a time are computed, reduced to their
    token losses and turned into their gradient in place, which is then multiplied
    straight into the gradients of hidden (and of weight / bias when they require
    grad). So the gradients are computed during the forward: backward only scales them
    by the incoming gradient (the loss is a scalar, so that is exact). This costs the
    same three matmuls as autograd through `hidden @ weight.T`; recomputing the logits
    in backward instead would cost a fourth. No (N x V) tensor is ever allocated; the
    extra memory is the (chunk x V) buffers, the hidden gradient (N x H) and, when the
    weight requires grad, an fp32 (V x H) accumulator for its gradient. Rows whose
    label is ignore_index never enter a matmul. Double backward is not supported.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be (V, H), got shape {tuple(weight.shape)}")
    vocab, width = weight.shape
    if hidden.dim() < 2 or hidden.shape[-1] != width:
        raise ValueError(f"hidden must be (..., H) with H = {width} (weight is (V, H)), got {tuple(hidden.shape)}")
    if labels.shape != hidden.shape[:-1]:
        raise ValueError(f"labels shape {tuple(labels.shape)} does not match hidden {tuple(hidden.shape[:-1])}")
    if bias is not None and bias.shape != (vocab,):
        raise ValueError(f"bias must be (V,) = ({vocab},), got {tuple(bias.shape)}")
    dtypes = {hidden.dtype, weight.dtype} | ({bias.dtype} if bias is not None else set())
    if len(dtypes) != 1:
        raise ValueError(f"hidden, weight and bias must share one dtype, got {sorted(str(d) for d in dtypes)}")
    if chunk_tokens is None:
        chunk_tokens = linear_chunk_tokens(vocab, weight.device)
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    eps_tokens = _per_token_epsilon(epsilon, labels).reshape(-1)
    flat_labels = labels.reshape(-1)
    target_positions = (flat_labels != ignore_index).nonzero().squeeze(1)
    if normalizer is None:
        normalizer = target_positions.numel()
    grad_on = torch.is_grad_enabled()
    needs = (
        grad_on and hidden.requires_grad,
        grad_on and weight.requires_grad,
        grad_on and bias is not None and bias.requires_grad,
    )
    return _SmoothedLinearCrossEntropy.apply(
        hidden.reshape(-1, width),
        weight,
        bias,
        flat_labels,
        eps_tokens,
        target_positions,
        normalizer,
        chunk_tokens,
        needs,
        nll,
    )


class _SmoothedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, hidden2d, weight, bias, flat_labels, eps_tokens, positions, normalizer, chunk_tokens, needs, nll=None
    ):
        need_hidden, need_weight, need_bias = needs
        any_grad = any(needs)
        vocab = weight.shape[0]
        device, dtype = weight.device, weight.dtype
        targets = flat_labels.index_select(0, positions)
        eps = eps_tokens.index_select(0, positions)
        n = positions.numel()
        any_smoothing = bool((eps != 0).any()) if n else False
        norm = float(normalizer) if not torch.is_tensor(normalizer) else float(normalizer.item())
        inv_norm = 1.0 / (norm if norm > 0 else 1.0)

        token_loss = torch.empty(n, dtype=torch.float32, device=device)
        grad_hidden = torch.empty((n, hidden2d.shape[1]), dtype=dtype, device=device) if need_hidden else None
        # fp32 accumulators: summing bf16 chunk products would round once per chunk.
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=device) if need_weight else None
        grad_bias = torch.zeros(vocab, dtype=torch.float32, device=device) if need_bias else None
        rows = min(chunk_tokens, n)
        work = torch.empty((rows, vocab), dtype=torch.float32, device=device)
        # Below fp32 the matmuls run in the weight's dtype, through a second buffer.
        low = torch.empty((rows, vocab), dtype=dtype, device=device) if dtype != torch.float32 else None
        weight_t = weight.t()
        # Per-token factors of the gradient, vectorised over all targets once.
        target_part = (-inv_norm * (1.0 - eps))[:, None]
        uniform_part = ((inv_norm / vocab) * eps)[:, None] if any_smoothing else None
        target_cols = targets[:, None]

        for s, e, first, contiguous in _chunks(positions, chunk_tokens):
            h = hidden2d[first : first + (e - s)] if contiguous else hidden2d.index_select(0, positions[s:e])
            z = work[: e - s]
            mm_out = z if low is None else low[: e - s]
            if bias is None:
                torch.mm(h, weight_t, out=mm_out)
            else:
                torch.addmm(bias, h, weight_t, out=mm_out)
            if low is not None:
                z.copy_(mm_out)
            z_y = z.gather(1, target_cols[s:e]).squeeze(1)
            loss = -z_y
            if any_smoothing:
                loss = loss + eps[s:e] * (z_y - z.sum(dim=1) / vocab)
            row_max = z.amax(dim=1, keepdim=True)
            z.sub_(row_max).exp_()
            sum_exp = z.sum(dim=1)
            token_loss[s:e] = loss + sum_exp.log() + row_max.squeeze(1)
            if nll is not None:
                nll.add(sum_exp.log() + row_max.squeeze(1) - z_y)
            if not any_grad:
                continue
            # z becomes d loss / d logits of the chunk: softmax - (1 - eps) onehot - eps / V, over norm.
            z.mul_((inv_norm / sum_exp)[:, None])
            if uniform_part is not None:
                z.sub_(uniform_part[s:e])
            z.scatter_add_(1, target_cols[s:e], target_part[s:e])
            g = z if low is None else mm_out.copy_(z)
            if need_hidden:
                torch.mm(g, weight, out=grad_hidden[s:e])
            if need_weight:
                grad_weight.addmm_(z.t(), h if low is None else h.float())
            if need_bias:
                grad_bias.add_(z.sum(dim=0))

        ctx.grads = (grad_hidden, grad_weight, grad_bias)
        ctx.rows = hidden2d.shape[0]
        ctx.weight_dtype = dtype
        ctx.save_for_backward(positions)
        return token_loss.sum() * inv_norm

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (positions,) = ctx.saved_tensors
        grad_hidden, grad_weight, grad_bias = ctx.grads
        ctx.grads = None
        scale = float(grad_out)
        out_hidden = out_weight = out_bias = None
        if grad_hidden is not None:
            if scale != 1.0:
                grad_hidden.mul_(scale)
            if positions.numel() == ctx.rows:  # every row a target: positions is 0..N-1
                out_hidden = grad_hidden
            else:
                out_hidden = grad_hidden.new_zeros((ctx.rows, grad_hidden.shape[1]))
                out_hidden.index_copy_(0, positions, grad_hidden)
        if grad_weight is not None:
            out_weight = grad_weight.mul_(scale).to(ctx.weight_dtype)
        if grad_bias is not None:
            out_bias = grad_bias.mul_(scale).to(ctx.weight_dtype)
        return out_hidden, out_weight, out_bias, None, None, None, None, None, None, None
