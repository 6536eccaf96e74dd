"""The demo's study in numpy float64, single-threaded: the baseline of BENCHMARKS.md.

Same setup as `caviar demo`: first 500 MNIST training images scaled to [0, 1], shuffled,
400 train / 100 validation; 784-100x6-10 ReLU net, He init, plain SGD, batch 100 drawn with
replacement, 50 epochs of 4 updates, validation accuracy after each epoch;
lr = 10^U(-6,-2), weight_decay = 10^U(-8,-4).

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python3 benches/numpy_reference.py [TRIALS]
"""
import gzip
import sys
import time

import numpy as np


def load(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    x = load("data/mnist/train-images-idx3-ubyte.gz", 16)[: 500 * 784].reshape(500, 784) / 255.0
    t = load("data/mnist/train-labels-idx1-ubyte.gz", 8)[:500]
    rng = np.random.default_rng(0)
    order = rng.permutation(500)
    x, t = x[order], t[order]
    xv, tv, xt, tt = x[:100], t[:100], x[100:], t[100:]
    sizes = [784] + [100] * 6 + [10]
    start = time.time()
    results = []
    for _ in range(trials):
        lr = 10 ** rng.uniform(-6, -2)
        wd = 10 ** rng.uniform(-8, -4)
        ws = [rng.normal(0, np.sqrt(2.0 / a), (a, b)) for a, b in zip(sizes, sizes[1:])]
        bs = [np.zeros(b) for b in sizes[1:]]
        acc = 0.0
        for epoch in range(50):
            for _ in range(4):
                idx = rng.integers(0, 400, 100)
                xb, tb = xt[idx], tt[idx]
                acts = [xb]
                for w, b in zip(ws[:-1], bs[:-1]):
                    acts.append(np.maximum(acts[-1] @ w + b, 0))
                z = acts[-1] @ ws[-1] + bs[-1]
                z = np.exp(z - z.max(axis=1, keepdims=True))
                p = z / z.sum(axis=1, keepdims=True)
                p[np.arange(100), tb] -= 1
                g = p / 100
                for l in range(len(ws) - 1, -1, -1):
                    dw = acts[l].T @ g + wd * ws[l]
                    db = g.sum(axis=0)
                    if l > 0:
                        g = (g @ ws[l].T) * (acts[l] > 0)
                    ws[l] -= lr * dw
                    bs[l] -= lr * db
            h = xv
            for w, b in zip(ws[:-1], bs[:-1]):
                h = np.maximum(h @ w + b, 0)
            acc = float(((h @ ws[-1] + bs[-1]).argmax(axis=1) == tv).mean())
        results.append(acc)
    elapsed = time.time() - start
    print(f"{trials} trials in {elapsed:.1f} s ({elapsed / trials:.3f} s per trial); best val_acc {max(results):.2f}")


if __name__ == "__main__":
    main()
