"""Daily demand mean and standard deviation per position, computed once at import.

Method (documented in the README):

1. Each (site, sku) series of the last :data:`HISTORY_DAYS` days is classified
   by the Syntetos-Boylan scheme: ADI (average days between sales) and CV² of
   the non-zero quantities give *smooth*, *erratic*, *intermittent* or *lumpy*.
2. Candidate models from statsforecast: seasonal exponential smoothing with a
   weekly season (``SeasonalExponentialSmoothingOptimized(7)``), ``ADIDA`` and
   ``CrostonSBA``. On a hold-out of the last ``horizon`` days, the model with
   the lowest absolute error of *horizon totals* (what ``mu = m H`` uses)
   within each pattern is chosen for that pattern, then refitted on the full
   history.
3. ``mean_daily`` is the mean of the chosen model's forecast over the horizon.
   ``std_daily = sqrt(mean((y_t - mean_daily)^2))`` over the last 8 weeks: the
   day-to-day spread around the forecast level, which also absorbs level error.

Accuracy is reported on the hold-out as MASE (scaled by the in-sample one-step
naive error, averaged over series) and bias ``(sum f - sum y) / sum y``, for
the chosen models and for the naive forecast (last 28 days' mean).

The spread of demand over a horizon (:func:`horizon_errors`)
--------------------------------------------------------------
``sd sqrt(H)`` assumes days are independent; real demand is autocorrelated
(promotions, weather, trends), so H-day totals vary more than that. The
measured error of H-day totals is the root mean square of ``actual H-day
total - forecast H-day total`` over rolling origins every
:data:`SPREAD_STEP` days of the history, the forecast at each origin being
the mean of the :data:`SPREAD_LOOKBACK` days before it (the flat level
forecast the backtest uses; refitting statsforecast at every origin would cost
a model fit per origin). It is stored for H in :data:`SPREAD_HORIZONS` and
interpolated between them (:func:`spread_at`). With few origins a series'
squared error is shrunk toward its demand pattern's: ``(n e^2 + k r_g b^2) /
(n + k)`` with ``b = sd sqrt(H)``, ``r_g`` the pattern's ratio of squared
error to ``b^2`` and ``k`` = :data:`SHRINK_ORIGINS`. Planning never uses less
than ``sd sqrt(H)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from rebal_core.chunks import row_chunks
from rebal_core.cluster import connect, ray_address
from rebal_core.progress import Progress, quiet
from rebal_core.signals.contract import datetimes, id_codes

HISTORY_DAYS = 365
STD_WINDOW = 56
BACKTEST_MAX_SERIES = 200_000
"""Above this many series the model choice is fixed per pattern (no hold-out fit) to bound time."""
CHUNK_SERIES = 10_000
"""Series fitted at a time (a Ray task's share): their float64 copy (29 MB) comes back from the heap
chunk after chunk; at 50,000 (146 MB) each chunk faulted in fresh memory (a year's fits 15.1 -> 13.2 s)."""
PATTERNS = ("smooth", "erratic", "intermittent", "lumpy")
SPREAD_HORIZONS = (7, 14, 28, 56, 91)
SPREAD_LOOKBACK = 56
SPREAD_STEP = 7
SHRINK_ORIGINS = 8
SPREAD_BLOCK = 20_000
"""Series the whole-matrix steps (pattern, spread) take at once (a spread block's running totals: 20,000 x 366 x 8 B = 59 MB)."""
SPREAD_COLUMNS = [f"err_{h}" for h in SPREAD_HORIZONS]
SEASON_DAYS = 7
DEFAULT_CHOICE = {"smooth": "SeasESOpt", "erratic": "SeasESOpt", "intermittent": "ADIDA", "lumpy": "ADIDA"}


@dataclass
class Accuracy:
    """Hold-out accuracy of a forecast run (see module docs)."""

    horizon_days: int
    series: int
    mase: float | None
    mase_naive: float | None
    bias: float | None
    bias_naive: float | None
    chosen: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, float | None] = field(default_factory=dict)  # see horizon_errors
    pattern_counts: dict[str, int] = field(default_factory=dict)
    by_pattern: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ForecastResult:
    table: pd.DataFrame  # site_id, sku_id, mean_daily, std_daily, method, pattern
    method: str
    accuracy: Accuracy | None


MODEL_NAMES = ("SeasESOpt", "ADIDA", "CrostonSBA")  # the candidates, in the order they are tried


def _models():
    from statsforecast.models import ADIDA, CrostonSBA, SeasonalExponentialSmoothingOptimized

    return {
        "SeasESOpt": SeasonalExponentialSmoothingOptimized(season_length=SEASON_DAYS),
        "ADIDA": ADIDA(),
        "CrostonSBA": CrostonSBA(),
    }


def demand_matrix(
    demand: pd.DataFrame, as_of: dt.date, days: int = HISTORY_DAYS
) -> tuple[pd.DataFrame, np.ndarray, pd.DatetimeIndex]:
    """Dense daily matrix (pairs x days) of the last ``days`` days before ``as_of``; zeros fill gaps.

    Pairs come in the order of the id columns' categories (site, then sku); built from integer
    codes, as a year of a national network is a hundred million rows, in chunks of rows."""
    end = pd.Timestamp(as_of)
    first = demand["date"].min()
    start = max(first, end - pd.Timedelta(days=days)) if pd.notna(first) else end - pd.Timedelta(days=1)
    dates = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
    when = datetimes(demand["date"])
    site = id_codes(demand["site_id"])
    sku = id_codes(demand["sku_id"])
    n_sku = len(sku.cat.categories)
    site_codes, sku_codes = site.cat.codes.to_numpy(), sku.cat.codes.to_numpy()
    lo, hi, one_day = np.datetime64(start), np.datetime64(end), np.timedelta64(1, "D")
    chunks = list(row_chunks(len(when)))

    def rows_of(part: slice) -> tuple[np.ndarray, np.ndarray | slice]:
        """A chunk's pair codes and which of its rows fall within the window (a slice: all)."""
        w = when[part]
        inside = (w >= lo) & (w < hi)
        window = slice(None) if inside.all() else np.flatnonzero(inside)
        return site_codes[part][window].astype(np.int64) * n_sku + sku_codes[part][window], window

    present = np.zeros(len(site.cat.categories) * n_sku, dtype=bool)
    for part in chunks:
        present[rows_of(part)[0]] = True
    codes = np.flatnonzero(present)
    pairs = pd.DataFrame(
        {
            "site_id": _like(demand["site_id"], pd.Categorical.from_codes(codes // n_sku, dtype=site.dtype)),
            "sku_id": _like(demand["sku_id"], pd.Categorical.from_codes(codes % n_sku, dtype=sku.dtype)),
        }
    )
    matrix = np.zeros((len(codes), len(dates)), dtype=np.float32)
    if codes.size == 0:
        return pairs, matrix, dates
    row_of = np.cumsum(present, dtype=np.int64) - 1  # a present pair's row: pairs before it
    del present
    flat, qty = matrix.ravel(), demand["qty"].to_numpy()
    last = -1  # the last cell placed while every cell so far came once, in order (a file sorted by position)
    for part in chunks:
        pair, window = rows_of(part)
        cell = row_of[pair] * len(dates) + (when[part][window] - lo) // one_day
        q = qty[part][window].astype(np.float32)
        if last is not None and len(cell) and cell[0] > last and bool((cell[1:] > cell[:-1]).all()):
            flat[cell] = q  # each cell once and untouched so far: adding to 0 is placing
            last = int(cell[-1])
        else:
            np.add.at(flat, cell, q)  # repeated cells add up, in row order
            last = None if len(cell) else last
    return pairs, matrix, dates


def _like(ids: pd.Series, values: pd.Categorical) -> pd.Series | pd.Categorical:
    """Pair ids in the input's type: categorical stays categorical, text stays text."""
    return values if isinstance(ids.dtype, pd.CategoricalDtype) else np.asarray(values.astype(str), dtype=object)


def classify(matrix: np.ndarray) -> np.ndarray:
    """Syntetos-Boylan pattern per row: ADI cut-off 1.32, CV² cut-off 0.49.

    By blocks of rows: whole-matrix temporaries of a year (a gigabyte each) cost 8 s of page
    faults in a fresh process, where blocks reuse the same memory (0.5 s)."""
    if len(matrix) > SPREAD_BLOCK:
        return np.concatenate([classify(matrix[lo : lo + SPREAD_BLOCK]) for lo in range(0, len(matrix), SPREAD_BLOCK)])
    nonzero = matrix > 0
    count = nonzero.sum(axis=1)
    adi = np.where(count > 0, matrix.shape[1] / np.maximum(count, 1), np.inf)
    sums = matrix.sum(axis=1)
    mean_nz = np.where(count > 0, sums / np.maximum(count, 1), 0)
    sq = (matrix**2).sum(axis=1)
    var_nz = np.where(count > 1, (sq - count * mean_nz**2) / np.maximum(count - 1, 1), 0)
    cv2 = np.where(mean_nz > 0, var_nz / np.maximum(mean_nz, 1e-12) ** 2, 0)
    frequent = adi < 1.32
    steady = cv2 < 0.49
    return np.select(
        [frequent & steady, frequent & ~steady, ~frequent & steady], ["smooth", "erratic", "intermittent"], "lumpy"
    )


def _chunk_means(
    block: np.ndarray, dates: pd.DatetimeIndex, horizon: int, model_names: list[str]
) -> dict[str, np.ndarray]:
    """Mean forecast over ``horizon`` per row of ``block`` for each model.

    No long data frame in and out: ADIDA and the seasonal exponential smoothing run statsforecast's
    own compiled kernels series by series with the per-series set-up done for the whole block
    (:func:`_adida_paths`, :func:`_seasonal_ses_paths`); another model is called through its own
    ``forecast`` per series (what ``StatsForecast.forecast`` does). The mean over the horizon is
    taken as before (a group mean per series), so the figures are statsforecast's to the last bit
    (a unit test holds them to ``StatsForecast.forecast`` on every kind of series). ``dates`` are
    not needed: the models see values only."""
    n = len(block)
    if n == 0:
        return {name: np.zeros(0) for name in model_names}
    values = block.astype(np.float64)
    series = np.repeat(np.arange(n), horizon)
    out = {}
    for name in model_names:
        if name == "ADIDA":
            paths = _adida_paths(values, horizon)
        elif name == "SeasESOpt":
            paths = _seasonal_ses_paths(values, horizon, SEASON_DAYS)
        else:
            fit = _models()[name].forecast
            paths = np.empty((n, horizon))
            for i in range(n):
                paths[i] = fit(y=values[i], h=horizon)["mean"]
        means = pd.Series(paths.ravel()).groupby(series).mean().to_numpy()
        out[name] = np.clip(means, 0, None)
    return out


def _ses_kernels():
    # The compiled kernels alone: statsforecast.models also imports statsmodels and scipy.stats
    # (1.5 s of a fresh process; a year's import needs no other model).
    from statsforecast._lib import ses

    return ses


def _adida_paths(values: np.ndarray, horizon: int) -> np.ndarray:
    """statsforecast's ADIDA per row: sums over chunks of the mean interval between sales, their
    optimised SES forecast (the compiled ``chunk_forecast``), over the chunk length.

    The mean interval is the last sale's day (1-based) over the number of sales: the intervals sum
    to it exactly, so it is the mean statsforecast takes, rounded the same way (half to even). A
    series without a sale forecasts 0."""
    kernels = _ses_kernels()
    sold = values != 0
    count = sold.sum(axis=1)
    last = values.shape[1] - np.argmax(sold[:, ::-1], axis=1)  # 1-based day of the last sale
    level = np.round(last / np.maximum(count, 1)).astype(np.int64)
    forecast = np.zeros(len(values))
    for i in np.flatnonzero(count):
        forecast[i] = kernels.chunk_forecast(values[i], int(level[i])) / level[i]
    return np.repeat(forecast[:, None], horizon, axis=1)


def _seasonal_ses_paths(values: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """statsforecast's ``SeasonalExponentialSmoothingOptimized`` per row: each day of the season
    its own SES, alpha by the compiled golden-section search on [0.01, 0.99], the forecast
    recursion run for all rows at once (the kernel's arithmetic, in the same order)."""
    n_rows, n = values.shape
    if n < season:
        return np.full((n_rows, horizon), np.nan)
    kernels = _ses_kernels()
    level = np.empty((n_rows, season))
    for i in range(season):
        sub = np.ascontiguousarray(values[:, i + n % season :: season])
        alpha = np.array([kernels.golden_section_ses(row, 0.01, 0.99) for row in sub])
        if sub.shape[1] == 1:
            level[:, i] = sub[:, 0]
            continue
        keep = 1.0 - alpha
        fitted = sub[:, 0].copy()
        for j in range(sub.shape[1]):
            fitted = alpha * sub[:, j] + keep * fitted
        level[:, i] = fitted
    reps = -(-horizon // season)
    return np.tile(level, (1, reps))[:, :horizon]


def _forecast_means(
    matrix: np.ndarray,
    dates: pd.DatetimeIndex,
    horizon: int,
    model_names: list[str],
    chunk_series: int = CHUNK_SERIES,
    ray: str | None = None,
    rows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Mean forecast over ``horizon`` for each model, for the rows ``rows`` of ``matrix`` (all by
    default), ``chunk_series`` series a chunk. Every series is fitted on its own, so the chunks are
    independent: with ``ray`` (an address or ``"local"``) they run as Ray tasks, with the same models
    and the same figures."""
    rows = np.arange(len(matrix)) if rows is None else rows
    starts = list(range(0, len(rows), chunk_series))
    if ray and len(starts) > 1:
        cluster = connect(ray)
        task = cluster.remote(num_cpus=1, max_retries=3)(_chunk_means)
        dates_ref = cluster.put(dates)
        parts = cluster.get(
            [task.remote(matrix[rows[s : s + chunk_series]], dates_ref, horizon, model_names) for s in starts]
        )
    else:
        parts = [_chunk_means(matrix[rows[s : s + chunk_series]], dates, horizon, model_names) for s in starts]
    return {name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0) for name in model_names}


def _mase_and_bias(
    actual: np.ndarray, forecast_mean: np.ndarray, scale: np.ndarray
) -> tuple[float | None, float | None]:
    mae = np.abs(actual - forecast_mean[:, None]).mean(axis=1)
    ok = scale > 0
    mase = float(np.mean(mae[ok] / scale[ok])) if ok.any() else None
    total = actual.sum()
    bias = float((forecast_mean.sum() * actual.shape[1] - total) / total) if total > 0 else None
    return mase, bias


def forecast_demand(
    demand: pd.DataFrame,
    as_of: dt.date,
    horizon: int = 28,
    progress: Progress = quiet,
    ray: str | None = None,
    chunk_series: int = CHUNK_SERIES,
) -> ForecastResult:
    """Forecast every position with demand history; see the module docstring for the method.

    ``ray``: a Ray address or ``"local"`` (else REBAL_RAY_ADDRESS, else this process): the chunks of
    ``chunk_series`` series are fitted as Ray tasks; same models, same choice, same figures."""
    ray = ray_address(ray)
    pairs, matrix, dates = demand_matrix(demand, as_of)
    if len(pairs) == 0:
        empty = pd.DataFrame(
            {
                "site_id": pairs.get("site_id"),
                "sku_id": pairs.get("sku_id"),
                "mean_daily": [],
                "std_daily": [],
                "method": [],
                "pattern": [],
            }
        )
        empty = empty.assign(**{c: pd.Series(dtype=float) for c in SPREAD_COLUMNS}, origins=pd.Series(dtype="int64"))
        return ForecastResult(empty, "no demand history", None)
    patterns = classify(matrix)
    names = list(MODEL_NAMES)
    accuracy = None
    choice = dict(DEFAULT_CHOICE)
    can_backtest = matrix.shape[1] >= horizon + 28 and len(matrix) <= BACKTEST_MAX_SERIES
    if can_backtest:
        progress(0.1, f"forecast back-test on {len(pairs):,} series")
        train, test = matrix[:, :-horizon], matrix[:, -horizon:]
        held = _forecast_means(train, dates[:-horizon], horizon, names, chunk_series, ray)
        naive = train[:, -28:].mean(axis=1)
        scale = np.abs(np.diff(train, axis=1)).mean(axis=1)
        by_pattern: dict[str, dict[str, float | None]] = {}
        for pattern in PATTERNS:
            rows = patterns == pattern
            if not rows.any():
                continue
            # Planning uses demand over the horizon (mu = m H), so models are ranked on the error of
            # horizon totals; daily MAE would favour near-zero forecasts for intermittent series.
            totals = test[rows].sum(axis=1)
            errors = {n: float(np.abs(held[n][rows] * horizon - totals).sum()) for n in names}
            choice[pattern] = min(errors, key=errors.get)
            mase, bias = _mase_and_bias(test[rows], held[choice[pattern]][rows], scale[rows])
            mase_n, bias_n = _mase_and_bias(test[rows], naive[rows], scale[rows])
            by_pattern[pattern] = {"mase": mase, "mase_naive": mase_n, "bias": bias, "bias_naive": bias_n}
        chosen_mean = np.select([patterns == p for p in PATTERNS], [held[choice[p]] for p in PATTERNS])
        mase, bias = _mase_and_bias(test, chosen_mean, scale)
        mase_n, bias_n = _mase_and_bias(test, naive, scale)
        accuracy = Accuracy(
            horizon_days=horizon,
            series=len(pairs),
            mase=mase,
            mase_naive=mase_n,
            bias=bias,
            bias_naive=bias_n,
            chosen={p: choice[p] for p in PATTERNS if (patterns == p).any()},
            pattern_counts={p: int((patterns == p).sum()) for p in PATTERNS},
            by_pattern=by_pattern,
        )
    progress(0.6, f"forecasting {len(pairs):,} series")
    # Each model is fitted only on the series whose pattern chose it (each series is fitted on its
    # own, so the figures are those of fitting every series with every model, in half the time).
    mean = np.zeros(len(pairs))
    method = np.empty(len(pairs), dtype=object)
    for name in sorted({choice[p] for p in PATTERNS if (patterns == p).any()}):
        rows = np.flatnonzero(np.isin(patterns, [p for p in PATTERNS if choice[p] == name]))
        mean[rows] = _forecast_means(matrix, dates, horizon, [name], chunk_series, ray, rows)[name]
        method[rows] = name
    # A model that cannot fit a series (a day or two of history) gives NaN: the history's mean instead.
    unfit = ~np.isfinite(mean)
    if unfit.any():
        mean[unfit] = matrix[unfit].mean(axis=1)
        method[unfit] = "history mean"
    recent = matrix[:, -STD_WINDOW:]
    std = np.sqrt(((recent - mean[:, None]) ** 2).mean(axis=1))
    spread = horizon_errors(matrix, std, patterns)
    if accuracy is not None:
        accuracy.calibration = spread.calibration
    table = pairs.assign(mean_daily=np.round(mean, 5), std_daily=np.round(std, 5), method=method, pattern=patterns)
    table = pd.concat([table, spread.table], axis=1)
    label = "statsforecast per pattern: " + ", ".join(f"{p}={choice[p]}" for p in PATTERNS if (patterns == p).any())
    progress(1.0, "forecast done")
    return ForecastResult(table, label, accuracy)


# ----------------------------------------------------------------------------- spread of H-day totals


@dataclass
class Spread:
    table: pd.DataFrame  # err_H per SPREAD_HORIZONS and origins, one row per series (same order as the matrix)
    calibration: dict[str, float | None]


def _running_totals(block: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Cumulative demand per series before each day in ``columns`` (sorted, distinct, 0 to the
    number of days): sums over any span between them by subtraction.

    Only the columns the errors read (every 7th day: a year's 53 of 366) are kept: the days between
    two of them are summed at once (one pass over the block), then those sums are accumulated. The
    same totals as a day-by-day running sum (exactly, for whole units: a year of 850,000 series
    spent 12 s in the running sums and in picking columns out of them)."""
    n, days = block.shape
    bounds = np.r_[0, columns]
    nonempty = np.flatnonzero(np.diff(bounds) > 0)
    spans = np.zeros((n, len(columns)))
    if len(nonempty):
        starts = bounds[nonempty]
        tail = columns[-1] < days  # reduceat's last span runs to the end: stop it at the last column
        summed = np.add.reduceat(block, np.r_[starts, columns[-1]] if tail else starts, axis=1, dtype=np.float64)
        spans[:, nonempty] = summed[:, : len(nonempty)]
    return np.cumsum(spans, axis=1, out=spans)


def horizon_errors(
    matrix: np.ndarray, std_daily: np.ndarray, groups: np.ndarray, horizons: tuple[int, ...] = SPREAD_HORIZONS
) -> Spread:
    """Measured error of H-day totals per series, shrunk toward its group (module doc).

    ``calibration`` (for H = 28, or the longest horizon with origins): the share
    of actual H-day totals inside the central 80 % and 95 % normal intervals
    around the rolling forecast, with ``sigma = sd sqrt(H)`` alone and with the
    measured spread (the larger of the two, as planning uses it).
    """
    n, days = matrix.shape
    std_daily = np.asarray(std_daily, dtype=float)
    groups = np.asarray(groups)
    out = {"origins": np.zeros(n, dtype=np.int64)}
    calibration: dict[str, float | None] = {
        "horizon_days": None,
        "origins": 0,
        "spread_ratio_median": None,
        "inside80_sd": None,
        "inside95_sd": None,
        "inside80_measured": None,
        "inside95_measured": None,
    }
    checked = 28 if 28 in horizons else horizons[-1]
    usable = {}  # horizon -> (lookback, origins)
    for H in horizons:
        lookback = min(SPREAD_LOOKBACK, days - H)
        if lookback < 7:
            out[f"err_{H}"] = np.full(n, np.nan)
        else:
            usable[H] = (lookback, np.arange(days - H, lookback - 1, -SPREAD_STEP)[::-1])  # newest ends on the last day

    read = [np.concatenate([o - lookback, o, o + H]) for H, (lookback, o) in usable.items()]
    columns = np.unique(np.concatenate(read)) if read else np.zeros(0, dtype=np.int64)

    def place(day: np.ndarray) -> slice | np.ndarray:
        """Where days are among the columns: a slice when they are side by side (every 7th day,
        the usual case: a view, not a copy of a block's totals)."""
        at = np.searchsorted(columns, day)
        return slice(int(at[0]), int(at[-1]) + 1) if len(at) and bool((np.diff(at) == 1).all()) else at

    places = {H: (place(o + H), place(o), place(o - lookback)) for H, (lookback, o) in usable.items()}

    def errors(cum: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(actual, forecast, error) of H-day totals at every origin, from a block's running totals."""
        lookback = usable[H][0]
        end, origin, back = places[H]
        actual = cum[:, end] - cum[:, origin]
        forecast = H * (cum[:, origin] - cum[:, back]) / lookback
        return actual, forecast, actual - forecast

    # Blocks of series: the running totals of a block fit in cache-sized memory (a year of
    # 850,000 series at once would be 2.5 GB, allocated and faulted in at every import).
    mse = {H: np.empty(n) for H in usable}
    for lo in range(0, n, SPREAD_BLOCK):
        rows = slice(lo, min(n, lo + SPREAD_BLOCK))
        cum = _running_totals(matrix[rows], columns)
        for H in usable:
            mse[H][rows] = (errors(cum, H)[2] ** 2).mean(axis=1)
    shrunk_at: dict[int, np.ndarray] = {}
    in_group = [groups == g for g in np.unique(groups)]
    for H, (_, origins) in usable.items():
        k = len(origins)
        base = std_daily**2 * H
        shrunk = mse[H].copy()
        for rows in in_group:
            ratio = mse[H][rows].sum() / base[rows].sum() if base[rows].sum() > 0 else 1.0
            shrunk[rows] = (k * mse[H][rows] + SHRINK_ORIGINS * ratio * base[rows]) / (k + SHRINK_ORIGINS)
        out[f"err_{H}"] = np.sqrt(shrunk)
        out["origins"] = np.maximum(out["origins"], k)
        shrunk_at[H] = shrunk
    if checked in usable:
        from scipy.stats import norm

        H, k = checked, len(usable[checked][1])
        base, shrunk = std_daily**2 * H, shrunk_at[checked]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.sqrt(shrunk) / np.sqrt(base)
        ok = np.isfinite(ratio) & (base > 0)
        calibration.update(
            horizon_days=H, origins=int(k), spread_ratio_median=float(np.median(ratio[ok])) if ok.any() else None
        )
        z = {level: float(norm.ppf(0.5 + level / 2)) for level in (0.80, 0.95)}
        inside = {(level, name): 0 for level in z for name in ("sd", "measured")}
        active_cells = 0
        for lo in range(0, n, SPREAD_BLOCK):
            rows = slice(lo, min(n, lo + SPREAD_BLOCK))
            actual, forecast, err = errors(_running_totals(matrix[rows], columns), H)
            active = forecast + actual > 0  # series with no demand at all say nothing about calibration
            active_cells += int(np.count_nonzero(active))
            size = np.abs(err)
            sd_sigma = np.sqrt(base[rows])  # per series: the same at every origin
            measured = np.maximum(sd_sigma, np.sqrt(shrunk[rows]))
            for level in z:
                for name, sigma in (("sd", sd_sigma), ("measured", measured)):
                    inside[level, name] += int(np.count_nonzero((size <= (z[level] * sigma + 1e-9)[:, None]) & active))
        for (level, name), count in inside.items():
            calibration[f"inside{int(level * 100)}_{name}"] = count / active_cells if active_cells else None
    cols = {c: np.round(out.get(c, np.full(n, np.nan)), 5) for c in SPREAD_COLUMNS}
    return Spread(pd.DataFrame({**cols, "origins": out["origins"]}), calibration)


def spread_at(errors: pd.DataFrame, horizon: np.ndarray) -> np.ndarray:
    """Measured error of ``horizon``-day totals per row, interpolated in log-log between SPREAD_HORIZONS.

    Below the shortest horizon it scales by ``sqrt``; beyond the longest it follows
    the last measured slope (between 0.5, independent days, and 1, fully persistent).
    NaN where nothing was measured.
    """
    hs = np.asarray(SPREAD_HORIZONS, dtype=float)
    grid = np.column_stack(
        [errors[c].to_numpy(float) if c in errors else np.full(len(errors), np.nan) for c in SPREAD_COLUMNS]
    )
    H = np.asarray(horizon, dtype=float) * np.ones(len(grid))
    for c in range(1, len(hs)):  # a horizon the history was too short for: from the one below, as if independent
        grid[:, c] = np.where(np.isnan(grid[:, c]), grid[:, c - 1] * np.sqrt(hs[c] / hs[c - 1]), grid[:, c])
    logg = np.log(np.maximum(grid, 1e-12))
    rows = np.arange(len(grid))
    j = np.clip(np.searchsorted(hs, H) - 1, 0, len(hs) - 2)
    w = (np.log(np.clip(H, hs[0], hs[-1])) - np.log(hs[j])) / (np.log(hs[j + 1]) - np.log(hs[j]))
    out = np.exp(logg[rows, j] + w * (logg[rows, j + 1] - logg[rows, j]))
    below = hs[0] > H
    out[below] = (grid[:, 0] * np.sqrt(H / hs[0]))[below]
    slope = np.clip((logg[:, -1] - logg[:, -2]) / (np.log(hs[-1]) - np.log(hs[-2])), 0.5, 1.0)
    above = hs[-1] < H
    out[above] = (grid[:, -1] * (H / hs[-1]) ** slope)[above]
    out = np.where(out < 1e-9, 0.0, out)
    return out


def with_measured_spread(forecast: pd.DataFrame, demand: pd.DataFrame, as_of: dt.date) -> tuple[pd.DataFrame, dict]:
    """A given forecast (forecast.csv) with the measured spread of its positions' history added.

    The error is measured with the product's rolling forecast (module doc), since the
    user's forecasts at past origins are not known; pairs without history get none.
    Returns the table and the calibration (see :func:`horizon_errors`).
    """
    keys = ["site_id", "sku_id"]
    out = forecast.astype({"site_id": str, "sku_id": str}).reset_index(drop=True)
    pairs, matrix, _ = demand_matrix(demand, as_of)
    if len(pairs) == 0:
        return out.assign(**{c: np.nan for c in SPREAD_COLUMNS}, origins=0), {}
    pairs = pairs.astype({"site_id": str, "sku_id": str})
    std = pairs.merge(out[keys + ["std_daily"]], on=keys, how="left")["std_daily"].fillna(0.0).to_numpy(float)
    spread = horizon_errors(matrix, std, classify(matrix))
    measured = pd.concat([pairs.reset_index(drop=True), spread.table], axis=1)
    out = out.drop(columns=[c for c in [*SPREAD_COLUMNS, "origins"] if c in out]).merge(measured, on=keys, how="left")
    return out.fillna({"origins": 0}).astype({"origins": "int64"}), spread.calibration


def calibration_table(calibration: dict) -> pd.DataFrame:
    """Share of actual H-day totals inside the central 80 % and 95 % intervals, by spread used (Data page)."""
    rows = []
    for name, label in (
        ("sd", "sd x sqrt(H): days independent"),
        ("measured", "measured error of H-day totals (planning)"),
    ):
        rows.append(
            {
                "spread": label,
                "inside 80 % interval": calibration.get(f"inside80_{name}"),
                "inside 95 % interval": calibration.get(f"inside95_{name}"),
            }
        )
    return pd.DataFrame(rows)


def calibration_sentence(calibration: dict) -> str:
    """The calibration in one sentence: how far ``sd sqrt(H)`` understates the spread."""
    ratio = calibration.get("spread_ratio_median")
    text = f"Actual {calibration['horizon_days']}-day totals against the rolling forecast: a well-calibrated spread holds 80 % and 95 % of them inside its intervals."
    if ratio:
        text += (
            f" The measured spread is {ratio:.1f}x what independent days imply (median series), and planning uses it."
        )
    return text
