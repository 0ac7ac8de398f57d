"""Synthetic nerve-cuff dataset: the embedded default when no RAT recordings are given.

Why a physical model: the conversion losses this project measures only show on a task the ANN
does not solve perfectly, on inputs shaped like the lab's (sparse, signed, mostly near zero).
So the generator simulates compound action potentials (CAPs) seen by a 56-contact cuff, and its
noise level is calibrated so the conversion-friendly ESCAPE-NET lands near the real task's
72.7-73.8 % (see "Calibration").

Cuff and recording (fixed). 7 rings x 8 contacts around a rat-sciatic-sized nerve (radius
0.65 mm; contacts on a 0.70 mm cuff wall, contact `a` at angle a * 45 deg), rings 2 mm apart,
ring 0 distal. Channel index = ring * 8 + angle, the lab's channel-major 56 x 100 layout.
100 samples at 30 kHz (3.33 ms).

Anatomy (fixed; the seed never changes it). Class k drives fascicle k; each has a position,
radius, size and a fibre mix over three groups:

    class                  fascicle   angle  centre  radius  size  fibre mix
                                      (deg)   (mm)    (mm)         A-alpha/A-beta/A-delta
    0 dorsiflexion         peroneal     90     0.36    0.22   1.0   0.55 / 0.35 / 0.10
    1 plantarflexion       tibial      170     0.28    0.30   1.3   0.45 / 0.40 / 0.15
    2 pricking (cutaneous) sural       280     0.48    0.12   0.6   0.05 / 0.45 / 0.50

    group      velocity (m/s)  AP width (ms)  unit amplitude (uV)
    A-alpha    70-120          0.05           9.0
    A-beta/II  30-80           0.07           5.4
    A-delta    10-30           0.12           2.7

Physics per trial. Each group contributes FIBRES_PER_GROUP fibres with velocities drawn from its
range; a fibre's extracellular action potential is a triphasic wave (negative second derivative
of a Gaussian plus a small first-derivative share, main phase negative) that reaches ring r at
onset + r * 2 mm / velocity, so volleys slant across the rings (A-alpha crosses the 12 mm cuff
in 0.10-0.17 ms, 3-5 samples; A-delta in 0.4-1.2 ms, 12-36 samples) and disperse with distance.
Its amplitude on a contact falls off as (0.35 mm / distance) ** 1.5 from the recruited fibres'
centroid, which lies anywhere inside the fascicle (varies by trial): deep fascicles are weaker
and broader, and neighbouring fascicles overlap on the contacts. Trial-to-trial: the driven
amplitude is log-normal (sigma 0.7), each group's recruitment log-normal (sigma 0.3), the onset
jitters by 0.05 ms around 0.6 ms, and each other fascicle is co-recruited with probability 0.5
at a median 0.5 x the driven amplitude (log-normal ratio, sigma 0.4; louder than the driven one
by its amplitude draw on ~4 % of trials), with its own onset 0.3 ms before to 0.6 ms after. No label noise.

Noise. `noise` is the total additive RMS in microvolts: 60 % of the variance white, 25 % 1/f
drift (1-10 cycles per window), 15 % common-mode 50 Hz mains (a slow ramp over 3.33 ms, with a
per-angle lead-wire coupling). x = microvolts / FULL_SCALE_UV (90 uV, fixed, so x does not
depend on n), clipped to [-1, 1].

Determinism. Trial i of (seed, stream) comes from its own generator, so it is the same whatever
n is; labels come in blocks of three that permute the classes (balanced). default_split draws
training and test sets from two independent streams of the same seed.

Calibration. DEFAULT_NOISE is chosen so that the conversion-friendly ESCAPE-NET trained with the
real recipe lands near the real task's accuracy, not at 100 %: conversion losses stay visible.
docs/data.md has the calibration table and the input statistics.
"""
from dataclasses import dataclass

import numpy as np

from pipeline import UserError

# --- cuff geometry and recording (fixed) -------------------------------------------------------
RINGS = 7                      # rings along the nerve, ring 0 distal (afferent volleys reach it first)
ANGLES = 8                     # contacts per ring, 45 degrees apart
CHANNELS = RINGS * ANGLES      # channel index = ring * ANGLES + angle (channel-major, as the lab's 56 x 100)
SAMPLES = 100                  # time samples per signature
FS_HZ = 30_000.0               # sampling rate: 100 samples = 3.33 ms
RING_SPACING_MM = 2.0          # centre-to-centre distance of neighbouring rings
NERVE_RADIUS_MM = 0.65         # rat sciatic nerve, ~1.3 mm across
CONTACT_RADIUS_MM = 0.70       # contacts sit on the cuff wall, a thin saline layer outside the nerve
FALLOFF_REF_MM = 0.35          # distance at which a fascicle's spatial gain is 1
FALLOFF_EXPONENT = 1.5         # gain = (FALLOFF_REF_MM / distance) ** FALLOFF_EXPONENT
FULL_SCALE_UV = 90.0           # fixed input scale: x = microvolts / FULL_SCALE_UV, clipped to [-1, 1]


@dataclass(frozen=True)
class FibreGroup:
    """A class of myelinated fibres: conduction-velocity range and single-fibre waveform."""
    name: str
    velocity_m_s: tuple[float, float]
    width_ms: float            # Gaussian width of the extracellular action potential
    unit_uv: float             # peak of a fully recruited group of a unit-size fascicle at unit gain


@dataclass(frozen=True)
class Fascicle:
    """One fascicle: where it lies in the nerve cross-section and which fibres a stimulus recruits."""
    name: str
    angle_deg: float           # angular position of its centre (contact `a` sits at a * 45 degrees)
    centre_mm: float           # distance of its centre from the nerve axis (small = deep)
    radius_mm: float           # its own radius: where in it the recruited fibres lie varies by trial
    size: float                # relative number of fibres
    mix: tuple[float, float, float]   # relative recruitment of the FIBRE_GROUPS (A-alpha, A-beta, A-delta)


FIBRE_GROUPS = (
    FibreGroup("A-alpha", (70.0, 120.0), 0.050, 9.0),
    FibreGroup("A-beta/II", (30.0, 80.0), 0.070, 5.4),
    FibreGroup("A-delta", (10.0, 30.0), 0.120, 2.7),
)

# Class k drives FASCICLES[k] (CLASS_NAMES[k]); the sural branch is cutaneous, so slow fibres.
FASCICLES = (
    Fascicle("peroneal", 90.0, 0.36, 0.22, 1.0, (0.55, 0.35, 0.10)),
    Fascicle("tibial", 170.0, 0.28, 0.30, 1.3, (0.45, 0.40, 0.15)),
    Fascicle("sural", 280.0, 0.48, 0.12, 0.6, (0.05, 0.45, 0.50)),
)
CLASS_NAMES = ("dorsiflexion", "plantarflexion", "pricking")

# --- per-trial variability -------------------------------------------------------------------
FIBRES_PER_GROUP = 5           # velocity samples per group and trial: temporal dispersion along the cuff
ONSET_MS = 0.6                 # volley reaches ring 0 here (the signature's alignment point)
COACTIVATION_ONSET_MS = (-0.3, 0.6)  # other fascicles fire this much before/after ONSET_MS
SOURCE_SPREAD = 1.0            # recruited-fibre centroid: uniform in this fraction of the fascicle's radius
LATENCY_JITTER_MS = 0.05       # std of the onset around ONSET_MS
AMPLITUDE_SPREAD = 0.7         # log-normal sigma of the driven fascicle's overall amplitude
RECRUITMENT_SPREAD = 0.3       # log-normal sigma of each group's recruitment around the fascicle's mix
COACTIVATION_PROB = 0.5        # chance that each other fascicle fires within the same window
COACTIVATION_LEVEL = 0.5       # its median amplitude relative to the driven fascicle's, same trial
COACTIVATION_SPREAD = 0.4      # log-normal sigma of that ratio
WAVEFORM_ASYMMETRY = 0.3       # first-derivative share: makes the triphasic shape asymmetric

# --- noise ----------------------------------------------------------------------------------
NOISE_SHARES = {"white": 0.60, "drift": 0.25, "hum": 0.15}   # variance shares of the total noise
DRIFT_BINS = 10                # 1/f drift spans 1..10 cycles per window (300 Hz - 3 kHz)
HUM_HZ = 50.0
DEFAULT_NOISE = 3.5            # total additive noise RMS in microvolts (calibrated, see docstring)
DEFAULT_TRAIN = 2400
DEFAULT_TEST = 1000

_TRAIN_STREAM, _TEST_STREAM, VALIDATION_STREAM = 1, 2, 3
_T_MS = np.arange(SAMPLES) / FS_HZ * 1e3
_RING_Z_MM = np.arange(RINGS) * RING_SPACING_MM
_CONTACT_DEG = np.arange(ANGLES) * 360.0 / ANGLES


def spatial_gain(x_mm, y_mm):
    """(..., ANGLES) amplitude factor of a source at (x, y) in the cross-section on each contact.

    Inverse-power fall-off with the source-contact distance: a deep source is farther from every
    contact, so it is weaker and its angular profile flatter.
    """
    theta = np.deg2rad(_CONTACT_DEG)
    dx = CONTACT_RADIUS_MM * np.cos(theta) - np.asarray(x_mm)[..., None]
    dy = CONTACT_RADIUS_MM * np.sin(theta) - np.asarray(y_mm)[..., None]
    return (FALLOFF_REF_MM / np.hypot(dx, dy)) ** FALLOFF_EXPONENT


def fascicle_centres():
    """(fascicles, 2) centre coordinates in mm (x towards contact angle 0)."""
    phi = np.deg2rad([f.angle_deg for f in FASCICLES])
    r = np.array([f.centre_mm for f in FASCICLES])
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)


_CENTRES = fascicle_centres()
_RADII = np.array([f.radius_mm for f in FASCICLES])
_HUM_COUPLING = 1.0 + 0.2 * np.cos(np.deg2rad(_CONTACT_DEG - 30.0))   # lead-wire pickup, per angle
_MIX = np.array([[f.size * m * g.unit_uv for m, g in zip(f.mix, FIBRE_GROUPS)] for f in FASCICLES])
_V_LO = np.array([g.velocity_m_s[0] for g in FIBRE_GROUPS])
_V_HI = np.array([g.velocity_m_s[1] for g in FIBRE_GROUPS])
_WIDTH = np.array([g.width_ms for g in FIBRE_GROUPS])


def waveform(u):
    """Extracellular single-fibre action potential at normalised time u = (t - arrival) / width.

    Negative second derivative of a Gaussian (triphasic, main phase negative, peak -1) plus a
    small first-derivative share that makes the leading and trailing phases unequal.
    """
    g = np.exp(-0.5 * u * u)
    return -(1.0 - u * u) * g + WAVEFORM_ASYMMETRY * u * g


def arrival_ms(onset_ms, velocity_m_s):
    """Arrival time at every ring: onset at ring 0 plus ring distance / conduction velocity."""
    onset = np.asarray(onset_ms, dtype=np.float64)[..., None]
    return onset + _RING_Z_MM / np.asarray(velocity_m_s, dtype=np.float64)[..., None]


@dataclass
class _Trials:
    """Per-trial random draws (arrays over trials), the only thing the seed changes."""
    labels: np.ndarray         # (n,)
    weights: np.ndarray        # (n, fascicles, groups) microvolts at unit gain
    sources: np.ndarray        # (n, fascicles, 2) centroid of the recruited fibres, mm
    onsets: np.ndarray         # (n, fascicles) ms
    velocities: np.ndarray     # (n, fascicles, groups, fibres) m/s
    white: np.ndarray          # (n, channels, samples) unit normal
    drift: np.ndarray          # (n, channels, 2 * DRIFT_BINS) unit normal Fourier coefficients
    hum_phase: np.ndarray      # (n,) radians


def _labels(n, seed, stream):
    """Balanced labels: each block of three consecutive trials is a permutation of the classes."""
    perms = [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, 1, b))).permutation(3)
             for b in range(-(-n // 3))]
    return np.concatenate(perms + [np.zeros(0, int)])[:n].astype(np.int64)


def _draw(n, seed, stream):
    """Draw every trial from its own generator, so trial i is the same whatever n is."""
    nf, ng = len(FASCICLES), len(FIBRE_GROUPS)
    labels = _labels(n, seed, stream)
    t = _Trials(labels, np.zeros((n, nf, ng)), np.zeros((n, nf, 2)), np.zeros((n, nf)),
                np.zeros((n, nf, ng, FIBRES_PER_GROUP)),
                np.zeros((n, CHANNELS, SAMPLES), np.float32), np.zeros((n, CHANNELS, 2 * DRIFT_BINS)),
                np.zeros(n))
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, 0, i)))
        # neighbouring fascicles are co-recruited, on most trials weaker than the driven one
        driven = rng.lognormal(0.0, AMPLITUDE_SPREAD)
        amp = driven * COACTIVATION_LEVEL * rng.lognormal(0.0, COACTIVATION_SPREAD, nf)
        amp[rng.random(nf) >= COACTIVATION_PROB] = 0.0
        amp[labels[i]] = driven
        t.weights[i] = amp[:, None] * rng.lognormal(0.0, RECRUITMENT_SPREAD, (nf, ng)) * _MIX
        # the recruited fibres' centroid: uniform over the fascicle's cross-section (x SOURCE_SPREAD)
        r = _RADII * SOURCE_SPREAD * np.sqrt(rng.random(nf))
        phi = rng.uniform(0.0, 2 * np.pi, nf)
        t.sources[i] = _CENTRES + np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1)
        t.onsets[i] = ONSET_MS + rng.uniform(*COACTIVATION_ONSET_MS, nf)
        t.onsets[i, labels[i]] = ONSET_MS + LATENCY_JITTER_MS * rng.standard_normal()
        t.velocities[i] = rng.uniform(_V_LO[:, None], _V_HI[:, None], (nf, ng, FIBRES_PER_GROUP))
        t.white[i] = rng.standard_normal((CHANNELS, SAMPLES), dtype=np.float32)
        t.drift[i] = rng.standard_normal((CHANNELS, 2 * DRIFT_BINS))
        t.hum_phase[i] = rng.uniform(0.0, 2 * np.pi)
    return t


def signal_uv(weights, sources, onsets, velocities):
    """Noise-free cuff signal (n, CHANNELS, SAMPLES) in microvolts: CAPs summed over fibres.

    weights (n, fascicles, groups) uV at unit gain, sources (n, fascicles, 2) mm, onsets
    (n, fascicles) ms at ring 0, velocities (n, fascicles, groups, fibres) m/s. Each fibre's
    arrival at each ring is an event; its waveform is evaluated only on the samples within 5
    widths of the arrival and summed per (trial, fascicle, ring) with bincount.
    """
    n, nf = onsets.shape
    rows = np.arange(n * nf * RINGS).reshape(n, nf, 1, RINGS)          # (trial, fascicle, ring) row
    cap = np.zeros(n * nf * RINGS * SAMPLES)
    for g, group in enumerate(FIBRE_GROUPS):
        arrive = arrival_ms(onsets[:, :, None], velocities[:, :, g])               # n f k r
        weight = np.broadcast_to(weights[:, :, g, None, None] / velocities.shape[-1], arrive.shape)
        live = weight > 0
        arrive, weight = arrive[live], weight[live]
        row = np.broadcast_to(rows, live.shape)[live]
        half = int(np.ceil(5 * group.width_ms * FS_HZ * 1e-3))
        idx = np.rint(arrive * FS_HZ * 1e-3).astype(np.int64)[:, None] + np.arange(-half, half + 1)
        u = ((idx * (1e3 / FS_HZ) - arrive[:, None]) / group.width_ms).astype(np.float32)
        inside = (idx >= 0) & (idx < SAMPLES)
        cap += np.bincount((row[:, None] * SAMPLES + idx)[inside], (weight[:, None] * waveform(u))[inside],
                           minlength=cap.size)
    cap = cap.reshape(n, nf, RINGS, SAMPLES)
    gain = spatial_gain(sources[..., 0], sources[..., 1])
    return np.einsum("nfrt,nfa->nrat", cap, gain).reshape(n, CHANNELS, SAMPLES)


def _drift_basis():
    """(2 * DRIFT_BINS, SAMPLES) cos/sin rows with 1/f power, scaled to unit total RMS."""
    k = np.arange(1, DRIFT_BINS + 1)[:, None]
    phase = 2 * np.pi * k * np.arange(SAMPLES)[None, :] / SAMPLES
    amp = 1.0 / np.sqrt(k)
    basis = np.concatenate([amp * np.cos(phase), amp * np.sin(phase)])
    return basis / np.sqrt(np.sum(amp ** 2))     # a cos/sin pair with unit coefficients has mean square amp^2


_DRIFT = _drift_basis()


def _noise_uv(t, noise):
    """White + 1/f drift + common-mode mains hum, total RMS `noise` microvolts."""
    shares = NOISE_SHARES
    drift = (t.drift @ _DRIFT).astype(np.float32)
    hum = np.sin(2 * np.pi * HUM_HZ * _T_MS[None, :] * 1e-3 + t.hum_phase[:, None]) * np.sqrt(2.0)
    coupling = np.tile(_HUM_COUPLING / np.sqrt(np.mean(_HUM_COUPLING ** 2)), RINGS)
    hum = (coupling[None, :, None] * hum[:, None, :]).astype(np.float32)
    w = {k: np.float32(noise * np.sqrt(v)) for k, v in shares.items()}
    return w["white"] * t.white + w["drift"] * drift + w["hum"] * hum


def generate(n, seed, noise=DEFAULT_NOISE, stream=0):
    """Return (x, y): x float32 (n, 56, 100, 1) in [-1, 1], y int64 class labels 0..2.

    `noise` is the additive noise RMS in microvolts; `stream` picks an independent trial sequence
    under the same seed (default_split uses one for training, another for testing).
    """
    if int(n) != n or n < 0:
        raise UserError(f"synthetic data: n must be a non-negative integer, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise UserError(f"synthetic data: noise must be a finite RMS >= 0 microvolts, got {noise!r}")
    t = _draw(int(n), seed, stream)
    uv = signal_uv(t.weights, t.sources, t.onsets, t.velocities) + _noise_uv(t, float(noise))
    x = np.clip(uv / FULL_SCALE_UV, -1.0, 1.0).astype(np.float32)
    return x[..., None], t.labels


def default_split(seed=0):
    """The embedded default dataset: (x_train, y_train, x_test, y_test) from independent streams."""
    x_train, y_train = generate(DEFAULT_TRAIN, seed, stream=_TRAIN_STREAM)
    x_test, y_test = generate(DEFAULT_TEST, seed, stream=_TEST_STREAM)
    return x_train, y_train, x_test, y_test


def input_stats(x):
    """Mean |x| and the share of near-silent pixels: they set the SNN's input spike budget."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    return {"mean_abs": float(a.mean()), "frac_below_0_05": float((a < 0.05).mean())}
