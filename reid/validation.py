"""Validation after each epoch: val Rank-1/5/10 and mAP, and the validation loss, in one pass.

The val identities are not training identities, so the classifier's cross-entropy cannot be
computed on them; the validation loss is the handout's triplet margin loss on fixed val
triplets instead (see ``train_model``). Every val image goes through the model once and both
the loss and the retrieval metrics read that pass.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .device import EVAL_DTYPE
from .evaluate import ConcatSource, MirroredSource, Retrieval, extract_features
from .losses import handout_triplet_loss


def _val_images(val_set: Any, val_idloss: Any) -> tuple[Any, Tensor, Tensor]:
    """One image source holding every val image the validation needs, and where the val set's
    queries ``[Q]`` and gallery ``[G]`` sit in it.

    The source begins with val_idloss's images (rows = its rows, so the val triplets index it).
    When val_idloss.csv lists every val query and gallery image (the course's layout) that is all;
    otherwise (or without val_idloss) the val set's own queries and gallery follow."""
    if val_idloss is not None:
        mine, theirs = getattr(val_idloss.cache, "image_size", None), getattr(val_set.queries, "image_size", None)
        if mine is not None and theirs is not None and tuple(mine) != tuple(theirs):
            raise ValueError(f"val_idloss holds {tuple(mine)} images but the val set {tuple(theirs)}: make both "
                             f"with the same image_size")
        row = {Path(p): i for i, p in enumerate(val_idloss.paths)}
        try:
            return (val_idloss.cache, torch.tensor([row[Path(p)] for p in val_set.queries.paths]),
                    torch.tensor([row[Path(p)] for p in val_set.gallery.paths]))
        except (KeyError, AttributeError):
            pass
    head = [val_idloss.cache] if val_idloss is not None else []
    source = ConcatSource(*head, val_set.queries, val_set.gallery)
    q0 = len(head[0]) if head else 0
    q = torch.arange(q0, q0 + len(val_set.queries))
    return source, q, torch.arange(q[-1] + 1 if len(q) else q0, len(source))


def _triplet_value(feats: Tensor, triplets: Tensor) -> float:
    """Mean TripletMarginLoss(HANDOUT_MARGIN) of ``feats`` ``[N, D]`` over ``triplets`` ``[T, 3]``."""
    t = triplets.to(feats.device)
    return handout_triplet_loss(feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]]).item()


def validation_loss(model: nn.Module, val_idloss: Any, triplets: Tensor, batch_size: int,
                    device: torch.device, amp_dtype: torch.dtype | None = EVAL_DTYPE) -> float:
    """Mean TripletMarginLoss(HANDOUT_MARGIN) over fixed val triplets [T, 3] (eval mode)."""
    feats = extract_features(model, val_idloss.cache, batch_size, device, amp_dtype, output="train")
    return _triplet_value(feats, triplets)


def evaluate_val(run: Any, val_set: Any, val_idloss: Any = None,
                 val_triplets: Tensor | None = None) -> dict[str, Any]:
    """Rank-1/5/10 and mAP of val queries against the val gallery, plus the val loss.

    Evaluation runs in float32 (``EVAL_DTYPE``), as every later measurement of the model does.
    Every val image goes through the model once (twice with ``cfg.flip_test``, the second time
    mirrored): the val loss uses forward's first output (``output="train"``), retrieval its
    ``model.embed_from_feature`` (the feature itself for a model without it), averaged with the
    mirror image's with ``flip_test``, ranked by ``cfg.metric``.

    Returns:
        ``{"rank1", "rank5", "rank10", "mAP", "val_loss", "match_rank", "retrieval"}``: fractions,
        the val loss (None without val triplets), each query's 1-based rank of its match (a list of
        Q ints: paired comparisons of two models need them) and the :class:`Retrieval` they came
        from (features ``[Q, E]`` / ``[G, E]`` and distances ``[Q, G]``), which later reports may reuse.
    """
    model, cfg = run.model, run.cfg
    source, q_rows, g_rows = _val_images(val_set, val_idloss)
    # float32 whatever the training precision (EVAL_DTYPE): every number of a model in one precision
    kw = dict(batch_size=cfg.eval_batch_size, device=run.device, amp_dtype=EVAL_DTYPE, output="train")
    feats = extract_features(model, source, **kw)  # [N, D] on the CPU
    to_embed = getattr(model, "embed_from_feature", lambda f: f)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            emb = to_embed(feats.to(run.device)).float()  # [N, E]
            if cfg.flip_test:
                mirrored = extract_features(model, MirroredSource(source), **kw)  # [N, D]
                emb = (emb + to_embed(mirrored.to(run.device)).float()) / 2
    finally:
        model.train(was_training)
    emb = emb.cpu()
    retrieval = Retrieval.from_features(emb[q_rows], emb[g_rows], val_set.gt, cfg.metric, flip=cfg.flip_test)
    val_loss = _triplet_value(feats, val_triplets) if val_triplets is not None and len(val_triplets) else None
    metrics = retrieval.metrics()
    return {**{k: metrics[k] for k in ("rank1", "rank5", "rank10", "mAP")}, "val_loss": val_loss,
            "match_rank": retrieval.match_ranks().tolist(), "retrieval": retrieval}
