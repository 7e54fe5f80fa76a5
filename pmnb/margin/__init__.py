"""Venue margin models: a registry of rule sets, and the report they return.

One module per venue rule set, each registering one model by name (``"binance.usdm"``, …).
Every model's parameters are a frozen dataclass carrying ``rule_version`` and ``source`` (the
venue document they come from); any field can be overridden, because venues change their tables
more often than pmnb is released::

    model = pmnb.margin.get("binance.usdm", brackets=my_brackets)
    report = pmnb.margin.compute(book, market, model, account="binance-usdm", collateral=coll)

For repeated evaluation (liquidation searches, what-if moves), :func:`prepare` validates and
looks the book up once and returns a :class:`pmnb.margin.prepared.PreparedMargin` whose
``compute(spot_shock)`` / ``evaluate(spot_shock)`` run on per-instrument arrays for the compiled
models (``deribit.standard``, ``deribit.portfolio``)::

    prep = pmnb.margin.prepare(book, market, "deribit.portfolio", account="d", collateral=coll)
    prep.evaluate(-0.1)          # MarginState(equity, initial, maintenance) 10 % lower

Third parties add models through the entry-point group ``pmnb.margin_models``: an entry point
``name = package.module:factory`` whose ``factory(**overrides)`` returns a :class:`MarginModel`.

Formulas, parameters and worked vectors: each model's module docstring cites the venue pages
(collected in the project's research notes, reference/margin.md).

Examples
--------
>>> import pmnb.margin
>>> "binance.usdm" in pmnb.margin.models()
True
"""

from __future__ import annotations

import dataclasses
import html
import importlib
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError

__all__ = ["MarginModel", "MarginParams", "MarginReport", "compute", "delta_by_underlying", "get",
           "models", "perp_equity", "prepare", "register", "usd_per_unit", "wallet_balance"]

ENTRY_POINT_GROUP = "pmnb.margin_models"


@dataclasses.dataclass(frozen=True)
class MarginParams:
    """Base of every model's parameters: which rule version, from which venue document."""

    rule_version: str
    source: str


@dataclasses.dataclass(frozen=True)
class MarginReport:
    """Margin of one account under one model, in the margin currency and in USD.

    Attributes
    ----------
    model, rule_version, account, currency
        Which rule set, its version, the account and the margin currency (e.g. BTC, USDT).
    initial, maintenance, equity : float
        In ``currency``. ``excess = equity - initial``; ``margin_ratio = maintenance / equity``
        (the share of equity the maintenance requirement uses; 1 or more = liquidatable).
    usd_per_unit : float
        USD value of one unit of ``currency`` (the index for coins, 1 for USD stablecoins).
    positions : DataFrame
        Per-position contributions (``initial``, ``maintenance`` and model-specific columns),
        indexed like the book.
    scenarios : DataFrame or None
        Scenario models: P&L per scenario; ``worst_scenario`` names the binding one.
    delta_total : mapping
        Net delta per underlying in coins (Deribit's DeltaTotal convention for inverse options).
    notes : tuple of str
        Approximations and substitutions used (never silent).
    """

    model: str
    rule_version: str
    account: str | None
    currency: str
    initial: float
    maintenance: float
    equity: float
    usd_per_unit: float
    positions: pd.DataFrame
    scenarios: pd.DataFrame | None = None
    worst_scenario: Any = None
    delta_total: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def excess(self) -> float:
        """Equity above the initial margin (negative: no new risk may be added)."""
        return self.equity - self.initial

    @property
    def margin_ratio(self) -> float:
        """Maintenance margin / equity; ``inf`` when equity <= 0 and maintenance > 0."""
        if self.equity > 0:
            return self.maintenance / self.equity
        return float("inf") if self.maintenance > 0 else 0.0

    def summary(self) -> pd.Series:
        """The headline numbers in the margin currency and in USD.

        Examples
        --------
        >>> r = MarginReport("demo", "v1", "acc", "USDT", 100.0, 50.0, 1000.0, 1.0,
        ...                  pd.DataFrame())
        >>> r.summary()[["initial", "excess", "margin_ratio"]].tolist()
        [100.0, 900.0, 0.05]
        """
        u = self.usd_per_unit
        return pd.Series({
            "model": self.model, "rule_version": self.rule_version, "account": self.account,
            "currency": self.currency, "equity": self.equity, "initial": self.initial,
            "maintenance": self.maintenance, "excess": self.excess,
            "margin_ratio": self.margin_ratio, "equity_usd": self.equity * u,
            "initial_usd": self.initial * u, "maintenance_usd": self.maintenance * u,
            "excess_usd": self.excess * u,
        })

    def _repr_html_(self) -> str:
        s = self.summary()
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td>{html.escape(_fmt(v))}</td></tr>" for k, v in s.items())
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        pos = self.positions._repr_html_() if len(self.positions) else ""
        return (f"<div><b>Margin report</b> ({html.escape(self.model)}, "
                f"{html.escape(self.rule_version)})<table>{rows}</table>"
                f"{'<ul>' + notes + '</ul>' if notes else ''}{pos}</div>")

    def __repr__(self) -> str:
        s = self.summary()
        return (f"MarginReport({s['model']}, account={s['account']!r}, {s['currency']}: "
                f"equity {_fmt(s['equity'])}, initial {_fmt(s['initial'])}, maintenance "
                f"{_fmt(s['maintenance'])}, margin ratio {_fmt(s['margin_ratio'])})")


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:,.6g}" if abs(v) < 1e4 else f"{v:,.2f}"
    return str(v)


class MarginModel:
    """Base class of a margin rule set.

    Subclasses set ``name``, ``kinds`` (the position kinds they margin) and ``params_type``, and
    implement :meth:`compute`.
    """

    name: str = ""
    kinds: tuple[str, ...] = ()
    #: account margin modes (accounts frame) this rule set applies to
    margin_modes: tuple[str, ...] = ("cross", "isolated", "portfolio")
    params_type: type[MarginParams] = MarginParams

    def __init__(self, params: MarginParams | None = None, **overrides: Any) -> None:
        base = params if params is not None else self.params_type()  # type: ignore[call-arg]
        try:
            self.params = dataclasses.replace(base, **overrides)
        except TypeError as exc:
            fields = [f.name for f in dataclasses.fields(base)]
            raise ValidationError(f"{self.name}: unknown parameter ({exc}); accepted: {fields}",
                                  field="params") from None

    def margin_currency(self, book: pd.DataFrame, collateral: pd.DataFrame | None, *,
                        default: str | None = None) -> tuple[str, np.ndarray, np.ndarray]:
        """The one currency a segregated model reports in, and which positions it covers.

        Each position's margin currency is its coin for inverse settlement and its quote for
        linear settlement. The currency is ``params.currency`` when set, else the only one the
        positions use, else the only collateral asset, else ``default``; anything ambiguous
        raises, naming what the account holds and how to choose.

        Returns
        -------
        (currency, keep, per_position_currency)
            ``keep`` marks the positions margined in ``currency``.
        """
        sc, st = text_codes(book["settlement"])
        inverse = (st == "inverse")[sc]
        uc, ut = text_codes(book["underlying"])
        qc, qt = text_codes(book["quote"])
        key = np.where(inverse, uc, len(ut) + qc)
        text = np.concatenate([ut, qt])
        cur = text[key]
        want = getattr(self.params, "currency", None)
        have = sorted(set(text[np.bincount(key, minlength=len(text)) > 0].tolist()))
        if want is None:
            if len(have) == 1:
                want = have[0]
            elif not have and collateral is not None and collateral["asset"].nunique() == 1:
                want = str(collateral["asset"].iloc[0])
            elif not have and default is not None:
                want = default
            else:
                raise ValidationError(
                    f"currency: {self.name} margins one currency per report; the account holds "
                    f"{have or 'no positions'}; pass one: pmnb.margin.get('{self.name}', "
                    f"currency=...); accepted: {have or 'a collateral asset'}", field="currency")
        return str(want), cur == want, cur

    def check_supported(self, book: pd.DataFrame) -> None:
        """Raise naming the first unsupported position and listing what the model supports."""
        kinds = text_values(book["kind"])
        bad = ~np.isin(kinds, self.kinds)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(
                f"{self.name}: position {book['position_id'].iloc[i]!r} (row {book.index[i]!r}) "
                f"is of kind {kinds[i]!r}; this model margins: {', '.join(self.kinds)}", field="kind",
                row=book.index[i])

    def compute(self, book: pd.DataFrame, market, *, account: str | None = None,
                collateral: pd.DataFrame | None = None,
                orders: pd.DataFrame | None = None) -> MarginReport:  # pragma: no cover
        raise NotImplementedError

    def prepare(self, book: pd.DataFrame, market, *, account: str | None = None,
                collateral: pd.DataFrame | None = None, orders: pd.DataFrame | None = None):
        """A validated, checked book ready for repeated evaluation
        (:class:`pmnb.margin.prepared.PreparedMargin`). This default keeps the book and
        recomputes the model on shocked markets; models with a compiled path override it.

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> from pmnb.book import validate_positions
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
        ...                           marks={"binance:BTCUSDT": 60_000.0})
        >>> b = validate_positions(pd.DataFrame({"account": ["b"], "venue": ["binance"],
        ...     "symbol": ["BTCUSDT"], "size": [1.0], "entry_price": [60_000.0]}))
        >>> get("binance.usdm").prepare(b, m).compiled
        False
        """
        from pmnb.margin.prepared import PreparedMargin

        return PreparedMargin(self, book, market, account=account, collateral=collateral,
                              orders=orders)

    def __repr__(self) -> str:
        return f"<margin model {self.name} {self.params.rule_version}>"


def text_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, text)`` with ``text[codes] == s.astype(str).to_numpy()``: a categorical's
    (a validated book's text column) codes and distinct values, without a row-by-row pass.

    Examples
    --------
    >>> codes, text = text_codes(pd.Series(["b", "a", None, "b"], dtype="category"))
    >>> text[codes].tolist()
    ['b', 'a', 'nan', 'b']
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = np.asarray(s.array.codes, dtype=np.int64)
        text = np.array([str(c) for c in s.cat.categories] + [str(np.nan)], dtype=object)
        return np.where(codes < 0, len(text) - 1, codes), text
    codes, uniq = pd.factorize(s.astype(str).to_numpy())
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)


def text_values(s: pd.Series) -> np.ndarray:
    """``s.astype(str).to_numpy()`` (object array), built from the distinct values
    (:func:`text_codes`).

    Examples
    --------
    >>> text_values(pd.Series(["b", "a", None, "b"], dtype="category")).tolist()
    ['b', 'a', 'nan', 'b']
    """
    codes, text = text_codes(s)
    return text[codes]


def distinct_text(s: pd.Series) -> list[str]:
    """The distinct values of ``s.astype(str)`` that occur, sorted.

    Examples
    --------
    >>> distinct_text(pd.Series(["b", "a", "b"], dtype="category"))
    ['a', 'b']
    """
    codes, text = text_codes(s)
    return sorted(set(text[np.bincount(codes, minlength=len(text)) > 0].tolist()))


def wallet_balance(collateral: pd.DataFrame | None, currency: str, notes: list[str],
                   reason: str | None = None) -> float:
    """The account's wallet balance in ``currency``; other collateral assets are ignored,
    and ``notes`` says so (never silently), with ``reason`` when given (e.g. "segregated BTC
    margin").

    Examples
    --------
    >>> notes = []
    >>> coll = pd.DataFrame({"asset": ["USDC", "ETH"], "balance": [100.0, 2.0]})
    >>> wallet_balance(coll, "USDC", notes), notes
    (100.0, ['collateral other than USDC ignored: ETH'])
    """
    if collateral is None or not len(collateral):
        return 0.0
    assets = collateral["asset"].astype(str)
    other = sorted(set(assets) - {currency})
    if other:
        notes.append(f"collateral other than {currency} ignored: {', '.join(other)}"
                     if reason is None else f"collateral in {other} not counted ({reason})")
    return float(collateral.loc[(assets == currency).to_numpy(), "balance"].sum())


def usd_per_unit(market, currency: str, notes: list[str]) -> float:
    """USD value of one unit of the margin currency: the market's spot, else 1 with a note.

    Examples
    --------
    >>> import pmnb
    >>> notes = []
    >>> usd_per_unit(pmnb.Market.from_dict("2026-01-01", spots={"BTC": 1.0}), "USDT", notes)
    1.0
    >>> notes
    ['USDT valued at 1 USD (no USDT price in the market)']
    """
    if currency in market.spots:
        return market.spot(currency)
    notes.append(f"{currency} valued at 1 USD (no {currency} price in the market)")
    return 1.0


def perp_equity(wallet: float, upnl: np.ndarray, isolated_margin: np.ndarray) -> float:
    """Account equity of a perpetuals venue: the cross wallet plus cross unrealised P&L, plus
    each isolated position's own margin and unrealised P&L (``isolated_margin`` NaN = cross).

    Examples
    --------
    >>> perp_equity(1000.0, np.array([50.0, -20.0]), np.array([np.nan, 300.0]))
    1330.0
    """
    iso = ~np.isnan(isolated_margin)
    return float(wallet + upnl[~iso].sum() + (isolated_margin[iso] + upnl[iso]).sum())


def delta_by_underlying(book: pd.DataFrame, coins: np.ndarray) -> dict[str, float]:
    """Sum of per-position coin deltas by underlying (``delta_total`` of a report).

    Examples
    --------
    >>> delta_by_underlying(pd.DataFrame({"underlying": ["BTC", "ETH", "BTC"]}),
    ...                     np.array([1.0, 2.0, -0.5]))
    {'BTC': 0.5, 'ETH': 2.0}
    """
    groups = book.groupby(book["underlying"].astype(str), observed=True).indices
    return {u: float(coins[idx].sum()) for u, idx in groups.items()}


_REGISTRY: dict[str, Callable[..., MarginModel]] = {}
_BUILTIN_MODULES = ("pmnb.margin.binance_usdm", "pmnb.margin.hyperliquid",
                    "pmnb.margin.dydx_v4", "pmnb.margin.aave_v3",
                    "pmnb.margin.deribit_standard", "pmnb.margin.deribit_portfolio",
                    "pmnb.margin.span")


def register(name: str) -> Callable[[Callable[..., MarginModel]], Callable[..., MarginModel]]:
    """Decorator registering a model factory under ``name``.

    Examples
    --------
    >>> @register("example.flat")
    ... class Flat(MarginModel):
    ...     name = "example.flat"
    >>> "example.flat" in models()
    True
    >>> _ = _REGISTRY.pop("example.flat")
    """
    def deco(factory: Callable[..., MarginModel]) -> Callable[..., MarginModel]:
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a rule set not written yet
            if exc.name != mod:
                raise


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def models() -> list[str]:
    """Names of every available model: pmnb's own and those of installed plugins.

    Examples
    --------
    >>> "binance.usdm" in models()
    True
    """
    _load_builtins()
    return sorted(set(_REGISTRY) | set(_entry_points()))


def get(name: str | MarginModel, **overrides: Any) -> MarginModel:
    """A model by name, with any parameter overridden.

    Examples
    --------
    >>> m = get("binance.usdm")
    >>> m.params.rule_version != ""
    True
    """
    if isinstance(name, MarginModel):
        return type(name)(name.params, **overrides) if overrides else name
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name](**overrides)
    eps = _entry_points()
    if name in eps:
        factory = eps[name].load()
        model = factory(**overrides)
        if not isinstance(model, MarginModel):
            raise ValidationError(f"model: plugin {name!r} returned {type(model).__name__}, not a "
                                  "pmnb.margin.MarginModel", field="model")
        return model
    raise ValidationError(f"model: unknown margin model {name!r}; accepted: {models()}",
                          field="model")


def compute(book: pd.DataFrame, market, model: str | MarginModel, *, account: str | None = None,
            collateral: pd.DataFrame | None = None,
            orders: pd.DataFrame | None = None) -> MarginReport:
    """Margin of one account (or the whole book) under ``model``.

    Parameters
    ----------
    book : DataFrame
        A positions frame (validated here).
    market : pmnb.Market
    model : str or MarginModel
    account : str, optional
        Restrict to this account's positions and collateral.
    collateral : DataFrame, optional
        Long-format balances (account, asset, balance), see :func:`pmnb.book.validate_accounts`.
    orders : DataFrame, optional
        Open orders, for models that margin them.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
    ...                           marks={"binance:BTCUSDT": 60_000.0})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [1.0], "entry_price": [60_000.0]})
    >>> coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [3_000.0]})
    >>> r = compute(book, m, "binance.usdm", account="b", collateral=coll)
    >>> round(r.maintenance, 4)
    250.0
    """
    mdl, v, collateral = _account_book(book, model, account, collateral)
    return mdl.compute(v, market, account=account, collateral=collateral, orders=orders)


def _account_book(book: pd.DataFrame, model: str | MarginModel, account: str | None,
                  collateral: pd.DataFrame | None):
    """The model, the validated and checked positions of ``account`` and its collateral."""
    from pmnb.book import validate_positions  # margin sits above book in the import graph

    mdl = get(model) if isinstance(model, str) else model
    v = validate_positions(book)
    if account is not None:
        known = set(v["account"].astype(str))
        if account not in known and (collateral is None or
                                     account not in set(collateral["account"].astype(str))):
            raise ValidationError(f"account: {account!r} has no positions or collateral; "
                                  f"accounts in the book: {sorted(known)}", field="account")
        v = v[v["account"].astype(str) == account]
        if collateral is not None:
            collateral = collateral[collateral["account"].astype(str) == account]
    mdl.check_supported(v)
    return mdl, v, collateral


def prepare(book: pd.DataFrame, market, model: str | MarginModel, *, account: str | None = None,
            collateral: pd.DataFrame | None = None, orders: pd.DataFrame | None = None):
    """Validate and check a book once and prepare it for repeated margin evaluation.

    Takes the same arguments as :func:`compute` and returns a
    :class:`pmnb.margin.prepared.PreparedMargin`: ``.compute(spot_shock=0.0)`` gives the same
    :class:`MarginReport` as :func:`compute` on ``market.shocked(spot_shock)``;
    ``.evaluate(spot_shock)`` only equity, initial and maintenance margin, and
    ``.maintenance_gap(spot_shocks)`` equity minus maintenance at many moves. ``deribit.standard``
    and ``deribit.portfolio`` evaluate on per-instrument arrays with compiled kernels (forwards,
    vols and marks looked up once); other models recompute on the shocked market.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
    ...                           marks={"binance:BTCUSDT": 60_000.0})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [1.0], "entry_price": [60_000.0]})
    >>> coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [3_000.0]})
    >>> prep = prepare(book, m, "binance.usdm", account="b", collateral=coll)
    >>> round(prep.compute().maintenance, 4), round(prep.evaluate(0.1).equity, 4)
    (250.0, 9000.0)
    """
    mdl, v, collateral = _account_book(book, model, account, collateral)
    return mdl.prepare(v, market, account=account, collateral=collateral, orders=orders)


#: The model pmnb uses for an account, by (venue, margin_mode); "*" matches any mode.
DEFAULT_ACCOUNT_MODELS: dict[tuple[str, str], str | None] = {
    ("deribit", "portfolio"): "deribit.portfolio", ("deribit", "*"): "deribit.standard",
    ("binance", "*"): "binance.usdm", ("hyperliquid", "*"): "hyperliquid",
    ("dydx", "*"): "dydx.v4", ("aave", "*"): "aave.v3", ("uniswap", "*"): None,
}


class AccountMargins(dict):
    """One :class:`MarginReport` per account (a dict), plus ``errors`` for accounts whose model
    could not run and ``skipped`` for accounts no margin applies to (e.g. an LP)."""

    def __init__(self, reports: Mapping[str, MarginReport], errors: Mapping[str, str],
                 skipped: Mapping[str, str]) -> None:
        super().__init__(reports)
        self.errors = dict(errors)
        self.skipped = dict(skipped)

    def summary(self) -> pd.DataFrame:
        """One row per account: the report's headline numbers, or why there is none.

        Examples
        --------
        >>> AccountMargins({}, {"x": "boom"}, {}).summary()["status"].tolist()
        ['error: boom']
        """
        rows = []
        for acc, rep in self.items():
            rows.append({**rep.summary().to_dict(), "status": "ok"})
        for acc, msg in self.errors.items():
            rows.append({"account": acc, "status": f"error: {msg}"})
        for acc, msg in self.skipped.items():
            rows.append({"account": acc, "status": f"no margin: {msg}"})
        return pd.DataFrame(rows).set_index("account")

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


def compute_accounts(book: pd.DataFrame, market, accounts: pd.DataFrame,
                     collateral: pd.DataFrame | None = None,
                     models: Mapping[str, str | MarginModel] | None = None) -> AccountMargins:
    """Margin of every account of a multi-venue book, each under its own venue's model.

    The model comes from ``models[account]`` when given, else from the account's venue and
    margin mode (:data:`DEFAULT_ACCOUNT_MODELS`). An account whose model is not available or
    whose positions it cannot margin gets its error message in ``errors`` (shown in the
    summary) instead of stopping the others; nothing is dropped silently.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
    ...                           marks={"binance:BTCUSDT": 60_000.0})
    >>> acc = pd.DataFrame({"account": ["b"], "venue": ["binance"], "margin_mode": ["cross"],
    ...                     "position_mode": ["one-way"], "fee_tier": ["0"],
    ...                     "settlement_currency": ["USDT"]})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [1.0], "entry_price": [60_000.0]})
    >>> coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [3_000.0]})
    >>> compute_accounts(book, m, acc, coll).summary()[["model", "maintenance", "status"]]
                    model  maintenance status
    account
    b        binance.usdm        250.0     ok
    """
    from pmnb.book import validate_accounts, validate_positions

    acc, coll = validate_accounts(accounts, collateral)
    v = validate_positions(book, acc)
    reports, errors, skipped = {}, {}, {}
    for _, row in acc.iterrows():
        name = str(row["account"])
        choice = (models or {}).get(name)
        if choice is None:
            venue, mode = str(row["venue"]).lower(), str(row["margin_mode"])
            key = (venue, mode) if (venue, mode) in DEFAULT_ACCOUNT_MODELS else (venue, "*")
            if key not in DEFAULT_ACCOUNT_MODELS:
                errors[name] = f"no default margin model for venue {venue!r}; pass models="
                continue
            choice = DEFAULT_ACCOUNT_MODELS[key]
            if choice is None:
                skipped[name] = f"{venue} positions carry no margin requirement"
                continue
        if isinstance(choice, str) and choice not in models_():
            errors[name] = f"margin model {choice!r} is not available in this version"
            continue
        try:
            mdl = get(choice) if isinstance(choice, str) else choice
            mode = str(row["margin_mode"])
            if mode not in mdl.margin_modes:
                raise ValidationError(
                    f"margin_mode: account {name!r} is {mode!r} in the accounts frame, but "
                    f"{mdl.name} applies to {', '.join(mdl.margin_modes)} accounts",
                    field="margin_mode")
            reports[name] = compute(v, market, mdl, account=name,
                                    collateral=coll if len(coll) else None)
        except ValidationError as exc:
            errors[name] = str(exc)
    return AccountMargins(reports, errors, skipped)


models_ = models
__all__ += ["AccountMargins", "DEFAULT_ACCOUNT_MODELS", "compute_accounts", "distinct_text",
            "text_codes", "text_values"]
