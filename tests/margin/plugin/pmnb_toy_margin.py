"""A third-party margin model, shipped as a plugin through the ``pmnb.margin_models`` entry point.

Used by tests/margin/test_registry_binance.py: a flat 10% initial / 5% maintenance on notional.
"""

import dataclasses

import numpy as np
import pandas as pd

from pmnb.margin import MarginModel, MarginParams, MarginReport


@dataclasses.dataclass(frozen=True)
class ToyParams(MarginParams):
    rule_version: str = "toy-1"
    source: str = "tests/margin/plugin"
    im_rate: float = 0.10
    mm_rate: float = 0.05


class ToyFlat(MarginModel):
    name = "toy.flat"
    kinds = ("perpetual", "future")
    params_type = ToyParams

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import value_positions

        val = value_positions(book, market)
        notional = np.abs((book["size"] * book["contract_size"]).to_numpy() * val["price"])
        pos = pd.DataFrame({"initial": notional * self.params.im_rate,
                            "maintenance": notional * self.params.mm_rate}, index=book.index)
        equity = float(collateral["balance"].sum()) + float(val["value"].sum())
        return MarginReport(self.name, self.params.rule_version, account, "USD",
                            float(pos["initial"].sum()), float(pos["maintenance"].sum()), equity,
                            1.0, pos)


def factory(**overrides):
    return ToyFlat(**overrides)
