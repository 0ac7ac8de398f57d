"""scikit-learn's handwritten digits as a `.npz` the pipeline reads (`DATA=path`, docs/data.md "Any other data").

A second dataset for `make frontier`, unlike the default nerve-cuff data in what sets an SNN's
energy: dense non-negative pixels instead of sparse signed ones, 8 x 8 images instead of 56 x 100,
10 classes instead of 3. scikit-learn ships the data (the UCI optdigits test part: 1,797 images,
values 0-16); it is not a dependency of the pipeline, so run this with any Python that has it:

    python tools/digits_npz.py data/digits.npz

Split: per class, a seeded permutation, one third to the test set (599 test, 1,198 training images);
the pipeline then scales by the training set's peak and draws its own validation split.
"""
import argparse

import numpy as np


def split(y, test_fraction=1 / 3, seed=0):
    """Training and test indices, ``test_fraction`` of each class to the test set (seeded)."""
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:round(test_fraction * np.sum(y == k))]
                           for k in np.unique(y)])
    return np.setdiff1d(np.arange(len(y)), test), np.sort(test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the .npz to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from sklearn.datasets import load_digits
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target.astype(np.int64)
    train, test = split(y, seed=args.seed)
    np.savez(args.out, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    print(f"{args.out}: {len(train)} training, {len(test)} test images of {x.shape[1:]}, {len(np.unique(y))} classes")


if __name__ == "__main__":
    main()
