"""Independent 40-digit references for the pricing tests.

Prices are the textbook formulas (Black 1976; Merton 1973) evaluated in mpmath with 50 significant
digits; every greek is a derivative of those prices taken numerically by ``mpmath.diff`` (which
raises the working precision internally), so none of pmnb's closed forms is reused here.
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 50


def usd_value(x, K, T, s, r, q, w, model):
    x, K, T, s, r, q = (mp.mpf(v) for v in (x, K, T, s, r, q))
    F = x if model == "black76" else x * mp.e ** ((r - q) * T)
    sst = s * mp.sqrt(T)
    d1 = (mp.log(F / K) + sst**2 / 2) / sst
    d2 = d1 - sst
    ncdf = lambda z: mp.ncdf(z)  # noqa: E731
    return mp.e ** (-r * T) * w * (F * ncdf(w * d1) - K * ncdf(w * d2))


def value(x, K, T, s, r, q, w, model, settlement):
    v = usd_value(x, K, T, s, r, q, w, model)
    if settlement == "linear":
        return v
    x, T, r, q = (mp.mpf(a) for a in (x, T, r, q))
    F = x if model == "black76" else x * mp.e ** ((r - q) * T)
    return v / F


def all_greeks(x, K, T, s, r, q, w, model, settlement):
    """Every greek of pmnb.GREEKS by mpmath numerical differentiation of ``value``."""
    qq = 0 if model == "black76" else q  # Black-76 ignores q: r only discounts, F is held fixed

    def f(xx, ss, tt, rr):
        return value(xx, K, tt, ss, rr, qq, w, model, settlement)

    p = (mp.mpf(x), mp.mpf(s), mp.mpf(T), mp.mpf(r))

    def d(order):
        return mp.diff(f, p, order)

    X = p[0]
    out = {"price": f(*p), "vega": d((0, 1, 0, 0)), "theta": -d((0, 0, 1, 0)),
           "rho": d((0, 0, 0, 1)), "volga": d((0, 2, 0, 0)), "veta": -d((0, 1, 1, 0)),
           "ultima": d((0, 3, 0, 0))}
    if settlement == "linear":
        out.update(delta=d((1, 0, 0, 0)), gamma=d((2, 0, 0, 0)), vanna=d((1, 1, 0, 0)),
                   charm=-d((1, 0, 1, 0)), speed=d((3, 0, 0, 0)), zomma=d((2, 1, 0, 0)),
                   color=-d((2, 0, 1, 0)))
    else:
        # coin delta D = x dVc/dx; spot-type greeks differentiate D
        vx, vxx, vxxx = d((1, 0, 0, 0)), d((2, 0, 0, 0)), d((3, 0, 0, 0))
        vxs, vxxs = d((1, 1, 0, 0)), d((2, 1, 0, 0))
        vxt, vxxt = d((1, 0, 1, 0)), d((2, 0, 1, 0))
        out.update(delta=X * vx, gamma=vx + X * vxx, speed=2 * vxx + X * vxxx,
                   vanna=X * vxs, zomma=vxs + X * vxxs, charm=-X * vxt,
                   color=-(vxt + X * vxxt))
    return {k: float(v) for k, v in out.items()}
