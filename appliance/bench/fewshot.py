"""Few-shot top-1 accuracy of the heads on ../shared/data/flowers with the real embedding extractor.

Protocol: for k shots smaller than a class's photo count, each split draws k training photos per class at
random and tests on every other photo; at k >= the photo count (20-shot on the 20-photo set) there is
nothing left to test, so every photo is held out once and the head is trained on all the others (leave-
one-out: the held-out photo's class then has one photo fewer). Embeddings are computed once per run.

    python -m appliance.bench.fewshot [--splits N] [--shots 1 5 10 20] [--json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from appliance.learning.heads import fit_head
from appliance.paths import REPO_ROOT

DEFAULT_FLOWERS = REPO_ROOT.parent / "shared" / "data" / "flowers"
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor"
HEADS = ("imprint", "softmax", "auto")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def photo_folders(root: Path) -> list[tuple[str, list[Path]]]:
    """(class name, sorted photos) for each sub-folder of `root` holding photos."""
    out = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            out.append((folder.name, photos))
    return out


def embed_folders(root: Path, embedder) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """X (N, D) embeddings, y (N,) class indices, and the class names, computed once."""
    from appliance.vision.images import read_image

    X, y, names = [], [], []
    for index, (name, photos) in enumerate(photo_folders(root)):
        names.append(name)
        for photo in photos:
            X.append(embedder.embed(read_image(photo)))
            y.append(index)
    return np.stack(X).astype(np.float32), np.array(y, dtype=np.int64), names


def split_accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str) -> float:
    pred, _ = fit_head(X[train], y[train], kind).predict(X[test])
    return float((pred == y[test]).mean())


def few_shot_accuracy(X: np.ndarray, y: np.ndarray, shots: int, kind: str, splits: int = 20,
                      seed: int = 0) -> float:
    """Mean top-1 over `splits` random k-shot splits (leave-one-out when k leaves no test photo)."""
    classes = np.unique(y)
    if shots >= min(int((y == c).sum()) for c in classes):
        hits = [split_accuracy(X, y, np.flatnonzero(np.arange(len(y)) != i), np.array([i]), kind)
                for i in range(len(y))]
        return float(np.mean(hits))
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(splits):
        train = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in classes])
        test = np.setdiff1d(np.arange(len(y)), train)
        accs.append(split_accuracy(X, y, np.sort(train), test, kind))
    return float(np.mean(accs))


def load_embedder(model: str, device: str):
    from appliance.model_files import default_models_dir, resolve_model
    from appliance.vision.embed import Embedder
    from appliance.vision.model import load_model

    return Embedder(load_model(resolve_model(model, models_dir=default_models_dir()), device=device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.fewshot",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--flowers", type=Path, default=DEFAULT_FLOWERS,
                        help="one folder of photos per class")
    parser.add_argument("--model", default=EMBEDDER, help="embedding extractor (path or manifest name)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "edgetpu"))
    parser.add_argument("--splits", type=int, default=20, metavar="N", help="random splits per shot count")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")
    args = parser.parse_args(argv)
    from appliance.errors import ApplianceError

    try:
        if not args.flowers.is_dir():
            print(f"fewshot: error: {args.flowers} is not a folder of class folders", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        X, y, names = embed_folders(args.flowers, load_embedder(args.model, args.device))
        embed_s = time.perf_counter() - t0
    except ApplianceError as exc:
        print(f"fewshot: error: {exc}", file=sys.stderr)
        return 2
    results = {"dataset": str(args.flowers), "classes": names, "photos": len(y), "splits": args.splits,
               "embed_seconds": round(embed_s, 2), "top1": {}}
    for kind in args.heads:
        results["top1"][kind] = {}
        for shots in args.shots:
            acc = few_shot_accuracy(X, y, shots, kind, args.splits, args.seed)
            results["top1"][kind][str(shots)] = round(acc, 4)
            if not args.json:
                print(f"{kind:8s} {shots:3d}-shot top-1 {acc:.3f}", flush=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print(f"{len(y)} photos in {len(names)} classes embedded in {embed_s:.1f} s; "
              f"{args.splits} random splits per shot count (leave-one-out where no photo would be left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
