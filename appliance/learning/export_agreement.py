"""How often the exported .tflite names the same top class as the appliance, on real photos.

The appliance's answer for a photo is its Embedder (whole photo resized, dequantised, L2-normalised)
followed by the store's head; the export's is the .tflite run by ai-edge-litert on the same resized
RGB uint8 pixels, its top class the argmax of its uint8 scores (ties go to the first, as any argmax).
Run: python -m appliance.learning.export_agreement --flowers DIR --imprinting DIR [--per-class N]
     [--head auto|imprint|softmax]
(on the development machines: ../shared/data/flowers and ../shared/images/imprinting; the embedder is
found as everywhere else: the models folder, then --from / APPLIANCE_MODELS_FROM)
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from appliance.learning.model_identity import model_identity
from appliance.learning.store import ClassStore
from appliance.learning.tflite_export import Export, export_tflite

EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def tflite_top(path: Path, images: list[np.ndarray]) -> list[int]:
    """The index of the highest score of the exported model for each photo (whole photo resized)."""
    from ai_edge_litert.interpreter import Interpreter

    from appliance.vision import preprocess

    interp = Interpreter(model_path=str(path), num_threads=2)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    _, h, w, _ = inp["shape"]
    tops = []
    for rgb in images:
        pixels, _ = preprocess.shrink(preprocess.as_rgb(rgb), (int(w), int(h)))
        interp.set_tensor(inp["index"], pixels[None])
        interp.invoke()
        tops.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    return tops


def agreement(export: Export, embeddings: np.ndarray, images: list[np.ndarray]) -> tuple[int, int]:
    """(photos where both name the same class, photos)."""
    appliance_ids, _ = export.head.predict(embeddings)
    export_ids = export.head.class_ids[tflite_top(export.model, images)]
    return int((appliance_ids == export_ids).sum()), len(images)


def teach_and_export(embeddings: dict[str, list[np.ndarray]], train: dict[str, int], embedder_path: Path,
                     out_dir: Path, head: str) -> Export:
    store = ClassStore(out_dir / "classes.db", model_identity(embedder_path))
    with store:
        for label, vectors in embeddings.items():
            store.teach(label, vectors[:train[label]])
        return export_tflite(store, embedder_path, out_dir / "taught.tflite", head)


def run_set(name: str, photos: dict[str, list], train: dict[str, int], embedder, embedder_path: Path,
            head: str) -> dict:
    embeddings = {label: [embedder.embed(rgb) for rgb in images] for label, images in photos.items()}
    with tempfile.TemporaryDirectory() as tmp:
        export = teach_and_export(embeddings, train, embedder_path, Path(tmp), head)
        every = [rgb for images in photos.values() for rgb in images]
        X = np.array([e for vectors in embeddings.values() for e in vectors])
        same, total = agreement(export, X, every)
    return {"set": name, "head": export.head.kind, "head_reason": export.head.reason, "photos": total,
            "agree": same, "agreement": round(same / total, 4),
            "taught": sum(train.values())}


def main(argv: list[str] | None = None) -> int:
    from appliance.model_files import default_models_dir, resolve_model
    from appliance.vision.embed import Embedder
    from appliance.vision.images import read_image
    from appliance.vision.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=5, help="flower photos taught per class")
    parser.add_argument("--head", default="auto", choices=("auto", "imprint", "softmax"))
    parser.add_argument("--flowers", type=Path, required=True, metavar="DIR",
                        help="one folder of .jpg photos per class")
    parser.add_argument("--imprinting", type=Path, required=True, metavar="DIR",
                        help="Coral's imprinting photos (LABEL_train_N.bmp, LABEL_test_N.bmp)")
    parser.add_argument("--models-dir", type=Path, help="default: the configured models folder")
    args = parser.parse_args(argv)
    path = resolve_model(EMBEDDER, models_dir=args.models_dir or default_models_dir())
    embedder = Embedder(load_model(path, device="cpu"))
    flowers = args.flowers
    photos = {d.name: [read_image(p) for p in sorted(d.glob("*.jpg"))]
              for d in sorted(flowers.iterdir()) if d.is_dir()}
    rows = [run_set("flowers", photos, {k: args.per_class for k in photos}, embedder, path, args.head)]
    imprinting = args.imprinting
    pets: dict[str, list] = {}
    train: dict[str, int] = {}
    for p in sorted(imprinting.glob("*_train_*.bmp")) + sorted(imprinting.glob("*_test_*.bmp")):
        label = p.name.split("_")[0]
        pets.setdefault(label, []).append(read_image(p))
        train[label] = train.get(label, 0) + ("_train_" in p.name)
    rows.append(run_set("imprinting", pets, train, embedder, path, args.head))
    json.dump(rows, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
