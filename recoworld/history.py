"""Click histories kept as fixed-size, newest-first buffers of item ids (-1 = empty)."""

from __future__ import annotations

import torch


def prepend_clicks(history: torch.Tensor, slates: torch.Tensor, clicked: torch.Tensor,
                   *extra: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Put each row's clicked items (in slate order) in front of its history, dropping the oldest.

    Args:
        history: ``[B, H]`` item ids, newest first, ``-1`` padded at the end.
        slates: ``[B, K]`` item ids shown; ``clicked`` ``[B, K]`` bool.
        extra: pairs ``(old [B, H, ...], new [B, K, ...])`` of per-click values to carry along
            (e.g. watch fractions), merged the same way.

    Returns:
        the new history ``[B, H]``, then one merged tensor per ``extra`` pair.

    Done with a cumulative sum and two gathers instead of sorting, since it runs every step.
    """
    B, H = history.shape
    K = slates.shape[1]
    n_new = clicked.sum(1, keepdim=True)                              # [B, 1]
    rank = torch.cumsum(clicked, 1) - 1                               # position among the new clicks
    # click_position[b, i]: the slate position of row b's i-th click (for i < n_new);
    # non-clicks are scattered into a spill column K that is never read.
    click_position = torch.zeros(B, K + 1, dtype=torch.long, device=slates.device)
    target = torch.where(clicked, rank, K).long()
    click_position.scatter_(1, target, torch.arange(K, device=slates.device).expand(B, K))
    slot = torch.arange(H, device=slates.device).expand(B, H)
    from_new = slot < n_new
    new_index = slot.clamp(max=K - 1)
    old_index = (slot - n_new).clamp_min(0)
    take = click_position[:, :K].gather(1, new_index)
    merged = [torch.where(from_new, slates.gather(1, take), history.gather(1, old_index))]
    for old, new in extra:
        tail = old.shape[2:]
        view = (B, H) + (1,) * len(tail)
        expand = lambda index, t=tail: index.view(view).expand(B, H, *t)  # noqa: E731
        merged.append(torch.where(from_new.view(view), new.gather(1, expand(take)), old.gather(1, expand(old_index))))
    return tuple(merged)
