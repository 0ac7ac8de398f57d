"""Input coding: the engine's stateless Poisson draws, the deterministic rate (IF) and delta
(level-crossing) encoders, and SNN Toolbox INI's draws replayed.

Every coding is a pure function of the input, the step and (Poisson only) the batch key, so the
energy model can replay the engine's input events position by position (`replay_input`) and count
conv1's accumulates exactly.
"""
import numpy as np
import tensorflow as tf


def batch_key(seed, batch):
    """The stateless RNG key of one batch: Poisson draws and dropout masks derive from it."""
    return tf.constant([int(seed), int(batch)], tf.int64)


def sample_keys(seed, draw, sample_ids):
    """One stateless RNG key per sample, (n, 2): a sample's draws then depend on its own index
    (in the whole training set) and the draw (an epoch), not on the batch it shares or on the
    replica or worker that computes it (STDB on several devices draws what one device draws)."""
    ids = np.asarray(sample_ids, np.int64)
    return tf.constant(np.stack([np.full(len(ids), int(seed), np.int64), int(draw) * 2 ** 32 + ids], axis=1))


def stateless_uniform(shape, key, salt):
    """Uniform draws of ``shape`` (batch first) from ``key`` folded with ``salt`` (a step, a layer).

    ``key``: one key for the whole batch, (2,), or one per sample, (batch, 2) (`sample_keys`),
    each sample then drawing its own ``shape[1:]``.
    """
    if key.shape.rank == 2:
        return tf.map_fn(lambda k: tf.random.stateless_uniform(shape[1:], tf.random.experimental.stateless_fold_in(
            k, salt)), key, fn_output_signature=tf.float32)
    return tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(key, salt))


def poisson_spikes(x, key, t, rule="signed"):
    """Poisson input spikes for step ``t``; stateless, so a key and a step always give the same draw
    (``key``: per batch or per sample, `stateless_uniform`).

    ``"signed"``: a spike with probability |x| and the sign of x (Rathi et al.'s
    ``PoissonGenerator``). ``"toolbox"``: SNN Toolbox INI's ``get_poisson_frame_batch`` with
    ``input_rate = 1000`` and ``dt = 1``: a spike where ``u * max(x) <= |x|`` (max over the whole
    batch), of amplitude ``max(x) * sign(x)``; the toolbox draws ``u`` from NumPy's global
    generator, so the two agree in distribution, not draw by draw.
    """
    u = stateless_uniform(tf.shape(x), key, t)
    if rule == "signed":
        return tf.cast(u <= tf.abs(x), tf.float32) * tf.sign(x)
    peak = tf.reduce_max(x)
    return tf.cast(u * peak <= tf.abs(x), tf.float32) * (peak * tf.sign(x))


RATE_V0 = 0.5   # the rate encoder's initial membrane, in units of its threshold: counts round, not floor


def rate_spikes(x, t, gain):
    """Input events of the deterministic rate encoder at step ``t`` (0-based), amplitude ``sign(x) / gain``.

    One integrate-and-fire neuron per input value, threshold 1, reset by subtraction, v(0) = 1/2,
    input ``r = min(gain * |x|, 1)`` per step (at most one spike a step): it has fired
    ``floor(k * r + 1/2)`` times after k steps, the rate ``r`` rounded, with no Poisson noise.
    Each event stands for ``1 / gain`` of input, so the first layer receives ``|x|`` per step on
    average whatever the gain; a larger gain sends more, finer events (a value with
    ``gain * |x| >= 1`` saturates at one event a step). Closed form in float64, so any step is
    computed alone and the energy model's replay gives the very same events.
    """
    x = tf.cast(x, tf.float64)
    rate = tf.minimum(tf.abs(x) * float(gain), 1.0)
    step = tf.cast(t, tf.float64)
    fired = tf.floor((step + 1.0) * rate + RATE_V0) - tf.floor(step * rate + RATE_V0)
    return tf.cast(fired * tf.sign(x) / float(gain), tf.float32)


def delta_levels(x, delta):
    """Level crossings of the delta encoder per input value: ``floor(|x| / delta)``, float64.

    The encoder runs over the simulation steps, on the value the network is shown: it jumps from 0
    to x at the first step and then holds, so every crossing of a level ``k * delta`` happens
    at step 1 and none later; the events (``floor(|x| / delta)`` of sign ``sign(x)`` per value)
    update conv1's synaptic current once, which then holds (a current-based synapse without decay,
    as the analog coding's constant current), so the network integrates the quantised input
    ``sign(x) * delta * floor(|x| / delta)`` every step and the input costs its events once per
    inference, not once per step. Why not over the recording's own time axis (56 channels x 100
    samples, where neuromorphic front ends put it): there the events code the signal's changes,
    ``total variation / delta`` of them (more than ``sum |x| / delta`` when white noise dominates),
    and ESCAPE-NET, which sees the whole 100-sample window as one image, would need the level at
    every (channel, time) position rebuilt from them (a running sum along time: every event
    reaching all later positions) or a network retrained on the derivative image.
    """
    return tf.floor(tf.abs(tf.cast(x, tf.float64)) / float(delta))


def delta_input(x, delta):
    """The quantised input the delta encoder's events hold in the first layer: ``sign(x) * delta * levels``."""
    return tf.cast(tf.sign(tf.cast(x, tf.float64)) * float(delta) * delta_levels(x, delta), tf.float32)


def input_spikes(x, key, t, neurons):
    """Input frame at step ``t`` of a spiking coding (``neurons``: any object with the `Neurons` fields)."""
    if neurons.coding == "rate":
        return rate_spikes(x, t, neurons.gain)
    if neurons.coding == "poisson":
        return poisson_spikes(x, key, t, neurons.poisson_rule)
    raise ValueError(f"coding {neurons.coding!r} has no input frames (its input is a held current)")


def toolbox_poisson_replay(seed):
    """Input frames drawn exactly as SNN Toolbox INI draws them after ``np.random.seed(seed)``.

    The toolbox (``get_poisson_frame_batch``, ``input_rate = 1000``, ``dt = 1``) takes one
    ``np.random.random_sample(batch shape)`` per batch and step from NumPy's global generator:
    a spike where ``u * max(x) <= |x|``, of amplitude ``max(x) * sign(x)``. Replaying the same
    sequence (one replay object per toolbox run, batches in the same order) makes Poisson runs
    agree spike for spike.
    """
    rng = np.random.RandomState(seed)

    def frames(xb, timesteps):
        peak = np.max(xb)
        out = np.empty((timesteps,) + xb.shape, np.float32)
        for t in range(timesteps):
            spikes = (rng.random_sample(xb.shape) * peak <= np.abs(xb)).astype("float32")
            spikes *= peak * np.sign(xb)
            out[t] = spikes
        return out

    return frames


def padded_batch(x, size):
    """Pad a last partial batch with zero samples so every batch has one shape (one trace)."""
    n = len(x)
    if n == size:
        return x, n
    return np.concatenate([x, np.zeros((size - n,) + x.shape[1:], x.dtype)]), n


def _replayed_frames(net, x):
    """The engine's input frames of a spiking coding (Poisson, rate), batch by batch and step by step as
    `SpikingNetwork.simulate` draws them: yields (first sample, samples, step, frame (samples, ...)).

    The frames are stateless (Poisson: a key per batch, folded with the step; rate: a closed form of
    the step), so calling `input_spikes` with the engine's keys on its padded batches gives the very
    same frames (a Poisson frame with the toolbox rule scales by the padded batch's peak, as the engine's).
    """
    s = net.settings
    for batch, start in enumerate(range(0, len(x), s.batch_size)):
        xb, n = padded_batch(x[start:start + s.batch_size], s.batch_size)
        padded, key = tf.constant(xb), batch_key(s.seed, batch)
        for t in range(s.timesteps):
            yield start, n, t, input_spikes(padded, key, tf.constant(t), s).numpy()[:n]


def coded_frames(net, x):
    """The engine's own input frames for the samples ``x``, (N, T, ...) float32: what its coding sends
    the first layer at every step, for a simulator we did not write to receive the very same input.
    Only spiking codings (Poisson, rate) have frames; a held current (analog, delta) is refused."""
    x = np.asarray(x, np.float32)
    if net.settings.coding not in ("poisson", "rate"):
        raise ValueError(f"coding {net.settings.coding!r} has no input frames (its input is a held current)")
    frames = np.empty((len(x), net.settings.timesteps) + x.shape[1:], np.float32)
    for start, n, t, frame in _replayed_frames(net, x):
        frames[start:start + n, t] = frame
    return frames


def replay_input(net, x, first_fan_out):
    """Input spike events per position (summed over samples and steps) and first-layer ACs per step.

    The engine counts input events per step only; replaying its frames (`_replayed_frames`) gives the
    very same events, position by position. Delta input sends all its level crossings at the first
    step (`delta_levels`); analog input has no events (None, zeros).
    """
    s = net.settings
    totals = np.zeros(x.shape[1:], np.float64)
    events = np.zeros(s.timesteps, np.int64)
    acs = np.zeros(s.timesteps, np.float64)
    if s.coding == "analog":
        return None, events, acs
    if s.coding == "delta":
        totals = np.asarray(delta_levels(np.asarray(x, np.float32), s.delta)).sum(axis=0)
        events[0] = int(totals.sum())
        acs[0] = float(np.sum(totals * first_fan_out))
        return totals, events, acs
    for _, _, t, frame in _replayed_frames(net, x):
        per_position = (frame != 0).sum(axis=0)
        totals += per_position
        events[t] += per_position.sum()
        acs[t] += float(np.sum(per_position * first_fan_out))
    return totals, events, acs
