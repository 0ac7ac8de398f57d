"""Input coding: the engine's stateless Poisson draws, and SNN Toolbox INI's draws replayed."""
import numpy as np
import tensorflow as tf


def batch_key(seed, batch):
    """The stateless RNG key of one batch: Poisson draws and dropout masks derive from it."""
    return tf.constant([int(seed), int(batch)], tf.int64)


def poisson_spikes(x, key, t, rule="signed"):
    """Poisson input spikes for step ``t``; stateless, so a key and a step always give the same draw.

    ``"signed"``: a spike with probability |x| and the sign of x (Rathi et al.'s
    ``PoissonGenerator``). ``"toolbox"``: SNN Toolbox INI's ``get_poisson_frame_batch`` with
    ``input_rate = 1000`` and ``dt = 1``: a spike where ``u * max(x) <= |x|`` (max over the whole
    batch), of amplitude ``max(x) * sign(x)``; the toolbox draws ``u`` from NumPy's global
    generator, so the two agree in distribution, not draw by draw.
    """
    u = tf.random.stateless_uniform(tf.shape(x), tf.random.experimental.stateless_fold_in(key, t))
    if rule == "signed":
        return tf.cast(u <= tf.abs(x), tf.float32) * tf.sign(x)
    peak = tf.reduce_max(x)
    return tf.cast(u * peak <= tf.abs(x), tf.float32) * (peak * tf.sign(x))


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


def replay_input(net, x, first_fan_out):
    """Input spike events per position (summed over samples and steps) and first-layer ACs per step.

    The engine counts input events per step only; its Poisson draws are stateless (a key per
    batch, folded with the step), so replaying `poisson_spikes` with its keys on its padded
    batches gives the very same events, position by position.
    """
    s = net.settings
    totals = np.zeros(x.shape[1:], np.float64)
    events = np.zeros(s.timesteps, np.int64)
    acs = np.zeros(s.timesteps, np.float64)
    for batch, start in enumerate(range(0, len(x), s.batch_size)):
        xb, n = padded_batch(x[start:start + s.batch_size], s.batch_size)
        padded, key = tf.constant(xb), batch_key(s.seed, batch)
        for t in range(s.timesteps):
            fired = poisson_spikes(padded, key, tf.constant(t), s.poisson_rule).numpy()[:n] != 0
            per_position = fired.sum(axis=0)
            totals += per_position
            events[t] += per_position.sum()
            acs[t] += float(np.sum(per_position * first_fan_out))
    return totals, events, acs
