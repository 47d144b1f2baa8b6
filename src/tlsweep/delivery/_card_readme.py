"""``README.md`` beside every export: the model card for people, with a front matter that
Hugging Face's hub reads. No TensorFlow here."""

from __future__ import annotations

import json
from typing import Any

from tlsweep.delivery._modelcard import ModelCard
from tlsweep.measures import Headline


def render_page(card: ModelCard, folder: str) -> str:
    """README.md for the export folder ``folder`` (its name): front matter that Hugging Face's
    hub reads, then the card in plain words."""
    front = {"library_name": "keras", "pipeline_tag": "image-classification",
             "tags": ["tlsweep", "transfer-learning", "image-classification", card.backbone],
             "metrics": ["accuracy", "balanced_accuracy"]}
    lines = ["---", *(f"{key}: {json.dumps(value)}" for key, value in front.items()), "---", "",
             f"# {card.study}: {card.source} ({card.made_by})", "",
             f"An image classifier made by tlsweep {card.versions.get('tlsweep') or ''}: "
             f"{_what(card)} on the study `{card.study}`, exported as "
             f"{', '.join(card.files) or card.format}. It takes raw RGB uint8 images of any "
             f"size and returns {len(card.class_names)} class probabilities, in the order of "
             f"`labels.txt`.", "",
             "## Intended use", "", card.intended_use or "Not recorded.", "",
             "## Evaluation", "", *_evaluation(card.metrics), "",
             "## Training data", "", *_counts(card), "",
             "## Limitations", "", *(f"- {item}" for item in card.limitations), "",
             "## How it was made", "", *_made(card), "",
             "## Use", "", "```", f"tlsweep predict {folder}/ images/",
             "```", "", "Every field is in `card.json` beside this file.", ""]
    return "\n".join(lines)


def _what(card: ModelCard) -> str:
    if card.trial is None:
        return f"a logistic-regression head on {card.backbone}'s frozen features, fitted"
    return f"{card.backbone} fine-tuned ({card.made_by} of trial {card.trial})"


def _evaluation(metrics: dict[str, Any]) -> list[str]:
    headline, probe = metrics.get("headline"), metrics.get("probe_on_the_same_images")
    found = []
    if headline:
        found.append(f"- Headline: {Headline.from_dict(headline).text()}")
    if probe:
        found.append(f"- The class-weighted linear probe on the same images: "
                     f"{Headline.from_dict(probe).text()}")
    test = metrics.get("test") or {}
    for metric in ("accuracy", "balanced_accuracy"):
        if metric in test:
            found.append(f"- Test {metric.replace('_', ' ')} ({test.get('n')} images): "
                         f"{_estimate(test[metric])}")
    if test.get("method"):
        found.append(f"- Intervals: 95%, {test['method']}")
    return found or ["No held-out score was recorded."]


def _estimate(value: dict[str, Any]) -> str:
    low, high = value.get("low"), value.get("high")
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return f"{value.get('value', float('nan')):.3f}{interval}"


def _counts(card: ModelCard) -> list[str]:
    data = card.training_data
    counts = data.get("class_counts") or {}
    if not counts:
        return ["Not recorded."]
    splits = list(counts)
    folders = data.get("folders") or {"dir": data.get("folder")}
    rows = ["; ".join(f"{key}: `{path}`" for key, path in folders.items()), "",
            "| class | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    rows += [f"| {name} | " + " | ".join(str(counts[s].get(name, 0)) for s in splits) + " |"
             for name in card.class_names]
    return rows


def _made(card: ModelCard) -> list[str]:
    params = ", ".join(f"{k}={v}" for k, v in card.params.items()) or "the linear probe's"
    versions = ", ".join(f"{k} {v}" for k, v in card.versions.items() if v)
    quantized = [f"- {key}: test accuracy {change.get('accuracy_change', 0):+.3f}, balanced "
                 f"{change.get('balanced_accuracy_change', 0):+.3f} against float32 on "
                 f"{change.get('images')} {change.get('split')} images"
                 for key, change in card.quantization.items()]
    return [f"- Base weights: {card.base_weights or 'not recorded'}",
            f"- Settings: {params}",
            f"- Seed {card.seed}; sweep file sha256 {card.sweep_sha256 or 'not recorded'}",
            f"- Made {card.created or 'at an unrecorded time'} with {versions}", *quantized]
