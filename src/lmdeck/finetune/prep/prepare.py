"""From dataset rows to training data: convert, scrub, deduplicate, render, filter by length, split.

The steps, in order, each counting what it drops in the data card:

1. **convert** each row to a chat conversation (``no_expected``, ``unusable``);
2. **scrub** every message and answer with the PII scrubber (``options.scrub_pii``; the card
   counts the rows it changed);
3. **deduplicate** exact and near duplicates (``options.dedupe``); of duplicates, a
   correction is kept over a trace's own answer, then the earlier row;
4. **render** the messages through the base model's chat template (the prompt) and close the
   answer with the template's end token (the completion);
5. **filter** by token length, prompt plus completion (``too_short``, ``too_long``);
6. **split** into train and validation, stratified by ``options.stratify_by``.

::

    prepared = prepare_dataset(rows, PrepOptions(stratify_by="skill"), base=load_base_model("demo"),
                               dataset="counts@3")
    prepared.card.dropped      # {'near_duplicate': 4, 'no_expected': 2}
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from lmdeck.finetune.prep.base_model import BaseModelInfo
from lmdeck.finetune.prep.conversion import Conversation, convert
from lmdeck.finetune.prep.dedup import Deduplicator
from lmdeck.finetune.prep.examples import ChatExample
from lmdeck.finetune.prep.lengths import length_stats
from lmdeck.finetune.prep.prepared import PreparedDataset
from lmdeck.finetune.prep.scrubbing import PiiScrubber, TextScrubber
from lmdeck.finetune.prep.split import stratified_split
from lmdeck.protocol.registry import DatasetRow
from lmdeck.protocol.training import DataCard, LengthStats, PrepOptions

#: The stratum name the card gives rows without a value for ``stratify_by``.
NO_STRATUM = "(none)"

#: Kept first among duplicates: a person's correction over a trace's own answer over an uploaded row.
_SOURCE_RANK = {"correction": 0, "trace": 1, "manual": 2}


def _scrubbed(conversation: Conversation, scrubber: TextScrubber) -> Conversation:
    messages = [{"role": m["role"], "content": scrubber.scrub(m["content"])} for m in conversation.messages]
    return Conversation(
        messages, scrubber.scrub(conversation.answer), conversation.stratum, conversation.trace_id, conversation.source
    )


def _deduplicated(conversations: list[Conversation], options: PrepOptions, dropped: Counter[str]) -> list[Conversation]:
    dedupe = Deduplicator(options.near_duplicate_threshold)
    order = sorted(range(len(conversations)), key=lambda i: (_SOURCE_RANK[conversations[i].source], i))
    kept: set[int] = set()
    for index in order:
        reason = dedupe.check(conversations[index].text())
        if reason is None:
            kept.add(index)
        else:
            dropped[reason] += 1
    return [c for i, c in enumerate(conversations) if i in kept]


def _strata_counts(train: list[ChatExample], validation: list[ChatExample]) -> dict[str, dict[str, int]]:
    strata: dict[str, dict[str, int]] = {}
    for side, examples in (("train", train), ("validation", validation)):
        for example in examples:
            counts = strata.setdefault(example.stratum or NO_STRATUM, {"train": 0, "validation": 0})
            counts[side] += 1
    return dict(sorted(strata.items()))


def prepare_dataset(
    rows: Sequence[DatasetRow],
    options: PrepOptions,
    *,
    base: BaseModelInfo,
    dataset: str,
    scrubber: TextScrubber | None = None,
) -> PreparedDataset:
    """Training and validation examples from ``rows`` for ``base``, with their data card.

    ``dataset`` names the rows' origin in the card (``name@version``). ``scrubber`` replaces the
    PII guardrail's scrubber when ``options.scrub_pii`` is set (ignored when it is not).
    Blocking and CPU-bound (the first PII check builds the analyzer, seconds): call it from a
    worker thread. Never raises for a bad row: it is dropped and counted.
    """
    dropped: Counter[str] = Counter()
    conversations: list[Conversation] = []
    for row in rows:
        converted = convert(row, options.stratify_by)
        if isinstance(converted, Conversation):
            conversations.append(converted)
        else:
            dropped[converted] += 1

    scrubbed = 0
    if options.scrub_pii:
        active = scrubber if scrubber is not None else PiiScrubber()
        cleaned = [_scrubbed(c, active) for c in conversations]
        scrubbed = sum(1 for before, after in zip(conversations, cleaned, strict=True) if before != after)
        conversations = cleaned

    if options.dedupe:
        conversations = _deduplicated(conversations, options, dropped)

    rendered = [
        ChatExample(
            prompt=base.template.render(c.messages),
            completion=c.answer + base.template.end,
            stratum=c.stratum,
            trace_id=c.trace_id,
            source=c.source,
            messages=c.messages,
            answer=c.answer,
        )
        for c in conversations
    ]
    lengths = base.count_tokens([e.prompt + e.completion for e in rendered])
    examples: list[ChatExample] = []
    kept_lengths: list[int] = []
    for example, length in zip(rendered, lengths, strict=True):
        if length < options.min_tokens:
            dropped["too_short"] += 1
        elif length > options.max_tokens:
            dropped["too_long"] += 1
        else:
            examples.append(example)
            kept_lengths.append(length)

    indexed = list(range(len(examples)))
    train_at, validation_at = stratified_split(
        indexed, [examples[i].stratum for i in indexed], fraction=options.validation_fraction, seed=options.seed
    )
    train = [examples[i] for i in train_at]
    validation = [examples[i] for i in validation_at]
    stats: dict[str, LengthStats] = {}
    for side, at in (("train", train_at), ("validation", validation_at)):
        found = length_stats([kept_lengths[i] for i in at])
        if found is not None:
            stats[side] = found

    card = DataCard(
        dataset=dataset,
        base_model=base.name,
        chat_template=base.template_layout,
        options=options,
        rows_in=len(rows),
        train=len(train),
        validation=len(validation),
        dropped=dict(sorted(dropped.items())),
        scrubbed=scrubbed,
        strata=_strata_counts(train, validation) if options.stratify_by else {},
        sources=dict(sorted(Counter(e.source for e in examples).items())),
        lengths=stats,
        trace_ids=list(dict.fromkeys(e.trace_id for e in examples if e.trace_id)),
        created_at=time.time(),
    )
    return PreparedDataset(train=train, validation=validation, card=card)
