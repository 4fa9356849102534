"""Few-shot top-1 accuracy of the heads on a labelled photo set with the real embedding extractor.

Protocol: for k shots smaller than a class's photo count, each split draws k training photos per class at
random and tests on every other photo; at k >= the photo count (20-shot on the 20-photo set) there is
nothing left to test, so every photo is held out once and the head is trained on all the others (leave-
one-out: the held-out photo's class then has one photo fewer). Embeddings are computed once per run.

With --mirror every training photo also contributes the embedding of its horizontal mirror (as a teacher
storing both would); test photos are never mirrored. With --open-set it also prints, per shot count and
similarity threshold, how many test photos keep their picked class (cosine to the class's closest training
sample >= t, see learning.openset) and how many unrelated photos (--unrelated DIR) would be accepted.

    python -m appliance.bench.fewshot --flowers DIR [--splits N] [--shots 1 5 10 20] [--mirror]
        [--open-set --unrelated DIR] [--json]

(The development machines keep the flower set in ../shared/data/flowers and unrelated photos in
../shared/images; the tool is given them, it never looks for them.)
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from appliance.learning.heads import fit_head
from appliance.learning.openset import sample_index
from appliance.vision import backends

OPEN_SET_THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65)
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


def embed_folders(root: Path, embedder, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """X (N, D) embeddings (of the horizontally mirrored photos if `mirrored`), y (N,) class indices,
    and the class names, computed once."""
    from appliance.vision.images import read_image

    X, y, names = [], [], []
    for index, (name, photos) in enumerate(photo_folders(root)):
        names.append(name)
        for photo in photos:
            rgb = read_image(photo)
            X.append(embedder.embed(np.ascontiguousarray(rgb[:, ::-1]) if mirrored else rgb))
            y.append(index)
    return np.stack(X).astype(np.float32), np.array(y, dtype=np.int64), names


def embed_photos(folder: Path, embedder) -> np.ndarray:
    """(N, D) embeddings of the photos directly in `folder` (not its sub-folders)."""
    from appliance.vision.images import read_image

    photos = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return np.stack([embedder.embed(read_image(p)) for p in photos]).astype(np.float32)


def training_set(X: np.ndarray, y: np.ndarray, train: np.ndarray,
                 mirrors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if mirrors is None:
        return X[train], y[train]
    return np.concatenate([X[train], mirrors[train]]), np.concatenate([y[train], y[train]])


def split_accuracy(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str,
                   mirrors: np.ndarray | None = None) -> float:
    pred, _ = fit_head(*training_set(X, y, train, mirrors), kind).predict(X[test])
    return float((pred == y[test]).mean())


def splits_for(y: np.ndarray, shots: int, splits: int, seed: int):
    """(train, test) index arrays: `splits` random k-shot splits, or leave-one-out when k leaves no test."""
    classes = np.unique(y)
    if shots >= min(int((y == c).sum()) for c in classes):
        for i in range(len(y)):
            yield np.flatnonzero(np.arange(len(y)) != i), np.array([i])
        return
    rng = np.random.default_rng(seed)
    for _ in range(splits):
        train = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in classes])
        yield np.sort(train), np.setdiff1d(np.arange(len(y)), train)


def few_shot_accuracy(X: np.ndarray, y: np.ndarray, shots: int, kind: str, splits: int = 20,
                      seed: int = 0, mirrors: np.ndarray | None = None) -> float:
    """Mean top-1 over `splits` random k-shot splits (leave-one-out when k leaves no test photo)."""
    return float(np.mean([split_accuracy(X, y, train, test, kind, mirrors)
                          for train, test in splits_for(y, shots, splits, seed)]))


def open_set_rates(X: np.ndarray, y: np.ndarray, unrelated: np.ndarray, shots: int, splits: int = 20,
                   seed: int = 0, thresholds=OPEN_SET_THRESHOLDS) -> dict[str, list[float]]:
    """Per threshold: the fraction of test photos whose picked class (auto head) has a training sample at
    least that similar ("kept"), and the same fraction for the unrelated photos ("accepted")."""
    kept, accepted = [], []
    for train, test in splits_for(y, shots, splits, seed):
        head, index = fit_head(X[train], y[train]), sample_index(X[train], y[train])
        kept.append(index.similarity_to(X[test], head.predict(X[test])[0]))
        accepted.append(index.similarity_to(unrelated, head.predict(unrelated)[0]))
    k, a = np.concatenate(kept), np.concatenate(accepted)
    return {"thresholds": list(thresholds), "kept": [round(float((k >= t).mean()), 4) for t in thresholds],
            "accepted": [round(float((a >= t).mean()), 4) for t in thresholds]}


def load_embedder(model: str, device: str):
    from appliance.model_files import default_models_dir, resolve_model
    from appliance.vision.embed import Embedder
    from appliance.vision.model import load_model

    return Embedder(load_model(resolve_model(model, models_dir=default_models_dir()), device=device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bench.fewshot",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--flowers", type=Path, required=True, metavar="DIR",
                        help="one folder of photos per class (e.g. ../shared/data/flowers)")
    parser.add_argument("--model", default=EMBEDDER, help="embedding extractor (path or manifest name)")
    parser.add_argument("--device", default="cpu", choices=backends.device_choices())
    parser.add_argument("--splits", type=int, default=20, metavar="N", help="random splits per shot count")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror", action="store_true",
                        help="also train on each training photo's horizontal mirror")
    parser.add_argument("--open-set", action="store_true",
                        help="also print how the open-set similarity check keeps / rejects photos")
    parser.add_argument("--unrelated", type=Path, metavar="DIR",
                        help="photos of other things, for --open-set (e.g. ../shared/images)")
    parser.add_argument("--json", action="store_true", help="print JSON to stdout")
    args = parser.parse_args(argv)
    if args.open_set and args.unrelated is None:
        parser.error("--open-set needs --unrelated DIR (photos of things that are none of the classes)")
    from appliance.errors import ApplianceError

    try:
        if not args.flowers.is_dir():
            print(f"fewshot: error: {args.flowers} is not a folder of class folders", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        embedder = load_embedder(args.model, args.device)
        X, y, names = embed_folders(args.flowers, embedder)
        mirrors = embed_folders(args.flowers, embedder, mirrored=True)[0] if args.mirror else None
        unrelated = embed_photos(args.unrelated, embedder) if args.open_set else None
        embed_s = time.perf_counter() - t0
    except ApplianceError as exc:
        print(f"fewshot: error: {exc}", file=sys.stderr)
        return 2
    results = {"dataset": str(args.flowers), "classes": names, "photos": len(y), "splits": args.splits,
               "mirror": args.mirror, "embed_seconds": round(embed_s, 2), "top1": {}}
    for kind in args.heads:
        results["top1"][kind] = {}
        for shots in args.shots:
            acc = few_shot_accuracy(X, y, shots, kind, args.splits, args.seed, mirrors)
            results["top1"][kind][str(shots)] = round(acc, 4)
            if not args.json:
                print(f"{kind:8s} {shots:3d}-shot top-1 {acc:.3f}" + (" (+ mirrors)" if args.mirror else ""),
                      flush=True)
    if unrelated is not None:
        results["open_set"] = {"unrelated_photos": len(unrelated)}
        for shots in args.shots:
            rates = open_set_rates(X, y, unrelated, shots, args.splits, args.seed)
            results["open_set"][str(shots)] = rates
            if not args.json:
                cells = "  ".join(f"{t:.2f}: {k:.2f}/{a:.2f}" for t, k, a in
                                  zip(rates["thresholds"], rates["kept"], rates["accepted"], strict=True))
                print(f"open-set {shots:3d}-shot min_similarity: test photos kept / unrelated accepted  "
                      f"{cells}", flush=True)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print(f"{len(y)} photos in {len(names)} classes embedded in {embed_s:.1f} s; "
              f"{args.splits} random splits per shot count (leave-one-out where no photo would be left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
