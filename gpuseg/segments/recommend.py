"""Product recommendations per segment: what its customers buy most, and what they buy with it.

For each segment, ``top_items`` are the items its customers purchased most often;
``bought_together`` lists, for each top item, the items most similar to it by the cosine
similarity of item columns of the segment's binary customer x item purchase matrix ``X``:

.. math:: \\cos(i, j) = \\frac{|B_i \\cap B_j|}{\\sqrt{|B_i|\\,|B_j|}}

where ``B_i`` is the set of the segment's customers who bought item ``i``. Only the top
items' rows of the item-item co-occurrence are formed, as one sparse product
``X[:, top].T @ X`` (top x items) on the input's device (``scipy.sparse`` on the CPU,
``cupyx.scipy.sparse`` on the GPU), so neither a dense customer x item matrix nor an
item x item one over all items ever exists. Recommendations come only from items the
segment's own customers purchased. Ties are broken by item code (the smaller first).

Examples
--------
>>> import numpy as np
>>> customer = np.array([0, 0, 1, 1, 2])
>>> product = np.array([7, 8, 7, 8, 7])
>>> recs = segment_recommendations(customer, product, None, np.zeros(5, dtype=int), min_support=1)
>>> recs[0]["top_items"][0]
{'item': 7, 'purchases': 3, 'buyers': 3}
>>> recs[0]["bought_together"][0]["related"]
[{'item': 8, 'score': 0.8164965809277261, 'co_buyers': 2}]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Sequence

import numpy as np

from ..backend import array_namespace, sparse_module, to_host
from ..io.schemas import EVENT_TYPES

__all__ = ["segment_recommendations", "label_items", "PURCHASE", "NO_PURCHASES", "NO_PRODUCTS"]

#: The ``etype`` code of a purchase in the cleaned event frame.
PURCHASE = EVENT_TYPES.index("purchase")

NO_PURCHASES = "no purchases by this segment's customers: nothing to recommend"
NO_PRODUCTS = "no product_id in the data: nothing to recommend"


def segment_recommendations(
    customer: Any,
    product: Any,
    event_type: Any | None,
    segment_of_row: Any,
    top_items: int = 10,
    top_related: int = 5,
    min_support: int = 2,
    product_names: Sequence[str] | None = None,
) -> dict[int, dict[str, Any]]:
    """Most purchased items per segment and the items bought together with each.

    Parameters
    ----------
    customer : array of shape (n_rows,)
        Customer of each event or order line (NumPy or CuPy; integer codes).
    product : array of int, shape (n_rows,)
        Product code of each row (the cleaned frame's ``product``); -1 for none (every
        code is -1 when the data have no ``product_id`` column).
    event_type : array of int, shape (n_rows,), or None
        Event type codes (``etype``; only ``PURCHASE`` rows count), or None for orders,
        where every row is a purchase.
    segment_of_row : array of int, shape (n_rows,)
        Segment of the row's customer (negative labels, e.g. -1 unassigned, are segments too).
    top_items : int, default=10
        Items listed per segment.
    top_related : int, default=5
        Items listed as bought together with each top item.
    min_support : int, default=2
        Fewest customers who must have bought both items for a pair to be listed.
    product_names : sequence of str, optional
        Product code -> name (``CleanedData.product_names``); without it items are named
        by their codes.

    Returns
    -------
    dict
        Segment (every label in ``segment_of_row``, ascending) -> a dict with

        - ``purchases`` : int, purchase rows of the segment;
        - ``buyers`` : int, its customers with at least one purchase;
        - ``items`` : int, distinct items they purchased;
        - ``top_items`` : list of ``{"item", "purchases", "buyers"}``, most purchases
          first (ties: smaller item code first);
        - ``bought_together`` : list, one ``{"item", "related"}`` per top item in the same
          order, ``related`` being a list of ``{"item", "score", "co_buyers"}``: the
          cosine similarity and the number of the segment's customers who bought both,
          highest score first, never the item itself, only pairs with
          ``co_buyers >= min_support``;
        - ``note`` : str or None, why the lists are empty when they are:
          :data:`NO_PRODUCTS` for every segment when no row has a product (no
          ``product_id`` in the data), :data:`NO_PURCHASES` for a segment without
          purchases.

    Raises
    ------
    ValueError
        Arrays of different lengths or shapes, non-integer codes, bad counts, or product
        codes without a name.
    TypeError
        NumPy and CuPy arrays mixed.
    """
    xp = array_namespace(customer, product, event_type, segment_of_row)
    customer, product, segment = xp.asarray(customer), xp.asarray(product), xp.asarray(segment_of_row)
    etype = None if event_type is None else xp.asarray(event_type)
    arrays = {"customer": customer, "product": product, "segment_of_row": segment}
    if etype is not None:
        arrays["event_type"] = etype
    for name, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, not of shape {a.shape}")
        if a.shape != customer.shape:
            raise ValueError(f"{name} has {a.shape[0]} rows but customer has {customer.shape[0]}")
        if name != "customer" and a.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer codes, not {a.dtype}")
    for name, value, least in (("top_items", top_items, 0), ("top_related", top_related, 0),
                               ("min_support", min_support, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, not {value!r}")
    if product_names is not None and product.size and int(product.max()) >= len(product_names):
        raise ValueError(
            f"product code {int(product.max())} has no name: product_names has {len(product_names)}"
        )
    return _segment_recommendations(
        xp, customer, product, etype, segment, int(top_items), int(top_related), int(min_support), product_names
    )


def _segment_recommendations(xp, customer, product, etype, segment, top_items, top_related, min_support, names):
    labels = [int(s) for s in to_host(xp.unique(segment))]
    has_product = product >= 0
    if product.size and not bool(has_product.any()):
        return {s: _empty(NO_PRODUCTS) for s in labels}
    bought = has_product
    if etype is not None:
        bought &= etype == PURCHASE
    cust, prod, seg = customer[bought], product[bought], segment[bought]
    result = {s: _empty(NO_PURCHASES) for s in labels}
    if prod.size == 0:
        return result

    # Compact codes: items, segments and (segment, customer) buyers index 0..n-1 in code order.
    seg_labels, seg_idx = xp.unique(seg, return_inverse=True)
    item_codes, item = xp.unique(prod, return_inverse=True)
    _, cust_idx = xp.unique(cust, return_inverse=True)
    seg_idx, item, cust_idx = (a.reshape(-1).astype(xp.int64) for a in (seg_idx, item, cust_idx))
    n_items, n_cust = int(item_codes.size), int(cust_idx.max()) + 1
    buyer_keys, buyer = xp.unique(seg_idx * n_cust + cust_idx, return_inverse=True)
    buyer_seg = buyer_keys // n_cust  # sorted: a segment's buyers are contiguous
    # distinct (buyer, item) purchases: the nonzeros of the binary purchase matrix
    pair_keys = xp.unique(buyer.reshape(-1).astype(xp.int64) * n_items + item)
    pair_buyer, pair_item = pair_keys // n_items, pair_keys % n_items
    pair_seg = buyer_seg[pair_buyer]
    # purchases and buyers per (segment, item): both sets of keys are the bought pairs, sorted
    seg_item_keys, purchases = xp.unique(seg_idx * n_items + item, return_counts=True)
    _, buyers = xp.unique(pair_seg * n_items + pair_item, return_counts=True)
    seg_item_seg, seg_item = seg_item_keys // n_items, seg_item_keys % n_items

    edges = xp.arange(int(seg_labels.size) + 1)
    item_at, pair_at, buyer_at = (
        to_host(xp.searchsorted(keys, edges)).tolist() for keys in (seg_item_seg, pair_seg, buyer_seg)
    )
    for s, label in enumerate(int(v) for v in to_host(seg_labels)):
        lo, hi = item_at[s], item_at[s + 1]
        items_s, purchases_s, buyers_s = seg_item[lo:hi], purchases[lo:hi], buyers[lo:hi]
        # most purchases first, then the smaller item code (item indices follow code order)
        top = xp.argsort(items_s - purchases_s * n_items)[:top_items]
        codes_s = item_codes[items_s]
        related = []
        if top_related and top.size:
            rows = pair_buyer[pair_at[s]:pair_at[s + 1]] - buyer_at[s]
            cols = xp.searchsorted(items_s, pair_item[pair_at[s]:pair_at[s + 1]])
            related = _related_items(xp, rows, cols, buyer_at[s + 1] - buyer_at[s], buyers_s, codes_s, top,
                                     top_related, min_support)
        result[label] = _segment_result(
            purchases=int(purchases_s.sum()), buyers=buyer_at[s + 1] - buyer_at[s], n_items=hi - lo,
            top_codes=to_host(codes_s[top]).tolist(), top_purchases=to_host(purchases_s[top]).tolist(),
            top_buyers=to_host(buyers_s[top]).tolist(), related=related,
            top_related=top_related, min_support=min_support, names=names,
        )
    return result


def _related_items(xp, rows, cols, n_customers, buyers, codes, top, top_related, min_support):
    """Per top item, the items bought with it: (item codes, co-buyers, cosines), best first.

    ``rows``/``cols`` are the nonzeros of the segment's binary customer x item matrix
    (local customer and item indices), ``buyers`` the nonzeros per column, ``codes`` the
    columns' item codes (ascending) and ``top`` the columns of the top items. Returns one
    tuple of host arrays per top item, in ``top``'s order.
    """
    sparse = sparse_module(xp)
    n_cols, k = int(buyers.size), int(top.size)
    dtype = xp.float32 if n_customers < 2**24 else xp.float64  # co-buyer counts stay exact
    index = xp.int32 if max(n_customers, n_cols) < 2**31 else xp.int64
    position = xp.full(n_cols, -1, dtype=xp.int64)
    position[top] = xp.arange(k, dtype=xp.int64)
    rows, cols = rows.astype(index), cols.astype(index)
    x = sparse.coo_matrix((xp.ones(rows.size, dtype=dtype), (rows, cols)), shape=(n_customers, n_cols)).tocsr()
    at_top = position[cols] >= 0
    x_top_t = sparse.coo_matrix(
        (xp.ones(int(at_top.sum()), dtype=dtype), (position[cols[at_top]].astype(index), rows[at_top])),
        shape=(k, n_customers),
    ).tocsr()
    co = (x_top_t @ x).tocoo()  # (top x items): customers who bought both
    r, c = co.row.astype(xp.int64), co.col.astype(xp.int64)
    n_both = xp.rint(co.data).astype(xp.int64)
    keep = (n_both >= min_support) & (c != top[r])
    r, c, n_both = r[keep], c[keep], n_both[keep]
    score = n_both / xp.sqrt(buyers[top][r].astype(xp.float64) * buyers[c].astype(xp.float64))
    # by top item, then highest score, then smaller item code; keep the first top_related
    order = xp.lexsort(xp.stack([c.astype(xp.float64), -score, r.astype(xp.float64)]))
    r, c, n_both, score = r[order], c[order], n_both[order], score[order]
    starts = xp.searchsorted(r, xp.arange(k, dtype=xp.int64))
    first = (xp.arange(r.size, dtype=xp.int64) - starts[r]) < top_related
    r, item, n_both, score = (to_host(a[first]) for a in (r, codes[c], n_both, score))
    bounds = np.searchsorted(r, np.arange(k + 1))
    return [tuple(a[bounds[p]:bounds[p + 1]] for a in (item, n_both, score)) for p in range(k)]


def label_items(recs: dict[int, dict[str, Any]], labels: Mapping[int, str],
                product_names: Sequence[str] | None = None) -> dict[int, dict[str, Any]]:
    """Add ``label``, a readable product name (``CleanedData.product_labels``: description,
    or brand and category), to every item of :func:`segment_recommendations`' result that
    has one; ``item`` stays the product id. Only the listed items are named
    (:func:`~gpuseg.prep.clean.labels_for`: a :class:`~gpuseg.prep.clean.ProductLabels`
    counts their rows alone). Returns ``recs``, changed in place."""
    from ..prep.clean import labels_for

    entries = [e for rec in recs.values() for e in _listed(rec)]
    items = {e["item"] for e in entries}
    if not items or labels is None:
        return recs
    if product_names is None:
        code_of = {item: int(item) for item in items}
    else:
        code_of = {name: c for c, name in enumerate(product_names) if name in items}
    names = labels_for(labels, sorted(set(code_of.values())))
    for entry in entries:
        code = code_of.get(entry["item"])
        if code in names:
            entry["label"] = names[code]
    return recs


def _listed(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item entry of one segment's recommendations: top items, bought together and
    their related items."""
    out = list(rec.get("top_items", []))
    for entry in rec.get("bought_together", []):
        out.append(entry)
        out.extend(entry.get("related", []))
    return out


def _empty(note: str | None) -> dict[str, Any]:
    return {"purchases": 0, "buyers": 0, "items": 0, "top_items": [], "bought_together": [], "note": note}


def _segment_result(*, purchases, buyers, n_items, top_codes, top_purchases, top_buyers, related, top_related,
                    min_support, names) -> dict[str, Any]:
    def name(code: int):
        return names[code] if names is not None else int(code)

    out = _empty(None)
    out.update(purchases=purchases, buyers=buyers, items=n_items)
    out["top_items"] = [
        {"item": name(code), "purchases": int(p), "buyers": int(b)}
        for code, p, b in zip(top_codes, top_purchases, top_buyers)
    ]
    together = [{"item": name(code), "related": []} for code in top_codes]
    for entry, (codes, n_both, score) in zip(together, related):
        entry["related"] = [
            {"item": name(code), "score": float(v), "co_buyers": int(n)} for code, n, v in zip(codes, n_both, score)
        ]
    out["bought_together"] = together
    if together and top_related and not any(t["related"] for t in together):
        out["note"] = f"no item was bought together with a top item by at least {min_support} customers"
    return out
