"""Result: what the inference worker made of one frame (the web API, events and LEDs read it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from appliance.learning.recognizer import Recognition
from appliance.pipeline.tap import Embedded


@dataclass(frozen=True)
class Result:
    frame_seq: int                       # the capture seq of the frame inferred
    mode: str                            # "classify" | "detect"
    recognition: Recognition | None      # smoothed over the last frames (pipeline.smoothing)
    classes: list = field(default_factory=list)   # base classifier's Class list (show_base_labels)
    objects: list = field(default_factory=list)   # detect mode: Object(id, score, bbox, label)
    timings: dict = field(default_factory=dict)   # stage -> ms for this frame
    matches: list = field(default_factory=list)   # detect mode: Recognition | None per object
    raw_recognition: Recognition | None = None  # this frame's own, before smoothing
    time: float = 0.0                    # time.monotonic() when the result was made
    embedded: Embedded | None = None     # the frame's embedding, made when a teaching burst wanted it

    def to_dict(self) -> dict:
        """JSON-ready form for the web API and events."""
        rec = self.recognition
        return {
            "frame_seq": self.frame_seq,
            "mode": self.mode,
            "recognition": _recognition(rec),
            "classes": [{"id": int(c.id), "score": round(float(c.score), 4), "label": c.label}
                        for c in self.classes],
            "objects": [
                {
                    "id": int(o.id),
                    "score": round(float(o.score), 4),
                    "label": o.label,
                    "bbox": [int(o.bbox.xmin), int(o.bbox.ymin), int(o.bbox.xmax), int(o.bbox.ymax)],
                    "match": _recognition(self.matches[i]) if i < len(self.matches) else None,
                }
                for i, o in enumerate(self.objects)
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
        }


def _recognition(rec: Recognition | None) -> dict | None:
    """class_id null = unknown; closest / closest_id name the taught class it was closest to either way
    (null when nothing is taught), similarity its cosine to that class's closest sample, reason why an
    unknown was not named it ("unsure" | "unlike")."""
    if rec is None:
        return None
    class_id = None if rec.class_id is None else int(rec.class_id)
    return {"class_id": class_id, "label": rec.label, "score": round(float(rec.score), 4),
            "closest_id": None if rec.closest_id is None else int(rec.closest_id),
            "closest": rec.closest,
            "similarity": None if rec.similarity is None else round(float(rec.similarity), 4),
            "reason": rec.reason}
