"""The two places browse writes FiftyOne's storage directly, each with its public-API fallback.

Building ``fo.Sample``/``Label`` objects and serialising them back costs most of the ingest
time, so new samples (:func:`add_specs`) and label updates (:func:`write_docs`) go in one bulk
write to the dataset's sample collection (``ds._sample_collection``, ``ds._doc.id``), as the
documents FiftyOne itself stores (:meth:`SampleSpec.document`). When those private attributes
are missing (another FiftyOne version) or ``fast=False``, the public ``add_samples`` /
``set_values`` path does the same work. ``tests/gaitdata/test_browse.py::
test_fast_ingest_matches_fiftyone_path`` checks that both paths read back identically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SampleSpec:
    """One sample to add: its slice, media file, tags, size, metadata fields and label documents."""

    slice: str
    group_id: str
    filepath: str
    tags: tuple[str, ...]
    width: int
    height: int
    fields: dict[str, Any]
    docs: dict[str, dict | None]

    def sample(self, fo: Any) -> Any:
        """A ``fo.Sample`` with Label objects (FiftyOne's public path)."""
        s = fo.Sample(filepath=self.filepath, group=fo.Group(id=self.group_id, name=self.slice), tags=list(self.tags),
                      metadata=fo.ImageMetadata(width=self.width, height=self.height), **self.fields)  # fmt: skip
        for f, doc in self.docs.items():
            s[f] = None if doc is None else getattr(fo, doc["_cls"]).from_dict(doc)
        return s

    def document(self, dataset_id: Any, now: Any, rand: float) -> dict:
        """The stored document, in the layout FiftyOne itself writes for a grouped image sample."""
        from bson import ObjectId

        return {
            "_id": ObjectId(), "_dataset_id": dataset_id, "_media_type": "image", "_rand": rand,
            "filepath": self.filepath, "tags": list(self.tags), "created_at": now, "last_modified_at": now,
            "metadata": {"_cls": "ImageMetadata", "width": self.width, "height": self.height},
            "group": {"_cls": "Group", "_id": ObjectId(self.group_id), "name": self.slice},
            **self.fields, **self.docs,
        }  # fmt: skip


def add_specs(fo: Any, ds: Any, specs: list[SampleSpec], fast: bool = True) -> None:
    """Insert samples in one bulk write to the dataset's sample collection.

    A sample of a slice the dataset does not have yet goes through ``add_samples`` (FiftyOne
    registers the slice and its media type); the rest are stored directly in the layout FiftyOne
    writes itself, which is several times faster than building and serialising Sample and Label
    objects. Without access to the collection (another FiftyOne version) everything takes the
    public path (as with ``fast=False``).
    """
    import random
    from datetime import UTC, datetime

    coll = getattr(ds, "_sample_collection", None) if fast else None
    dataset_id = getattr(ds, "_doc", None) and getattr(ds._doc, "id", None)
    rest = list(specs)
    if coll is None or dataset_id is None:
        ds.add_samples([s.sample(fo) for s in rest], progress=False, validate=False)
        return
    from bson import ObjectId

    while rest:
        known = set(ds.group_slices or [])
        new_slice = next((i for i, s in enumerate(rest) if s.slice not in known), None)
        if new_slice is None:
            break
        ds.add_samples([rest.pop(new_slice).sample(fo)], progress=False, validate=False)
    if not rest:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random()
    oid = ObjectId(str(dataset_id))
    docs = [s.document(oid, now, rng.random() * 0.001 + 0.999) for s in rest]
    coll.insert_many(docs, ordered=False)


def write_docs(fo: Any, ds: Any, updates: dict[str, dict[str, dict | None]], fast: bool = True) -> None:
    """Set label fields from FiftyOne documents on samples ``{sample id: {field: doc or None}}``.

    One bulk write straight to the dataset's sample collection: building FiftyOne Label objects
    and serialising them back costs most of the ingest time. The fields must be declared first
    (see :func:`gaitdata.browse.build.declare_label_fields`). Falls back to ``set_values`` with
    Label objects when the collection is not reachable.
    """
    if not updates:
        return
    coll = getattr(ds, "_sample_collection", None) if fast else None
    if coll is None:  # another FiftyOne version (or fast=False): the public, slower path
        by_field: dict[str, dict[str, Any]] = {}
        for sid, fields in updates.items():
            for f, doc in fields.items():
                by_field.setdefault(f, {})[sid] = None if doc is None else getattr(fo, doc["_cls"]).from_dict(doc)
        view = ds.select_group_slices()
        for f, vals in by_field.items():
            view.select(list(vals)).set_values(f, vals, key_field="id")
        return
    from datetime import UTC, datetime

    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.now(UTC).replace(tzinfo=None)
    ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": {**fields, "last_modified_at": now}}) for sid, fields in updates.items()]
    for start in range(0, len(ops), 1000):
        coll.bulk_write(ops[start : start + 1000], ordered=False)
