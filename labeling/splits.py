"""Assigning items to train / validation / test, once and for good.

The split is stratified by each item's main label and decided by a hash of the image content
and the data set's name, so it is the same on every machine. The first assignment sets the
test split aside; items added later only ever go to train or validation, so every later model
version of the data set is compared on the same frozen test units.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction

from labeling.models import Dataset, DatasetItem, Split
from labeling.selectors import item_sample

TEST_SHARE = 0.15
VALIDATION_SHARE = 0.15


@dataclass(frozen=True)
class SplitCounts:
    train: int
    validation: int
    test: int
    newly_assigned: int


def _stratum(item: DatasetItem) -> str:
    sample = item_sample(item)
    if sample.defective is None:
        return "unlabelled"
    if not sample.defective:
        return "no_defect"
    return sample.classes[0] if sample.classes else "defect"


def _order_key(dataset: Dataset, item: DatasetItem) -> str:
    return hashlib.sha256(f"{dataset.name}:{item.image.sha256}".encode()).hexdigest()


@transaction.atomic
def dataset_split_assign(*, dataset: Dataset) -> SplitCounts:
    """Give every unassigned item a split; never move an item already assigned."""
    Dataset.objects.select_for_update().get(pk=dataset.pk)  # one assignment at a time per data set
    items = list(dataset.items.select_related("image").prefetch_related("annotations"))
    test_frozen = any(item.split == Split.TEST for item in items)
    pending = [item for item in items if not item.split]
    by_stratum: dict[str, list[DatasetItem]] = defaultdict(list)
    for item in pending:
        by_stratum[_stratum(item)].append(item)
    for stratum_items in by_stratum.values():
        stratum_items.sort(key=lambda item: _order_key(dataset, item))
        count = len(stratum_items)
        test_count = 0 if test_frozen else round(count * TEST_SHARE)
        validation_count = round(count * VALIDATION_SHARE)
        if count >= 3 and not test_frozen:
            test_count = max(test_count, 1)
        if count >= 3:
            validation_count = max(validation_count, 1)
        for index, item in enumerate(stratum_items):
            if index < test_count:
                item.split = Split.TEST
            elif index < test_count + validation_count:
                item.split = Split.VALIDATION
            else:
                item.split = Split.TRAIN
    DatasetItem.objects.bulk_update(pending, ["split"], batch_size=500)
    counts = {split: sum(1 for item in items if item.split == split) for split in Split.values}
    return SplitCounts(counts["train"], counts["validation"], counts["test"], len(pending))
