#!/usr/bin/env python3
"""Where an STDB training step's time goes, side by side with inference and a dense reference.

    python tools/profile_stdb.py [RUN=profile T=28 BATCH=32 REPEATS=3 ...pipeline settings]

On the RUN's converted network (trained or cached ESCAPE-NET, conversion thresholds on 100
training samples), one batch of training samples, the same process, the parts timed in turn
(interleaved ``REPEATS`` times, so load on a shared machine hits each alike; the median is shown):

- ``engine fast path``: inference, the engine's compiled layer-by-layer kernels (`simulate(fast=True)`);
- ``STDB forward``: the training forward pass alone (the step engine's time loop, surrogate spikes,
  dropout, Poisson input drawn per sample);
- ``STDB forward + backward``: the loss and the gradients of every weight (BPTT through T steps);
- ``STDB step``: the above plus Adam's update (what one training batch costs);
- ``dense reference``: the same Keras network's dense forward + backward pass for the batch, x T (what
  training the ANN T times over would cost: the scale STDB's arithmetic is measured against).

Printed: seconds per batch and milliseconds per sample-timestep, and the ratio to the STDB step;
then the CPU's float32 rate as TensorFlow reaches it (a 2048 x 2048 matmul, GFLOP/s), the ceiling a
step's arithmetic (its multiply-adds, counted in docs/stdb.md) is measured against. A profile of where time
goes, never a test: the numbers vary with the machine and its load.
"""
import statistics
import sys
import time

MATMUL_SIZE, MATMUL_REPEATS = 2048, 10   # ~1 s a measurement


def main(argv):
    import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
    import numpy as np
    import tensorflow as tf
    from pipeline import conversion, engine, settings as settings_module, workspace
    from pipeline.training import stdb

    own = {k: v for k, v in (a.split("=", 1) for a in argv if a.split("=", 1)[0] in ("BATCH", "REPEATS"))}
    rest = [a for a in argv if a.split("=", 1)[0] not in own]
    settings = settings_module.parse(["stdb", *([] if any(a.startswith("RUN=") for a in rest) else ["RUN=profile"]),
                                      *rest])
    timesteps, batch = settings.timesteps or 28, int(own.get("BATCH", 32))
    repeats = int(own.get("REPEATS", 3))
    ws = workspace.prepare(settings)
    network, _ = conversion.converted(
        ws, engine.SnnSettings(timesteps=timesteps, leak=settings.leak, **settings.input_coding(),
                               seed=0, batch_size=batch), settings.thresholds)
    x = tf.constant(ws.dataset.x_train[:batch], tf.float32)
    labels = tf.constant(engine.as_labels(ws.dataset.y_train[:batch]))
    keys = engine.sample_keys(0, 1, np.arange(batch))
    spike_fn = stdb.StdbSettings().spike_function()
    weights = network.weight_variables()
    optimizer = tf.keras.optimizers.Adam(1e-4, amsgrad=True)

    def forward():
        out = network.run(x, keys, training=True, spike_fn=spike_fn)
        return stdb.cross_entropy(out["logits"], labels, timesteps)

    def forward_backward():
        with tf.GradientTape() as tape:
            loss = forward()
        return tape.gradient(loss, weights)

    def step():
        grads = forward_backward()
        optimizer.apply_gradients([(g + 5e-4 * w, w) for g, w in zip(grads, weights)])
        return grads[0]

    model = network.model
    dense_loss = tf.keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def dense():
        with tf.GradientTape() as tape:
            loss = dense_loss(labels, model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    x_numpy = ws.dataset.x_train[:batch]
    parts = {
        "engine fast path (inference)": (lambda: network.simulate(x_numpy, fast=True), 1),
        "STDB forward": (tf.function(forward), 1),
        "STDB forward + backward": (tf.function(forward_backward), 1),
        "STDB step (+ Adam)": (tf.function(step), 1),
        "dense reference (forward + backward) x T": (dense, timesteps),
    }
    for function, _ in parts.values():      # trace and warm up
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, function())
    seconds = {name: [] for name in parts}
    for _ in range(repeats):
        for name, (function, times) in parts.items():
            start = time.perf_counter()
            out = function()
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            seconds[name].append((time.perf_counter() - start) * times)
    reference = statistics.median(seconds["STDB step (+ Adam)"])
    print(f"\nT={timesteps}, batch {batch}, width {ws.record['width']}, {repeats} repeats (median), "
          f"load average {__import__('os').getloadavg()[0]:.1f}")
    print(f"{'part':44s} {'s/batch':>8s} {'ms/sample-step':>15s} {'/ STDB step':>12s}")
    for name, values in seconds.items():
        s = statistics.median(values)
        print(f"{name:44s} {s:8.3f} {1e3 * s / batch / timesteps:15.3f} {s / reference:12.2f}")
    a = tf.random.stateless_normal([MATMUL_SIZE, MATMUL_SIZE], seed=[0, 0])
    matmul = tf.function(lambda: tf.matmul(a, a))
    matmul().numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(MATMUL_REPEATS):
            matmul().numpy()
        rates.append(2 * MATMUL_SIZE ** 3 * MATMUL_REPEATS / (time.perf_counter() - start) / 1e9)
    print(f"float32 reference: TensorFlow's {MATMUL_SIZE}x{MATMUL_SIZE} matmul, {statistics.median(rates):.0f} GFLOP/s")


if __name__ == "__main__":
    main(sys.argv[1:])
