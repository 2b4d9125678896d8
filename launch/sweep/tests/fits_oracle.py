"""Independent replication of a sweep report's fits (launch/sweep/src/fit/), for
launch/sweep/tests/fits_against_scipy.rs.

Reads a JSON list of cases on stdin and prints one JSON result per case:
- {"law": K, "points": [[N, D, loss], ...], "seed": S}: L(N) (K = 1) or L(N, D) (K = 2) fitted as
  Chinchilla's third approach (the Huber loss, delta 1e-3, of log-loss residuals, with
  log L = logsumexp(e, a_k - alpha_k log x_k)), minimised by scipy's L-BFGS-B from the documented
  start grid, then 200 bootstrap resamples refitted from the full fit and eight grid points, and
  each parameter's percentile interval;
- {"isoflop": true, "points": [[C, N, loss], ...], "seed": S}: at each budget the parabola of the
  mean loss against log N (numpy.polyfit), its vertex where the data bracket a minimum, the
  vertex's bootstrap interval, and the trend log N_opt = c + a log C (numpy.polyfit) with its
  interval.

What is shared with the Rust code is the method as documented (the start grid, the resampling
rule, SplitMix64 and the percentile rule), not its code: the objective and its gradient, the
optimiser, the parabola and the line are scipy's and numpy's. Exits with status 3 when numpy or
scipy is missing.
"""

import json
import multiprocessing
import os
import sys

# The fits are thousands of tiny problems: BLAS threads only add their start-up to each (4x).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import numpy as np
    from scipy.optimize import minimize
except ImportError as err:
    print(f"fits_oracle.py needs numpy and scipy: {err}", file=sys.stderr)
    sys.exit(3)

HUBER_DELTA = 1e-3
RESAMPLES = 200
MASK = (1 << 64) - 1


class SplitMix64:
    """The trainer's SplitMix64 (trainer/src/model/rng.rs), seeded from words."""

    def __init__(self, words):
        self.state = 0x6A09E667F3BCC908
        for w in words:
            self.state ^= w & MASK
            self.state = self.next()

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        """Lemire's multiply-shift, rejecting the biased low products."""
        threshold = (-n & MASK) % n
        while True:
            product = self.next() * n
            if product & MASK >= threshold:
                return product >> 64


class Bootstrap:
    """Items with equal keys are replicas (seeds) of one grid point: when every point has two or
    more, a resample redraws each point's replicas; else it redraws the items themselves."""

    def __init__(self, keys):
        self.groups = {}
        for i, key in enumerate(keys):
            self.groups.setdefault(key, []).append(i)
        self.groups = list(self.groups.values())
        self.n = len(keys)
        self.seeds = bool(self.groups) and all(len(g) >= 2 for g in self.groups)

    def resamples(self, seed):
        out = []
        for r in range(RESAMPLES):
            rng = SplitMix64([seed, r])
            if self.seeds:
                out.append([g[rng.below(len(g))] for g in self.groups for _ in g])
            else:
                out.append([rng.below(self.n) for _ in range(self.n)])
        return out

    def distinct_in(self, resample):
        present = set(resample)
        return sum(1 for g in self.groups if present.intersection(g))


def percentile_interval(values):
    """The 2.5th and 97.5th percentiles, the element at round(q (n - 1)) of the sorted values; a
    NaN (an unbounded resample) counts as -inf and +inf alternately."""
    finite = [v for v in values if not np.isnan(v)]
    nans = len(values) - len(finite)
    tails = [-np.inf if i % 2 == 0 else np.inf for i in range(nans)]
    v = sorted(finite + tails)
    if not v:
        return [-np.inf, np.inf]
    at = lambda q: v[min(int(np.floor(q * (len(v) - 1) + 0.5)), len(v) - 1)]
    return [at(0.025), at(0.975)]


def start_grid(k):
    axes = [[-3.0, -1.5, -0.5, 0.0]] + [[0.0, 3.0, 6.0, 10.0]] * k + [[0.1, 0.4, 0.8, 1.5]] * k
    grid = [[]]
    for axis in axes:
        grid = [prefix + [v] for prefix in grid for v in axis]
    return grid


def huber_objective(theta, log_x, log_loss):
    """Sum of Huber(log L(x_i) - log loss_i) and its gradient; log_x is (points, K)."""
    k = log_x.shape[1]
    terms = np.column_stack([np.full(len(log_loss), theta[0])]
                            + [theta[1 + j] - theta[1 + k + j] * log_x[:, j] for j in range(k)])
    top = terms.max(axis=1)
    lse = top + np.log(np.exp(terms - top[:, None]).sum(axis=1))
    r = lse - log_loss
    quadratic = np.abs(r) <= HUBER_DELTA
    value = np.where(quadratic, 0.5 * r * r, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA)).sum()
    dr = np.where(quadratic, r, HUBER_DELTA * np.sign(r))
    weights = np.exp(terms - lse[:, None])
    grad = np.empty_like(theta)
    grad[0] = (dr * weights[:, 0]).sum()
    for j in range(k):
        grad[1 + j] = (dr * weights[:, 1 + j]).sum()
        grad[1 + k + j] = -(dr * weights[:, 1 + j] * log_x[:, j]).sum()
    return value, grad


def fit(points, k, starts):
    """The best L-BFGS-B minimum over `starts`: (objective, theta), or None."""
    log_x = np.log(np.array([p[:k] for p in points], dtype=float))
    log_loss = np.log(np.array([p[2] for p in points], dtype=float))
    best = None
    for start in starts:
        with np.errstate(all="ignore"):
            m = minimize(huber_objective, np.array(start), args=(log_x, log_loss), jac=True,
                         method="L-BFGS-B",
                         options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-13})
        if np.isfinite(m.fun) and np.all(np.isfinite(m.x)) and (best is None or m.fun < best[0]):
            best = (float(m.fun), m.x)
    return best


def natural(theta, k):
    """[E, A_1..A_K, alpha_1..alpha_K] from [e, a_1..a_K, alpha_1..alpha_K]."""
    return [float(np.exp(t)) for t in theta[: 1 + k]] + [float(t) for t in theta[1 + k:]]


def law_case(case):
    k = case["law"]
    points = case["points"]
    full = fit(points, k, start_grid(k))
    if full is None:
        return {"fitted": False}
    objective, theta = full
    params = 1 + 2 * k
    boot = Bootstrap([tuple(p[:k]) for p in points])
    determined = len(boot.groups) > params
    grid = start_grid(k)
    stride = len(grid) // 8
    starts = [list(theta)] + grid[stride // 2::stride]
    draws, thin, failed = [], 0, 0
    for r in boot.resamples(case["seed"]) if determined else []:
        if boot.distinct_in(r) <= params:
            thin += 1
            draws.append([np.nan] * params)
            continue
        refit = fit([points[i] for i in r], k, starts)
        if refit is None:
            failed += 1
            draws.append([np.nan] * params)
        else:
            draws.append(natural(refit[1], k))
    intervals = [percentile_interval([d[j] for d in draws]) if determined else [-np.inf, np.inf]
                 for j in range(params)]
    return {"fitted": True, "objective": objective, "params": natural(theta, k),
            "intervals": intervals, "determined": determined, "resampling":
            "seeds" if boot.seeds else "points", "resamples": len(draws), "thin": thin,
            "failed": failed, "draws": draws}


def means(points):
    """(N, mean loss) per distinct N, by increasing N."""
    by_n = {}
    for n, loss in points:
        by_n.setdefault(n, []).append(loss)
    return sorted((n, sum(v) / len(v)) for n, v in by_n.items())


def bracketed_vertex(m):
    """log N of the parabola's vertex where the lowest mean lies strictly inside and below both
    ends, the parabola is convex and its vertex inside the sizes; else None."""
    if len(m) < 3:
        return None
    losses = [v for _, v in m]
    best = int(np.argmin(losses))
    if not (losses[best] < losses[0] and losses[best] < losses[-1]):
        return None
    xs = np.log([n for n, _ in m])
    a, b, _ = np.polyfit(xs, losses, 2)
    x = -b / (2 * a)
    return float(x) if a > 0 and xs[0] <= x <= xs[-1] else None


def isoflop_case(case):
    budgets = sorted({p[0] for p in case["points"]})
    profiles = []
    for index, budget in enumerate(budgets):
        here = [(p[1], p[2]) for p in case["points"] if p[0] == budget]
        boot = Bootstrap([n for n, _ in here])
        draws = []
        for r in boot.resamples(case["seed"] ^ index):
            x = bracketed_vertex(means([here[i] for i in r]))
            draws.append(np.nan if x is None else float(np.exp(x)))
        x = bracketed_vertex(means(here))
        profiles.append({"budget": budget, "means": means(here), "draws": draws,
                         "n_opt": None if x is None else float(np.exp(x)),
                         "interval": None if x is None else percentile_interval(draws)})
    interior = [p for p in profiles if p["n_opt"] is not None]
    trend = None
    if len(interior) >= 2:
        log_c = np.log([p["budget"] for p in interior])
        slope, intercept = np.polyfit(log_c, np.log([p["n_opt"] for p in interior]), 1)
        slopes = []
        for r in range(RESAMPLES):
            y = [p["draws"][r] for p in interior]
            slopes.append(np.nan if any(np.isnan(y)) else float(np.polyfit(log_c, np.log(y), 1)[0]))
        trend = {"slope": float(slope), "intercept": float(intercept),
                 "interval": percentile_interval(slopes), "unbounded": int(np.isnan(slopes).sum())}
    return {"profiles": profiles, "trend": trend}


def finite_or_text(value):
    """JSON has no infinities or NaN: they travel as strings."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [finite_or_text(v) for v in value]
    if isinstance(value, dict):
        return {k: finite_or_text(v) for k, v in value.items()}
    return value


def run_case(case):
    return isoflop_case(case) if case.get("isoflop") else law_case(case)


if __name__ == "__main__":
    cases = json.load(sys.stdin)
    # The cases are independent: one process each, as many at a time as there are cores.
    with multiprocessing.Pool(min(len(cases), os.cpu_count() or 1)) as pool:
        results = pool.map(run_case, cases)
    print(json.dumps(finite_or_text(results)))
