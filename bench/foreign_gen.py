"""A "foreign" synthetic data generator: e-commerce logs with planted personas.

This module was written WITHOUT looking at gpuseg's own generator
(gpuseg/io/synthetic.py, gpuseg/io/scenarios.py), its quality bench or its
tests, and it imports nothing from gpuseg. The personas, their parameters and
the mechanics (catalogue, sessions, funnel, order timing) were designed from
general knowledge of how shoppers behave on a large online store. The point is
to give gpuseg data whose assumptions it was not tuned on, so that a good score
here means it finds real behavioural structure rather than merely fitting its
own synthetic data.

Two kinds of log:

* ``events``: the REES46 / Open CDP schema (event_time, event_type, product_id,
  category_id, category_code, brand, price, user_id, user_session), 91 days
  from 2020-01-01 to 2020-03-31. Customers have an active window (some churn
  early, some join late), sessions scattered in it by their own weekday and
  hour habits, a burst of views per session, then a funnel
  view -> cart -> purchase (or remove_from_cart) on the viewed products.
* ``orders``: customer_id, order_id, order_date, amount, quantity over 18
  months (2019-01-01 to 2020-06-30), one line per order.

Each persona is a distribution: every customer draws its own rates from
lognormal / gamma / beta laws around the persona's centre, so personas overlap
and activity is heavy-tailed.

    log, truth, k, kind = generate("f6", customers=3000, seed=0)
"""
from __future__ import annotations

import dataclasses as dc
import sys
import time

import numpy as np
import pandas as pd

EV_START = np.datetime64("2020-01-01T00:00:00", "s")
EV_DAYS = 91  # 2020-01-01 .. 2020-03-31; 2020-01-01 was a Wednesday
OR_START = np.datetime64("2019-01-01", "D")
OR_DAYS = 547  # 2019-01-01 .. 2020-06-30

# --------------------------------------------------------------------------- catalogue

# (category_code, typical price, popularity)
_SUBCATS = [
    ("electronics.smartphone", 280, 30), ("electronics.audio.headphone", 60, 8),
    ("electronics.video.tv", 420, 6), ("electronics.clocks", 140, 5),
    ("electronics.tablet", 260, 3), ("computers.notebook", 650, 7),
    ("computers.desktop", 750, 2), ("computers.components.videocards", 380, 2),
    ("computers.peripherals.mouse", 22, 3), ("appliances.kitchen.refrigerators", 520, 4),
    ("appliances.kitchen.washer", 410, 4), ("appliances.environment.vacuum", 160, 4),
    ("appliances.kitchen.kettle", 30, 3), ("appliances.personal.hair_cutter", 40, 2),
    ("furniture.living_room.sofa", 480, 1.5), ("furniture.bedroom.bed", 360, 1),
    ("kids.toys", 25, 2.5), ("kids.carriage", 210, 1), ("apparel.shoes", 70, 2.5),
    ("apparel.costume", 40, 1), ("auto.accessories.player", 85, 1),
    ("construction.tools.drill", 95, 1.5), ("sport.bicycle", 320, 1),
    ("accessories.bag", 45, 1), ("stationery.cartrige", 20, 1),
    ("country_yard.lawn_mower", 230, 0.5),
]
_BRANDS = {
    "electronics": ["samsung", "apple", "xiaomi", "huawei", "sony", "lg", "oppo", "jbl"],
    "computers": ["lenovo", "hp", "asus", "acer", "msi", "logitech", "apple", "dell"],
    "appliances": ["bosch", "indesit", "beko", "lg", "samsung", "philips", "tefal", "redmond"],
    "furniture": ["hoff", "brw", "askona", "stolline"],
    "kids": ["lego", "hasbro", "mattel", "chicco"],
    "apparel": ["nike", "adidas", "puma", "reebok"],
    "auto": ["pioneer", "kenwood", "alpine"],
    "construction": ["bosch", "makita", "dewalt", "interskol"],
    "sport": ["stern", "forward", "merida"],
    "accessories": ["samsonite", "xiaomi", "wenger"],
    "stationery": ["hp", "canon", "epson"],
    "country_yard": ["karcher", "gardena", "champion"],
}
GROUPS = sorted(_BRANDS)


@dc.dataclass
class Catalogue:
    """Products ordered by (category, brand slot, price); slot 0 is unbranded."""
    group: np.ndarray      # category -> index into GROUPS
    code: np.ndarray       # category -> category_code or None (~30% of ids uncoded)
    cat_id: np.ndarray     # category -> int64 id
    pop: np.ndarray        # category -> popularity (sums to 1)
    n_slots: np.ndarray    # category -> brand slots incl. unbranded
    cb_off: np.ndarray     # (category, slot) -> first product
    cb_cnt: np.ndarray     # (category, slot) -> product count
    off: np.ndarray        # category -> first product
    cnt: np.ndarray        # category -> product count
    by_price: np.ndarray   # products of each category sorted by price (global idx)
    prod_id: np.ndarray
    price: np.ndarray
    brand: np.ndarray      # product -> brand or None


def _catalogue(rng: np.random.Generator) -> Catalogue:
    factor = {b: rng.lognormal(0.0, 0.3) for g in GROUPS for b in _BRANDS[g]}
    group, code, pop, prices, brands, slot_cnt = [], [], [], [], [], []
    for name, base, weight in _SUBCATS:
        g = name.split(".")[0]
        for _ in range(3):  # several category ids share a kind; some lack a code
            group.append(GROUPS.index(g))
            code.append(name if rng.random() > 0.3 else None)
            pop.append(weight * rng.gamma(2.0, 0.5))
            k = min(len(_BRANDS[g]), 2 + rng.poisson(2))
            names = [None] + list(rng.choice(_BRANDS[g], k, replace=False))
            counts = [1 + rng.poisson(4)] + [1 + rng.poisson(9) for _ in names[1:]]
            for b, n in zip(names, counts):
                f = 0.55 if b is None else factor[b]
                prices.append(np.sort(np.round(np.maximum(base * f * rng.lognormal(0, 0.45, n), 0.99), 2)))
                brands += [b] * n
            slot_cnt.append(counts)
    n_cat = len(group)
    n_slots = np.array([len(c) for c in slot_cnt])
    cb_cnt = np.zeros((n_cat, n_slots.max()), np.int64)
    for i, c in enumerate(slot_cnt):
        cb_cnt[i, : len(c)] = c
    cb_off = (np.cumsum(cb_cnt.ravel()) - cb_cnt.ravel()).reshape(cb_cnt.shape)
    cnt = cb_cnt.sum(1)
    off = np.cumsum(cnt) - cnt
    price = np.concatenate(prices)
    by_price = np.concatenate([o + np.argsort(price[o:o + n], kind="stable") for o, n in zip(off, cnt)])
    prod_id = 1_000_000 + np.cumsum(rng.integers(1, 4000, len(price)))
    cat_id = 2_053_013_552_000_000_000 + np.cumsum(rng.integers(10**6, 10**9, n_cat))
    pop = np.array(pop)
    return Catalogue(np.array(group), np.array(code, dtype=object), cat_id.astype(np.int64),
                     pop / pop.sum(), n_slots, cb_off, cb_cnt, off, cnt, by_price,
                     rng.permutation(prod_id).astype(np.int64), price,
                     np.array(brands, dtype=object))


# --------------------------------------------------------------------------- personas


@dc.dataclass(frozen=True)
class EventPersona:
    """Centres and spreads of one persona; beta tuples are (a, b), lognormal ones (median, sigma)."""
    rate: tuple = (5.0, 0.7)          # sessions per active month, lognormal
    start: tuple = (0.85, 0, 60)      # P(active from day 0), else first day uniform in [lo, hi]
    end: tuple = (0.85, 30, 90)       # P(active to the last day), else last day uniform in [lo, hi]
    views: tuple = (5.0, 0.5)         # views per session, lognormal
    dwell: tuple = (50.0, 0.4)        # seconds between views, lognormal
    cart: tuple = (2.0, 20.0)         # P(cart | viewed product), beta
    buy: tuple = (4.0, 5.0)           # P(purchase | cart), beta
    remove: tuple = (2.0, 5.0)        # P(remove_from_cart | cart, no purchase), beta
    price: tuple = (3.0, 3.0)         # price quantile within a category, beta
    focus: tuple = (2.0, 3.0)         # share of sessions in the customer's own categories, beta
    groups: tuple | None = None       # top-level groups the own categories come from (None: any)
    nfocus: tuple = (1, 3)            # how many own categories
    loyal: tuple = (2.0, 5.0)         # P(view the customer's favourite brand), beta
    hour: tuple = (20.0, 2.5, 3.0)    # mean hour, its spread between customers, spread within
    weekend: float = 1.0              # weight of Sat/Sun days relative to weekdays


_WINDOW = EventPersona(rate=(5, 0.7), views=(9, 0.5), dwell=(70, 0.4), cart=(1, 60), buy=(2, 8),
                       remove=(3, 3), focus=(2, 3), nfocus=(2, 3), loyal=(1, 6),
                       hour=(21.5, 1.5, 2.5), weekend=1.4)
_LOYAL = EventPersona(rate=(3, 0.6), views=(3.5, 0.5), dwell=(60, 0.4), cart=(3, 14), buy=(7, 3),
                      remove=(1, 6), price=(7, 1.6), focus=(8, 2), groups=("electronics", "computers"),
                      nfocus=(1, 2), loyal=(8, 2), hour=(20, 2, 2))

EVENT_PERSONAS = {
    # browses a lot, long sessions, carts rarely, almost never buys
    "window_shopper": _WINDOW,
    # same browsing as window_shopper but fills carts and abandons them (differs in the funnel only)
    "cart_abandoner": dc.replace(_WINDOW, cart=(2.5, 25), buy=(1.5, 20), remove=(5, 3)),
    # frequent, cheapest products, compares and removes, no brand loyalty, broad
    "bargain_hunter": EventPersona(rate=(6, 0.6), views=(7, 0.5), dwell=(40, 0.4), cart=(2, 28),
                                   buy=(3, 5), remove=(4, 3), price=(1.3, 6), focus=(2, 4),
                                   nfocus=(2, 3), loyal=(1, 8), hour=(19, 3, 3), weekend=1.2),
    # few short sessions, expensive products of a favourite brand in electronics/computers, converts
    "loyal_premium": _LOYAL,
    # as loyal_premium but broad categories and no favourite brand (differs in focus and loyalty)
    "premium_explorer": dc.replace(_LOYAL, focus=(2, 3), groups=None, nfocus=(2, 3), loyal=(1, 5)),
    # rare, very short sessions in office hours on weekdays; what is viewed is bought
    "mission_buyer": EventPersona(rate=(1.5, 0.5), views=(2.2, 0.4), dwell=(45, 0.4), cart=(6, 10),
                                  buy=(8, 2), remove=(1, 8), focus=(3, 3), nfocus=(1, 3),
                                  loyal=(2, 4), hour=(13, 1.5, 2.0), weekend=0.4),
    # very active all quarter (heavy tail), mid-upper prices, buys often
    "power_shopper": EventPersona(rate=(18, 0.7), start=(0.95, 0, 30), end=(0.95, 60, 90),
                                  views=(6, 0.5), dwell=(35, 0.4), cart=(2, 16), buy=(5, 4),
                                  price=(4, 3), focus=(2, 3), nfocus=(2, 3), loyal=(3, 4),
                                  hour=(18, 3, 4)),
    # was an ordinary shopper, gone after the first weeks
    "churned": EventPersona(rate=(7, 0.6), start=(0.9, 0, 20), end=(0.0, 8, 35), cart=(2, 16),
                            price=(3, 4), focus=(3, 3)),
    # joined in the last month, eager and exploring
    "new_customer": EventPersona(rate=(8, 0.6), start=(0.0, 62, 85), end=(1.0, 90, 90),
                                 views=(6, 0.5), dwell=(55, 0.4), cart=(2, 16), price=(3, 3.5),
                                 focus=(2, 2), weekend=1.2),
    # after-midnight sessions on computers/electronics, brand-minded, mid-high prices
    "night_owl_gamer": EventPersona(rate=(10, 0.6), views=(7, 0.5), dwell=(40, 0.4), cart=(2, 22),
                                    remove=(2, 4), price=(4, 2.5), focus=(8, 2),
                                    groups=("computers", "electronics"), nfocus=(1, 2), loyal=(5, 3),
                                    hour=(1.5, 1.0, 1.5), weekend=1.3),
    # weekend mornings, home categories, long sessions, big baskets
    "weekend_homemaker": EventPersona(rate=(4, 0.5), views=(8, 0.4), dwell=(80, 0.4), cart=(4, 16),
                                      buy=(6, 4), remove=(2, 6), price=(3.5, 3), focus=(6, 3),
                                      groups=("appliances", "furniture", "kids"), nfocus=(2, 3),
                                      loyal=(3, 4), hour=(10.5, 1.5, 2.0), weekend=4.0),
}


@dc.dataclass(frozen=True)
class OrderPersona:
    first: tuple             # day of the first order, uniform in [lo, hi]
    last: tuple              # P(buying until the end), else last order day uniform in [lo, hi]
    rate: tuple              # orders per month between first and last, lognormal (median, sigma)
    unit: tuple              # unit price, lognormal (median, sigma between customers)
    qty: float               # mean items per order
    extra: float = 0.0       # Poisson mean of stray orders anywhere in the window


ORDER_PERSONAS = {
    # long tenure, several orders a month, big baskets, still active
    "vip_frequent": OrderPersona((0, 150), (0.9, 450, 546), (3.0, 0.5), (70, 0.4), 2.5),
    # monthly-ish, mid value, long tenure
    "loyal_regular": OrderPersona((0, 250), (0.85, 400, 546), (1.0, 0.4), (35, 0.4), 1.8),
    # joined in the last three months, buying briskly
    "new_promising": OrderPersona((450, 530), (1.0, 546, 546), (2.0, 0.5), (60, 0.5), 1.5),
    # one cheap order (sometimes a stray second one)
    "one_time_buyer": OrderPersona((0, 546), (0.0, 0, 0), (1e-6, 0.1), (30, 0.6), 1.2, extra=0.15),
    # bought valuable baskets early, lapsed 8-14 months ago
    "lapsed_high_value": OrderPersona((0, 120), (0.0, 120, 300), (1.5, 0.5), (75, 0.4), 2.0),
    # few orders of many items
    "bulk_buyer": OrderPersona((0, 300), (0.8, 350, 546), (0.4, 0.5), (45, 0.5), 12.0),
    # a burst of gift orders in Nov-Dec 2019, little else
    "seasonal_gifter": OrderPersona((290, 325), (0.0, 335, 358), (1.5, 0.4), (45, 0.5), 2.5,
                                    extra=0.5),
}

# --------------------------------------------------------------------------- scenarios

_MIX = {
    "f3": ("events", {"bargain_hunter": 0.35, "loyal_premium": 0.30, "window_shopper": 0.35}),
    "f4_imbalanced": ("events", {"bargain_hunter": 0.45, "window_shopper": 0.30,
                                 "mission_buyer": 0.20, "power_shopper": 0.05}),
    "f5": ("events", {"bargain_hunter": 0.25, "loyal_premium": 0.15, "window_shopper": 0.25,
                      "churned": 0.20, "new_customer": 0.15}),
    "f6": ("events", {"bargain_hunter": 0.22, "loyal_premium": 0.12, "window_shopper": 0.25,
                      "mission_buyer": 0.16, "churned": 0.15, "power_shopper": 0.10}),
    "f8": ("events", {"bargain_hunter": 0.18, "loyal_premium": 0.10, "window_shopper": 0.18,
                      "mission_buyer": 0.12, "churned": 0.12, "new_customer": 0.10,
                      "night_owl_gamer": 0.08, "weekend_homemaker": 0.12}),
    "f7_mixed": ("events", {"loyal_premium": 0.12, "premium_explorer": 0.12,
                            "window_shopper": 0.18, "cart_abandoner": 0.14,
                            "bargain_hunter": 0.18, "mission_buyer": 0.14, "new_customer": 0.12}),
    "f6_orders": ("orders", {"vip_frequent": 0.08, "loyal_regular": 0.22, "new_promising": 0.12,
                             "one_time_buyer": 0.30, "lapsed_high_value": 0.16,
                             "seasonal_gifter": 0.12}),
    "f4_orders": ("orders", {"vip_frequent": 0.15, "loyal_regular": 0.30, "one_time_buyer": 0.35,
                             "bulk_buyer": 0.20}),
}
SCENARIOS = {
    "f3": "3 balanced, well separated personas: bargain hunters, loyal premium, window shoppers",
    "f4_imbalanced": "4 personas, power shoppers only 5%",
    "f5": "5 personas incl. churned and newly joined (recency structure)",
    "f6": "6 personas, the typical case: funnel, price, recency and activity differ",
    "f8": "8 personas incl. night owls and weekend homemakers (hour/weekday/category habits)",
    "f7_mixed": "7 personas with two close pairs: loyal_premium/premium_explorer "
                "(focus+brand loyalty only) and window_shopper/cart_abandoner (funnel only)",
    "f6_orders": "order log, 6 value/frequency/recency/tenure personas over 18 months",
    "f4_orders": "order log, 4 personas: VIP, regular, one-time, bulk",
}

# --------------------------------------------------------------------------- helpers


def _logn(rng, spec, n):
    return spec[0] * rng.lognormal(0.0, spec[1], n)


def _beta(rng, spec, n):
    return rng.beta(spec[0], spec[1], n)


def _window(rng, spec, n, default):
    """Day per customer: `default` with probability spec[0], else uniform in [lo, hi]."""
    return np.where(rng.random(n) < spec[0], default, rng.integers(spec[1], spec[2] + 1, n))


def _seg_starts(counts):
    return np.cumsum(counts) - counts


def _ids(rng, n, base, max_gap):
    """n unique large ids in random order."""
    return rng.permutation(base + np.cumsum(rng.integers(1, max_gap, n))).astype(np.int64)


def _uuids(rng, n):
    """n random version-4 UUID strings, vectorised."""
    b = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    lut = np.frombuffer(b"0123456789abcdef", np.uint8)
    hexd = np.empty((n, 32), np.uint8)
    hexd[:, 0::2], hexd[:, 1::2] = lut[b >> 4], lut[b & 15]
    out = np.full((n, 36), ord("-"), np.uint8)
    for src, dst in ((0, 0), (8, 9), (12, 14), (16, 19), (20, 24)):
        w = {0: 8, 20: 12}.get(src, 4)
        out[:, dst:dst + w] = hexd[:, src:src + w]
    return out.view("S36").ravel().astype(str).astype(object)


def _personas(rng, mix, customers):
    names = list(mix)
    w = np.array([mix[k] for k in names], float)
    return np.array(names, dtype=object)[rng.choice(len(names), customers, p=w / w.sum())]


def _by_customer(persona, parts):
    """Scatter each persona's per-customer parameter arrays back into customer order."""
    some = next(iter(parts.values()))
    out = {k: np.empty((len(persona),) + v.shape[1:], v.dtype) for k, v in some.items()}
    for name, d in parts.items():
        for k, v in d.items():
            out[k][persona == name] = v
    return out


# --------------------------------------------------------------------------- events


def _event_customers(rng, p: EventPersona, n, cat: Catalogue):
    start = _window(rng, p.start, n, 0)
    end = np.maximum(_window(rng, p.end, n, EV_DAYS - 1), np.minimum(start + 3, EV_DAYS - 1))
    pool = np.arange(len(cat.pop)) if p.groups is None else \
        np.flatnonzero(np.isin(cat.group, [GROUPS.index(g) for g in p.groups]))
    w = cat.pop[pool] / cat.pop[pool].sum()
    return dict(
        rate=_logn(rng, p.rate, n), start=start, end=end,
        views=np.maximum(_logn(rng, p.views, n), 1.0), dwell=_logn(rng, p.dwell, n),
        cart=_beta(rng, p.cart, n), buy=_beta(rng, p.buy, n), remove=_beta(rng, p.remove, n),
        price=_beta(rng, p.price, n), focus=_beta(rng, p.focus, n), loyal=_beta(rng, p.loyal, n),
        fcats=pool[rng.choice(len(pool), (n, 3), p=w)], fav=rng.random(n),
        nfocus=rng.integers(p.nfocus[0], p.nfocus[1] + 1, n),
        hour=p.hour[0] + rng.normal(0, p.hour[1], n), hour_sd=p.hour[2] * rng.gamma(6, 1 / 6, n),
        weekend=np.full(n, p.weekend) * rng.lognormal(0, 0.3, n),
    )


def _session_days(rng, start, span, weekend):
    """Days in [start, start+span) with Sat/Sun weighted by `weekend` (rejection sampling)."""
    day = start + (rng.random(len(start)) * span).astype(np.int64)
    todo = np.arange(len(start))
    for _ in range(40):
        d = start[todo] + (rng.random(len(todo)) * span[todo]).astype(np.int64)
        w = np.where((d + 2) % 7 >= 5, weekend[todo], 1.0)
        ok = rng.random(len(todo)) * np.maximum(weekend[todo], 1.0) < w
        day[todo[ok]] = d[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    return day


def _sessions(rng, c):
    span = c["end"] - c["start"] + 1
    n = np.clip(rng.poisson(c["rate"] * span / 30.4), 1, 400)
    cust = np.repeat(np.arange(len(n)), n)
    day = _session_days(rng, c["start"][cust], span[cust], c["weekend"][cust])
    hour = (c["hour"][cust] + rng.normal(0, c["hour_sd"][cust])) % 24
    return cust, day * 86400.0 + hour * 3600.0


def _pick_products(rng, c, cat, s_cust, v_sess, first):
    S, V = len(s_cust), len(v_sess)
    k = (rng.random(S) * c["nfocus"][s_cust]).astype(np.int64)
    s_cat = np.where(rng.random(S) < c["focus"][s_cust], c["fcats"][s_cust, k],
                     rng.choice(len(cat.pop), S, p=cat.pop))
    vc, cc = s_cust[v_sess], s_cat[v_sess]
    q = np.clip(c["price"][vc] + rng.normal(0, 0.12, V), 0, 0.999)
    slot = 1 + (c["fav"][vc] * (cat.n_slots[cc] - 1)).astype(np.int64)
    loyal = cat.cb_off[cc, slot] + (q * cat.cb_cnt[cc, slot]).astype(np.int64)
    anyb = cat.by_price[cat.off[cc] + (q * cat.cnt[cc]).astype(np.int64)]
    prod = np.where(rng.random(V) < c["loyal"][vc], loyal, anyb)
    new = first | (rng.random(V) > 0.3)  # 30% of views look again at the previous product
    return prod[np.maximum.accumulate(np.where(new, np.arange(V), 0))]


def _keep_in_window(t, sess, S):
    """Move a session that would run past the window's end back by its overflow."""
    last = np.zeros(S)
    np.maximum.at(last, sess, t)
    return t - np.maximum(last - (EV_DAYS * 86400 - 1), 0)[sess]


def _event_arrays(rng, c, cat):
    s_cust, s_t0 = _sessions(rng, c)
    S = len(s_cust)
    nv = 1 + np.minimum(rng.poisson((c["views"][s_cust] - 1) * rng.gamma(2.0, 0.5, S)), 80)
    v_sess = np.repeat(np.arange(S), nv)
    V, s0 = len(v_sess), _seg_starts(nv)
    first = np.zeros(V, bool)
    first[s0] = True
    prod = _pick_products(rng, c, cat, s_cust, v_sess, first)
    vc = s_cust[v_sess]
    gap = np.where(first, 0.0, rng.exponential(c["dwell"][vc]))
    cs = np.cumsum(gap)
    vt = s_t0[v_sess] + cs - cs[s0][v_sess]
    se = vt[s0 + nv - 1][v_sess]  # session's last view
    run_end = np.ones(V, bool)
    run_end[:-1] = (prod[1:] != prod[:-1]) | first[1:]
    cart = run_end & (rng.random(V) < c["cart"][vc])
    buy = cart & (rng.random(V) < c["buy"][vc])
    remove = cart & ~buy & (rng.random(V) < c["remove"][vc])
    shown = cart & ~(buy & (rng.random(V) < 0.08))  # a few "buy now" purchases skip the cart
    ct = vt + 5 + rng.exponential(20, V)
    bt = np.maximum(ct, se) + 20 + rng.exponential(60, V)
    rt = ct + 10 + rng.random(V) * np.maximum(se - ct, 0) + rng.exponential(30, V)
    idx = np.concatenate([np.arange(V), *map(np.flatnonzero, (shown, buy, remove))])
    t = np.concatenate([vt, ct[shown], bt[buy], rt[remove]])
    kind = np.repeat(np.arange(4), [V, shown.sum(), buy.sum(), remove.sum()])
    t = _keep_in_window(t, v_sess[idx], S)
    order = np.argsort(t, kind="stable")
    return t[order], kind[order], prod[idx[order]], v_sess[idx[order]], s_cust, S


def _events(rng, mix, customers):
    cat = _catalogue(rng)
    persona = _personas(rng, mix, customers)
    c = _by_customer(persona, {name: _event_customers(rng, EVENT_PERSONAS[name],
                                                      int((persona == name).sum()), cat)
                               for name in mix})
    t, kind, prod, sess, s_cust, S = _event_arrays(rng, c, cat)
    user_ids = _ids(rng, customers, 512_000_000, 3000)
    pcat = np.repeat(np.arange(len(cat.cnt)), cat.cnt)[prod]
    log = pd.DataFrame({
        "event_time": (EV_START + np.round(t).astype("timedelta64[s]")).astype("datetime64[ns]"),
        "event_type": np.array(["view", "cart", "purchase", "remove_from_cart"], dtype=object)[kind],
        "product_id": cat.prod_id[prod], "category_id": cat.cat_id[pcat],
        "category_code": cat.code[pcat], "brand": cat.brand[prod], "price": cat.price[prod],
        "user_id": user_ids[s_cust[sess]], "user_session": _uuids(rng, S)[sess],
    })
    truth = pd.DataFrame({"user_id": user_ids, "persona": persona.astype(str)})
    return log, truth.sort_values("user_id", ignore_index=True)


# --------------------------------------------------------------------------- orders


def _order_customers(rng, p: OrderPersona, n):
    first = rng.integers(p.first[0], p.first[1] + 1, n)
    last = np.maximum(_window(rng, p.last, n, OR_DAYS - 1), first)
    return dict(first=first, last=last, rate=_logn(rng, p.rate, n), unit=_logn(rng, p.unit, n),
                qty=p.qty * rng.gamma(4.0, 0.25, n), extra=np.full(n, p.extra))


def _orders(rng, mix, customers):
    persona = _personas(rng, mix, customers)
    c = _by_customer(persona, {name: _order_customers(rng, ORDER_PERSONAS[name],
                                                      int((persona == name).sum()))
                               for name in mix})
    span = c["last"] - c["first"]
    n = 1 + np.minimum(rng.poisson(c["rate"] * span / 30.4), 300)
    cust = np.repeat(np.arange(customers), n)
    pos = np.arange(len(cust)) - _seg_starts(n)[cust]
    day = c["first"][cust] + rng.random(len(cust)) * span[cust]
    day = np.where(pos == 0, c["first"][cust], np.where(pos == 1, c["last"][cust], day))
    stray = np.repeat(np.arange(customers), rng.poisson(c["extra"]))
    cust = np.concatenate([cust, stray])
    day = np.concatenate([day, rng.integers(0, OR_DAYS, len(stray))]).astype(np.int64)
    qty = 1 + rng.poisson(np.maximum(c["qty"][cust] - 1, 0))
    amount = np.round(qty * c["unit"][cust] * rng.lognormal(0, 0.3, len(cust)), 2)
    order = np.lexsort((rng.random(len(cust)), day))
    ids = _ids(rng, customers, 10_000, 50)
    log = pd.DataFrame({
        "customer_id": ids[cust[order]],
        "order_id": np.arange(1_000_001, 1_000_001 + len(cust), dtype=np.int64),
        "order_date": (OR_START + day[order].astype("timedelta64[D]")).astype("datetime64[ns]"),
        "amount": np.maximum(amount[order], 0.5), "quantity": qty[order].astype(np.int64),
    })
    truth = pd.DataFrame({"customer_id": ids, "persona": persona.astype(str)})
    return log, truth.sort_values("customer_id", ignore_index=True)


# --------------------------------------------------------------------------- API


def generate(scenario: str, customers: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, int, str]:
    """Returns (log, truth, k, kind) for one of SCENARIOS; deterministic in `seed`."""
    if scenario not in _MIX:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {sorted(SCENARIOS)}")
    kind, mix = _MIX[scenario]
    rng = np.random.default_rng(seed)
    log, truth = (_events if kind == "events" else _orders)(rng, mix, customers)
    return log, truth, len(mix), kind


def _summary_events(log, truth):
    g = log.groupby("user_id")
    day = (log["event_time"] - pd.Timestamp("2020-01-01")).dt.days
    buys = log["event_type"] == "purchase"
    per = pd.DataFrame({
        "events": g.size(), "sessions": g["user_session"].nunique(),
        "carts": (log["event_type"] == "cart").groupby(log["user_id"]).sum(),
        "purchases": buys.groupby(log["user_id"]).sum(),
        "spend": log["price"].where(buys, 0.0).groupby(log["user_id"]).sum(),
        "view_price": log["price"].groupby(log["user_id"]).median(),
        "first_day": day.groupby(log["user_id"]).min(), "last_day": day.groupby(log["user_id"]).max(),
        "night%": (log["event_time"].dt.hour < 5).groupby(log["user_id"]).mean() * 100,
        "wkend%": (log["event_time"].dt.day_of_week >= 5).groupby(log["user_id"]).mean() * 100,
        "brand_top%": log.groupby(["user_id", "brand"]).size().groupby(level=0).max()
        / log["brand"].notna().groupby(log["user_id"]).sum() * 100,
    })
    return per.join(truth.set_index("user_id"))


def _summary_orders(log, truth):
    g = log.groupby("customer_id")
    per = pd.DataFrame({
        "orders": g.size(), "spend": g["amount"].sum(), "avg_amount": g["amount"].mean(),
        "avg_qty": g["quantity"].mean(),
        "first_day": (g["order_date"].min() - pd.Timestamp("2019-01-01")).dt.days,
        "last_day": (g["order_date"].max() - pd.Timestamp("2019-01-01")).dt.days,
    })
    return per.join(truth.set_index("customer_id"))


def _check(log, truth, kind):
    uid = "user_id" if kind == "events" else "customer_id"
    required = [col for col in log.columns if col not in ("category_code", "brand")]
    assert not log[required].isna().any().any(), "NaN in a required field"
    assert set(truth[uid]) == set(log[uid]), "truth and log customers differ"
    assert (log["price" if kind == "events" else "amount"] > 0).all()
    if kind == "events":
        assert log["event_time"].is_monotonic_increasing
    else:
        assert log["order_id"].is_unique and (log["quantity"] >= 1).all()


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    for name, desc in SCENARIOS.items():
        t0 = time.perf_counter()
        log, truth, k, kind = generate(name, n, seed=0)
        secs = time.perf_counter() - t0
        _check(log, truth, kind)
        print(f"\n=== {name} (k={k}, {kind}): {desc}")
        print(f"{len(log):,} rows, {len(truth):,} customers, {secs:.2f} s")
        if kind == "events":
            print("event types:", log["event_type"].value_counts().to_dict(),
                  f"| category_code missing {log['category_code'].isna().mean():.0%},"
                  f" brand missing {log['brand'].isna().mean():.0%}")
            per = _summary_events(log, truth)
        else:
            per = _summary_orders(log, truth)
        table = per.groupby("persona").mean().round(1)
        table.insert(0, "customers", per.groupby("persona").size())
        if kind == "events":
            buyers = (per["purchases"] > 0).groupby(per["persona"]).mean()
            table.insert(1, "buyers%", buyers.mul(100).round(0))
        print(table.to_string())
