"""The physiology of the phantom heart: beat times and the contraction waveform (pure numpy).

The ventricle follows a contraction variable c(t) in [0, 1]: c = 0 at end-diastole (ED, the
largest ventricle) and c = 1 at end-systole (ES, the smallest). Each beat k runs from its ED
at ``ed_times_s[k]`` to the next ED and has its own duration. Within a beat:

- ejection (ED -> ES, ``systole_s[k]``): c rises 0 -> 1 as a half cosine;
- early rapid filling (``early_fill_s[k]``): c falls from 1 to the diastasis level
  ``kick_fraction[k]``;
- diastasis: c stays at that level (long during pauses);
- atrial kick (``kick_s[k]``, ending exactly at the next ED): c falls to 0.

c is strictly above 0 except at ED instants and strictly below 1 except at ES instants. The
ventricle's full major and minor axes scale as ``1 - a_major * c`` and ``1 - a_minor * c``,
both monotone in c, so the prolate volume pi/6 * minor^2 * major is maximal exactly at each
ED and minimal exactly at each ES: the truth times are the law's continuous times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeartLaw:
    """Beat-by-beat contraction law; beat k spans ``ed_times_s[k]`` to ``ed_times_s[k + 1]``.

    All arrays except ``ed_times_s`` have one value per beat (K beats, K + 1 ED times).
    Times in s; fractions in [0, 1].
    """

    ed_times_s: np.ndarray  # (K + 1,) ED instants, s; the first <= 0, the last >= duration
    systole_s: np.ndarray  # (K,) ED -> ES ejection duration, s
    early_fill_s: np.ndarray  # (K,) rapid-filling duration after ES, s
    kick_s: np.ndarray  # (K,) atrial-kick duration ending at the next ED, s
    kick_fraction: np.ndarray  # (K,) share of the stroke volume refilled by the atrial kick
    ef: np.ndarray  # (K,) ejection fraction of the beat, 0..1
    major_shortening: np.ndarray  # (K,) a_major: major axis at ES = (1 - a_major) * at ED
    minor_shortening: np.ndarray  # (K,) a_minor

    @property
    def n_beats(self) -> int:
        return len(self.systole_s)

    @property
    def es_times_s(self) -> np.ndarray:
        """(K,) end-systolic instants, s."""
        return self.ed_times_s[:-1] + self.systole_s

    @property
    def rr_s(self) -> np.ndarray:
        """(K,) beat durations (ED to next ED), s."""
        return np.diff(self.ed_times_s)

    def beat_index(self, t_s) -> np.ndarray:
        """Index of the beat that contains each time (clipped to the law's span)."""
        t = np.asarray(t_s, dtype=float)
        k = np.searchsorted(self.ed_times_s, t, side="right") - 1
        return np.clip(k, 0, self.n_beats - 1)

    def contraction(self, t_s) -> np.ndarray:
        """Ventricular contraction c(t) in [0, 1] at times `t_s` (s), same shape."""
        t = np.asarray(t_s, dtype=float)
        k = self.beat_index(t)
        tau = np.clip(t - self.ed_times_s[k], 0.0, None)
        period = self.rr_s[k]
        tau = np.minimum(tau, period)
        ts = self.systole_s[k]
        kf = self.kick_fraction[k]
        v = tau - ts  # time since ES
        diastole = period - ts
        early = _half_cosine(v / self.early_fill_s[k])
        kick = _half_cosine((v - (diastole - self.kick_s[k])) / self.kick_s[k])
        filling = 1.0 - (1.0 - kf) * early - kf * kick
        return np.where(tau < ts, _half_cosine(tau / ts), filling)

    def atrial_contraction(self, t_s) -> np.ndarray:
        """Atrial contraction in [0, 1] (1 = smallest atrium, at each ventricular ED).

        The atrium shrinks during the atrial kick and refills during ventricular systole:
        out of phase with the ventricle.
        """
        t = np.asarray(t_s, dtype=float)
        k = self.beat_index(t)
        tau = np.clip(t - self.ed_times_s[k], 0.0, self.rr_s[k])
        ts = self.systole_s[k]
        v = tau - ts
        diastole = self.rr_s[k] - ts
        kick = _half_cosine((v - (diastole - self.kick_s[k])) / self.kick_s[k])
        return np.where(tau < ts, 1.0 - _half_cosine(tau / ts), kick)

    def axis_scales(self, t_s) -> tuple[np.ndarray, np.ndarray]:
        """(s_major, s_minor): axis lengths relative to end-diastole at times `t_s`."""
        c = self.contraction(t_s)
        k = self.beat_index(t_s)
        return 1.0 - self.major_shortening[k] * c, 1.0 - self.minor_shortening[k] * c


def _half_cosine(x):
    """Smooth step from 0 (x <= 0) to 1 (x >= 1) with zero slope at both ends."""
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def shortenings_for_ef(ef, major_to_minor=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Axis shortenings (a_major, a_minor) that give the ejection fraction(s) `ef` (0..1).

    Solves ``(1 - a)^2 (1 - r a) = 1 - ef`` for the minor shortening a, with the major
    shortening r * a (r = `major_to_minor`, scalar or per beat), by bisection.
    """
    ef = np.asarray(ef, dtype=float)
    if np.any((ef <= 0) | (ef >= 1)):
        raise ValueError("ejection fraction must be in (0, 1)")
    r = np.asarray(major_to_minor, dtype=float)
    if np.any(r <= 0):
        raise ValueError("major_to_minor must be > 0")
    ef, r = np.broadcast_arrays(ef, r)
    lo = np.zeros_like(ef)
    hi = np.minimum(1.0, 1.0 / r)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        ratio = (1 - mid) ** 2 * (1 - r * mid)
        too_small = ratio > 1 - ef  # volume ratio still too large: shorten more
        lo = np.where(too_small, mid, lo)
        hi = np.where(too_small, hi, mid)
    a_minor = 0.5 * (lo + hi)
    return r * a_minor, a_minor


def beat_intervals(
    duration_s: float,
    hr_bpm: float,
    rng: np.random.Generator,
    *,
    hrv_cv: float = 0.0,
    hrv_corr: float = 0.5,
    hr_drift: float = 0.0,
    p_arrhythmia: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """ED times covering [0, duration_s] and the nominal period of each beat.

    Parameters
    ----------
    duration_s : float
        Span to cover, s; the first ED is at a random phase <= 0, the last >= duration_s.
    hr_bpm : float
        Mean heart rate, beats per minute.
    rng : numpy.random.Generator
    hrv_cv : float
        Beat-to-beat coefficient of variation of the intervals (AR(1), lag-1 correlation
        `hrv_corr`). 0 gives a fixed rate: every interval is exactly 60 / hr_bpm.
    hr_drift : float
        Relative amplitude of a slow sinusoidal drift of the rate over the video.
    p_arrhythmia : float
        Per-beat probability of an arrhythmic event: a dropped beat (interval x2), a pause
        (x1.5-3) or a premature beat (x0.55-0.75, then a compensatory interval).

    Returns
    -------
    ed_times_s : (K + 1,) ndarray
    nominal_s : (K,) ndarray
        The undisturbed period around each beat, s (scales systole and filling durations).
    """
    if hr_bpm <= 0 or duration_s <= 0:
        raise ValueError("hr_bpm and duration_s must be > 0")
    period = 60.0 / hr_bpm
    drift_period = rng.uniform(20.0, 60.0)
    drift_phase = rng.uniform(0, 2 * np.pi)
    times = [-rng.uniform(0.0, period)]
    nominal = []
    x = 0.0
    pending = 0.0  # compensatory time owed after a premature beat
    while times[-1] < duration_s:
        t = times[-1]
        base = period * (1.0 + hr_drift * np.sin(2 * np.pi * t / drift_period + drift_phase))
        if hrv_cv > 0:
            x = hrv_corr * x + np.sqrt(1 - hrv_corr**2) * hrv_cv * rng.standard_normal()
        interval = base * np.exp(x)
        if pending > 0:
            interval += pending
            pending = 0.0
        elif p_arrhythmia > 0 and rng.random() < p_arrhythmia:
            kind = rng.integers(3)
            if kind == 0:
                interval *= 2.0
            elif kind == 1:
                interval *= rng.uniform(1.5, 3.0)
            else:
                factor = rng.uniform(0.55, 0.75)
                pending = (1.0 - factor) * interval
                interval *= factor
        nominal.append(base)
        times.append(t + interval)
    return np.asarray(times), np.asarray(nominal)


def make_law(
    ed_times_s,
    nominal_s,
    *,
    ef,
    major_to_minor: float = 1.0,
    systole_fraction: float = 0.35,
    early_fill_fraction: float = 0.3,
    kick_duration_fraction: float = 0.15,
    kick_fraction: float = 0.2,
) -> HeartLaw:
    """A HeartLaw from ED times and per-beat EF (scalar or (K,)).

    Durations are fractions of the beat's period, but never longer than those of 1.25
    nominal periods (a pause lengthens diastasis, not systole). Fractions must leave room:
    systole + early fill + kick <= 1.
    """
    ed = np.asarray(ed_times_s, dtype=float)
    rr = np.diff(ed)
    if rr.size == 0 or np.any(rr <= 0):
        raise ValueError("ED times must be increasing, at least two")
    if systole_fraction + max(early_fill_fraction, kick_duration_fraction) > 0.95:
        raise ValueError("systole + filling fractions leave no diastole")
    ref = np.minimum(rr, 1.25 * np.broadcast_to(np.asarray(nominal_s, dtype=float), rr.shape))
    ts = systole_fraction * ref
    n = len(rr)
    ef_k = np.broadcast_to(np.asarray(ef, dtype=float), (n,)).copy()
    a_major, a_minor = shortenings_for_ef(ef_k, major_to_minor)
    return HeartLaw(
        ed_times_s=ed,
        systole_s=ts,
        early_fill_s=early_fill_fraction * ref,
        kick_s=kick_duration_fraction * ref,
        kick_fraction=np.full(n, float(kick_fraction)),
        ef=ef_k,
        major_shortening=a_major,
        minor_shortening=a_minor,
    )
