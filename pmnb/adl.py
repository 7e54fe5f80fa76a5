"""Auto-deleveraging (ADL) queues: which counterparties a venue deleverages first.

When a liquidated position is bankrupt and the insurance fund cannot absorb the loss, the venue
closes positions on the **opposite side** at the bankrupt position's price, in a queue ordered by
a score; :func:`adl_ranking` computes that score and rank per side. Each venue's published rule:

``"binance"``
    Binance, "What Is Auto-Deleveraging (ADL) and How Does It Work"
    (https://www.binance.com/en/support/faq/360033525471; 2019 version titled "Counterparty
    Liquidation"): traders are ranked by "LeveragePnL", *unrealised PnL / collateral multiplied
    by the margin ratio*; the formulation at the end of the page (as quoted verbatim on
    https://dev.binance.vision/t/how-to-caculating-leverage-pnl-quantile/17801)::

        PnlPercent   = max(0, unrealised_pnl) / max(1, wallet_balance)
        MarginRatio  = maintenance / (wallet_balance + unrealised_pnl)   (0 if the sum <= 0)
        LeveragePnl  = PnlPercent × MarginRatio
        LeveragePnlQuantile = rank(LeveragePnl) / number of traders

    Only profitable positions have a non-zero score.
``"pnl_x_leverage"``
    The form many venues publish (e.g. Poloniex, "Auto-Deleveraging System (ADL)",
    https://support.poloniex.com/hc/en-us/articles/6670657448215; AstralX, "ADL (Position
    Reduction) Explanation", https://support.astralx.com/hc/en-001/articles/7249062028559)::

        PnL% = unrealised_pnl / |size × entry_price|
        effective leverage = |size × mark_price| / equity
        score = PnL% × leverage (PnL% > 0),   PnL% / leverage (PnL% < 0)

    This is **not** the formula on Binance's ADL page (see ``"binance"``); it is offered for
    venues that use it.
``"hyperliquid"``
    Hyperliquid docs, "Auto-deleveraging"
    (https://hyperliquid.gitbook.io/hyperliquid-docs/trading/auto-deleveraging): users on the
    opposite side are ranked by ``(mark_price / entry_price) × (notional_position /
    account_value)``. The page prints one formula for both sides; for a short, whose profit grows
    as the mark falls, pmnb uses ``entry_price / mark_price`` — a labelled approximation.
``"dydx"``
    dYdX Chain docs, "Contract Loss Mechanisms"
    (https://help.dydx.trade/en/articles/166973-contract-loss-mechanisms-on-dydx-chain):
    offsetting accounts holding opposing positions are **randomly selected**; the score is a
    uniform random number drawn with ``seed`` (reproducible).

Scores of accounts with ``equity <= 0`` (no collateral left) are ``+inf`` for a profitable
position under the leverage-based rules (they are first in the queue), and ranks break ties by
the larger position.

Examples
--------
>>> import pandas as pd
>>> cps = pd.DataFrame({"account": ["a", "b", "c"], "size": [-1.0, -2.0, 1.0],
...                     "entry_price": [60_000.0, 61_000.0, 50_000.0],
...                     "mark_price": 55_000.0, "equity": [10_000.0, 4_000.0, 3_000.0]})
>>> adl_ranking(cps, "pnl_x_leverage")[["adl_score", "adl_rank"]].round(4).values.tolist()
[[0.4583, 2.0], [2.7049, 1.0], [1.8333, 1.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError

__all__ = ["ADL_RULES", "adl_ranking"]

#: Ranking rules :func:`adl_ranking` knows, with the columns each needs beyond
#: ``size, entry_price, mark_price``.
ADL_RULES: dict[str, tuple[str, ...]] = {
    "binance": ("maintenance",),
    "pnl_x_leverage": ("equity",),
    "hyperliquid": ("equity",),
    "dydx": (),
}


def _column(df: pd.DataFrame, name: str, *, positive: bool = False,
            nonzero: bool = False) -> np.ndarray:
    if name not in df.columns:
        raise ValidationError(f"{name}: column missing; accepted: a frame with columns "
                              f"{sorted(set(df.columns) | {name})}", field=name)
    x = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(x)
    if positive:
        bad |= ~(x > 0)
    if nonzero:
        bad |= x == 0
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        acc = "a finite number" + (" > 0" if positive else "") + (" != 0" if nonzero else "")
        v = df[name].iloc[j]
        raise ValidationError.for_field(name, row=df.index[j],
                                        value=v.item() if hasattr(v, "item") else v,
                                        accepted=acc, n_bad=int(bad.sum()))
    return x


def adl_ranking(positions: pd.DataFrame, rule: str = "binance", *,
                seed: Any = 0) -> pd.DataFrame:
    """ADL score and queue position of each position, ranked within its side (long / short).

    Parameters
    ----------
    positions : DataFrame
        One row per counterparty position: ``size`` (signed, coins; != 0), ``entry_price``,
        ``mark_price`` (USD, > 0), and per rule (:data:`ADL_RULES`): ``equity`` (the account's
        margin balance: wallet + unrealised P&L), ``maintenance`` (its maintenance margin;
        Binance). ``wallet_balance`` (Binance) defaults to ``equity − unrealised_pnl`` when
        absent, and ``equity`` to ``wallet_balance + unrealised_pnl``.
    rule : {"binance", "pnl_x_leverage", "hyperliquid", "dydx"}
        See the module docstring for each venue's published formula and source.
    seed : int or numpy Generator
        Random draw of the ``"dydx"`` rule.

    Returns
    -------
    DataFrame
        A copy of ``positions`` with ``side`` (``"long"``/``"short"``), ``unrealised_pnl``,
        ``adl_score``, ``adl_rank`` (1 = deleveraged first, within the side) and
        ``adl_quantile`` (Binance's ``rank / count``, 1 = front of the queue).

    Examples
    --------
    Binance's formula on the numbers of the dev.binance.vision question (unrealised profit
    40.2, wallet 4.27, margin ratio 13.42 %, i.e. maintenance 13.42 % of 44.47):

    >>> import pandas as pd
    >>> p = pd.DataFrame({"size": [1.0], "entry_price": [100.0], "mark_price": [140.2],
    ...                   "wallet_balance": [4.27], "maintenance": [0.1342 * 44.47]})
    >>> round(float(adl_ranking(p, "binance")["adl_score"].iloc[0]), 2)
    1.26
    """
    if rule not in ADL_RULES:
        raise ValidationError(f"rule: got {rule!r}; accepted: {', '.join(ADL_RULES)}",
                              field="rule")
    if not isinstance(positions, pd.DataFrame):
        raise ValidationError("positions: accepted: a DataFrame with columns size, entry_price, "
                              "mark_price, ...", field="positions")
    out = positions.copy()
    n = len(out)
    if n == 0:
        return out.assign(side=pd.Series(dtype=object), unrealised_pnl=pd.Series(dtype=float),
                          adl_score=pd.Series(dtype=float), adl_rank=pd.Series(dtype=float),
                          adl_quantile=pd.Series(dtype=float))
    size = _column(out, "size", nonzero=True)
    entry = _column(out, "entry_price", positive=True)
    mark = _column(out, "mark_price", positive=True)
    upnl = size * (mark - entry)
    notional = np.abs(size) * mark
    if "equity" in out.columns:
        equity = _column(out, "equity")
    elif "wallet_balance" in out.columns:
        equity = _column(out, "wallet_balance") + upnl
    else:
        equity = None
    if rule == "binance":
        wallet = (_column(out, "wallet_balance") if "wallet_balance" in out.columns
                  else _column(out, "equity") - upnl)
        mm = _column(out, "maintenance")
        if (mm < 0).any():
            j = int(np.flatnonzero(mm < 0)[0])
            raise ValidationError.for_field("maintenance", row=out.index[j], value=mm[j],
                                            accepted=">= 0")
        balance = wallet + upnl
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(balance > 0, mm / np.where(balance > 0, balance, 1.0), 0.0)
        score = np.maximum(upnl, 0.0) / np.maximum(wallet, 1.0) * ratio
    elif rule in ("pnl_x_leverage", "hyperliquid"):
        if equity is None:
            _column(out, "equity")      # raises naming the missing column
        pos_eq = equity > 0
        lev = np.where(pos_eq, notional / np.where(pos_eq, equity, 1.0), np.inf)
        if rule == "pnl_x_leverage":
            pct = upnl / (np.abs(size) * entry)
            with np.errstate(invalid="ignore"):
                score = np.where(pct > 0, pct * lev, pct / lev)
            score = np.where(np.isnan(score), 0.0, score)
        else:
            ratio = np.where(size > 0, mark / entry, entry / mark)
            score = ratio * lev
    else:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        score = rng.random(n)
    side = np.where(size > 0, "long", "short")
    rank = np.zeros(n)
    quant = np.zeros(n)
    for s in ("long", "short"):
        idx = np.flatnonzero(side == s)
        if not len(idx):
            continue
        order = idx[np.lexsort((-np.abs(size[idx]), -score[idx]))]
        rank[order] = np.arange(1, len(idx) + 1)
        quant[order] = 1.0 - (np.arange(len(idx))) / len(idx)
    out["side"] = side
    out["unrealised_pnl"] = upnl
    out["adl_score"] = score
    out["adl_rank"] = rank
    out["adl_quantile"] = quant
    return out
