"""The fast simulation's compiled kernels (Numba, ``nogil``: the engine's threads run them in parallel).

Event-driven synaptic currents: a spike adds the weights of its synapses to the currents of
the neurons it reaches, so the cost follows the spikes, not the inputs: few of a deep layer's
inputs spike in a step, where a dense op multiplies every input (Rueckauer et al. 2017 count synaptic operations the same way). The sums are the dense op's
in another order: equal up to float rounding.

The membrane scan (`scan`): a layer's neurons and the spiking pools they feed, stepped
through T one sample at a time, so its membranes stay in cache (docs/engine.md's bench compares it).
"""
import numba
import numpy as np

from pipeline.network import same_padding


def dense_current(frames, kernel):
    """``frames (F, N) @ kernel (N, O)`` for binary ``frames``: per frame, the rows of its spikes."""
    spikes = _as_bytes(frames.reshape(len(frames), -1))
    out = np.empty((len(frames), kernel.shape[1]), np.float32)   # NumPy's buffer: huge pages, few page faults
    _dense(spikes, np.ascontiguousarray(kernel, dtype=np.float32), out)
    return out


def conv_current(frames, kernel, padding):
    """A stride-1, undilated Keras ``Conv2D`` (cross-correlation, no bias) of binary frames (F, H, W, C).

    Each spike adds, for every tap of the kernel, that tap's weights of its channel to one
    output position. The spikes are scattered into an extended grid (H + kh - 1, W + kw - 1)
    that holds every position any tap of any spike reaches, so no spike needs a bounds check,
    and the layer's output ('same' or 'valid') is cut out of it. The taps of one kernel row
    reach consecutive grid positions, so with the row's taps stored in reverse order a kernel
    row is one contiguous add of kw x O weights. Every output gets its adds in spike order:
    the sums do not depend on the layout.
    """
    kh, kw, channels, outputs = kernel.shape
    height, width = frames.shape[1:3]
    top, left = (same_padding(height, kh)[1], same_padding(width, kw)[1]) if padding == "same" else (0, 0)
    if padding != "same":
        height, width = height - kh + 1, width - kw + 1
    # (C, kh, kw * O): one spike's kernel row together, its taps from kw - 1 down to 0
    rows = np.ascontiguousarray(np.transpose(kernel, (2, 0, 1, 3))[:, :, ::-1], dtype=np.float32)
    out = np.empty((len(frames), height, width, outputs), np.float32)
    _conv(_as_bytes(frames), rows.reshape(channels, kh, kw * outputs), top, left, out)
    return out


def _as_bytes(frames):
    return np.ascontiguousarray(frames, dtype=np.bool_).view(np.uint8)


@numba.njit(nogil=True, cache=True)
def _spike_list(frame, found):
    """The indices of ``frame``'s non-zero bytes, in order, into ``found``; returns how many.
    Eight bytes are tested at once: most words of a sparse frame hold no spike."""
    n, whole = 0, frame.shape[0] // 8 * 8
    words = frame[:whole].view(np.uint64)
    for w in range(words.shape[0]):
        if words[w]:
            for k in range(w * 8, w * 8 + 8):
                if frame[k]:
                    found[n] = k
                    n += 1
    for k in range(whole, frame.shape[0]):
        if frame[k]:
            found[n] = k
            n += 1
    return n


@numba.njit(nogil=True, cache=True)
def _dense(frames, kernel, out):
    found = np.empty(frames.shape[1], np.int64)
    for f in range(frames.shape[0]):
        target = out[f]
        target[:] = 0.0
        for s in range(_spike_list(frames[f], found)):
            source = kernel[found[s]]
            for o in range(target.shape[0]):
                target[o] += source[o]


@numba.njit(nogil=True, cache=True)
def _conv(frames, rows, top, left, out):
    F, H, W, C = frames.shape
    kh, O = rows.shape[1], out.shape[3]
    kw, height, width = rows.shape[2] // O, out.shape[1], out.shape[2]
    Wx, length = W + kw - 1, rows.shape[2]
    grid = np.zeros((H + kh - 1) * Wx * O, np.float32)
    found = np.empty(H * W * C, np.int64)
    for f in range(F):
        grid[:] = 0.0
        for s in range(_spike_list(frames[f].reshape(-1), found)):
            k = found[s]
            c, x, y = k % C, k // C % W, k // (C * W)
            row0 = ((y + kh - 1) * Wx + x) * O   # kernel row 0's first grid position; row i's is i grid rows before
            for i in range(kh):
                start = row0 - i * Wx * O
                target, source = grid[start:start + length], rows[c, i]   # slices: unsigned indices, so it vectorises
                for o in range(length):
                    target[o] += source[o]
        for p in range(height):
            start = ((p + kh - 1 - top) * Wx + kw - 1 - left) * O
            out[f, p] = grid[start:start + width * O].reshape(width, O)


def scan(current, constant, timesteps, thresholds, leaks, initial, pools):
    """The membranes of a chain of stages (a weighted layer, then the spiking pools it feeds)
    through all T steps: per step and stage ``u = leak * v + I`` (``v + I`` where no stage
    leaks), a spike where ``u >= theta``, reset by subtraction, and a pool's input is the
    average pool of the spikes the stage below just made. The engine's step loop does the
    same float32 operations in the same order, so the spikes are bit for bit its spikes.

    ``current``: the head's input current, (batch, ...) if ``constant``, else (T, batch, ...);
    its neurons are (H, W, C) or (N,). ``thresholds``, ``leaks``, ``initial`` (v(0)): one per
    stage. ``pools``: per pool stage ``(pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
    out_h, out_w)``, TF's average pool (padding excluded from the mean).
    Returns the last stage's spikes (T, batch, ...) as bools, per stage the spike totals per
    neuron (batch, ...) as integers and the spike counts (T, stages, batch).
    """
    current = np.ascontiguousarray(current, dtype=np.float32)
    T, shape = timesteps, current.shape[1:] if constant else current.shape[2:]
    grid = shape if len(shape) == 3 else (1, 1) + tuple(shape)
    lead = current.shape[:1] if constant else current.shape[:2]
    pools = np.asarray(pools, np.int64).reshape(-1, 8)
    leaky = any(float(leak) != 1.0 for leak in leaks)
    steps = current.reshape((1,) * constant + lead + tuple(grid))   # (T or 1, batch, H, W, C)
    spikes, totals, counts = _scan(steps, constant, T,
                                   np.asarray(thresholds, np.float32), np.asarray(leaks, np.float32),
                                   np.asarray(initial, np.float32), pools, leaky)
    shapes = [tuple(shape)] + [(int(p[6]), int(p[7]), grid[2]) for p in pools]
    batch = lead[0] if constant else lead[1]
    totals = [t.reshape((batch,) + s) for t, s in zip(totals, shapes)]
    return spikes.reshape((T, batch) + shapes[-1]), totals, counts


@numba.njit(nogil=True, cache=True)
def _update(v, h, theta, leak, leaky, fired, total):
    """One step of one stage's neurons (flat arrays); ``fired`` gets 0/1, ``total`` (integers)
    counts it. Returns the number of spikes."""
    one, zero, n = np.float32(1), np.float32(0), 0
    if leaky:
        for k in range(v.shape[0]):
            u = leak * v[k] + h[k]
            spike = one if u >= theta else zero
            v[k] = u - spike * theta
            fired[k] = spike
            total[k] += u >= theta
            n += u >= theta   # an integer sum: a float one would not vectorise
    else:
        for k in range(v.shape[0]):
            u = v[k] + h[k]
            spike = one if u >= theta else zero
            v[k] = u - spike * theta
            fired[k] = spike
            total[k] += u >= theta
            n += u >= theta   # an integer sum: a float one would not vectorise
    return n


@numba.njit(nogil=True, cache=True)
def _pool(fired, H, W, C, p, out):
    """TF's average pool of one stage's spikes (H*W*C,) into ``out`` (flat)."""
    ph, pw, sh, sw, top, left, oh, ow = p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]
    window = np.empty(C, np.float32)
    for y in range(oh):
        i0, i1 = max(y * sh - top, 0), min(y * sh - top + ph, H)
        for x in range(ow):
            j0, j1 = max(x * sw - left, 0), min(x * sw - left + pw, W)
            window[:] = 0
            for i in range(i0, i1):
                for j in range(j0, j1):
                    spikes = fired[(i * W + j) * C:(i * W + j + 1) * C]
                    for c in range(C):
                        window[c] += spikes[c]
            count = np.float32((i1 - i0) * (j1 - j0))
            target = out[(y * ow + x) * C:(y * ow + x + 1) * C]
            for c in range(C):
                target[c] = window[c] / count


@numba.njit(nogil=True, cache=True)
def _scan(current, constant, T, thresholds, leaks, initial, pools, leaky):
    batch, H, W, C = current.shape[1:]
    stages = pools.shape[0] + 1
    sizes = [H * W * C] + [int(pools[k, 6] * pools[k, 7] * C) for k in range(stages - 1)]
    out = np.zeros((T, batch, sizes[-1]), np.bool_)
    totals = [np.zeros((batch, size), np.int32) for size in sizes]
    counts = np.zeros((T, stages, batch), np.float32)
    flat = current.reshape((current.shape[0], batch, H * W * C))
    for b in range(batch):
        v = [np.full(size, initial[k], np.float32) for k, size in enumerate(sizes)]
        fired = [np.zeros(size, np.float32) for size in sizes]
        pooled = [np.zeros(size if k else 0, np.float32) for k, size in enumerate(sizes)]   # pools' inputs
        for t in range(T):
            for k in range(stages):
                if k == 0:
                    h = flat[0 if constant else t, b]
                else:
                    side_h = H if k == 1 else pools[k - 2, 6]
                    side_w = W if k == 1 else pools[k - 2, 7]
                    _pool(fired[k - 1], side_h, side_w, C, pools[k - 1], pooled[k])
                    h = pooled[k]
                counts[t, k, b] = _update(v[k], h, thresholds[k], leaks[k], leaky, fired[k], totals[k][b])
            last = fired[stages - 1]
            for i in range(last.shape[0]):
                out[t, b, i] = last[i] > 0
    return out, totals, counts
