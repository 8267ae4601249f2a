"""Instruction templates: loaded from data files, looked up by id, rendered into token ids."""

import os
import re
import string
from dataclasses import dataclass, field

import yaml

BUILTIN_TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates.yaml")
PREFERENCES = ("P0", "P1", "P2")
INTENTIONS = ("I0", "I1", "I2")
TASK_FORMS = ("T0", "T1", "T2", "T3")
# "instruction": the history is written into the instruction (the paper's templates).
# "running_list": the instruction asks to continue a list, and the history is that list, one
# item per line after it; training then scores every position of a sequence in one pass
# (prompts/running_list.py). A running-list template may carry a ``request``: what the user
# asks for, written as a user turn after the list and before the answer (search tasks).
LAYOUTS = ("instruction", "running_list")
REQUEST_SLOTS = ("intention", "preference")


class TemplateError(ValueError):
    """An unknown or malformed template; the message names it."""


@dataclass(frozen=True)
class Template:
    id: str
    preference: str
    intention: str
    task_form: str
    description: str
    instruction: str
    response: str = "{candidate}"
    slots: tuple = field(default=())  # every slot: the instruction's, then the request's
    layout: str = "instruction"
    request: str = ""  # running list only: the user's request after the list

    def render(self, **values):
        return self.instruction.format(**{s: values[s] for s in _slots_of(self.instruction)})

    def render_request(self, **values):
        return self.request.format(**{s: values[s] for s in _slots_of(self.request)})


def load_templates(extra_file=None):
    """Built-in templates plus those of ``extra_file`` (the ``instruction_templates`` setting)."""
    templates = {}
    for path in [BUILTIN_TEMPLATES] + ([extra_file] if extra_file else []):
        for template in _read(path):
            templates[template.id] = template
    return templates


def get_template(templates, template_id, setting="eval_template"):
    if template_id not in templates:
        raise TemplateError(
            f"{setting}={template_id!r} is not a known template. Known ids: "
            f"{', '.join(sorted(templates))}. Add your own with instruction_templates=<yaml file>."
        )
    return templates[template_id]


def _read(path):
    if not os.path.isfile(path):
        raise TemplateError(
            f"instruction_templates={path!r} does not exist; give the path of a YAML file "
            "with a top-level 'templates:' list."
        )
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    entries = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise TemplateError(f"{path}: expected a top-level 'templates:' list.")
    return [_parse(entry, path) for entry in entries]


def _parse(entry, path):
    required = ("id", "preference", "intention", "task_form", "instruction")
    missing = [k for k in required if not isinstance(entry, dict) or k not in entry]
    if missing:
        raise TemplateError(f"{path}: template {entry!r} lacks {missing}.")
    tid = str(entry["id"])
    for key, allowed in (
        ("preference", PREFERENCES),
        ("intention", INTENTIONS),
        ("task_form", TASK_FORMS),
    ):
        if entry[key] not in allowed:
            raise TemplateError(
                f"{path}: template {tid!r} has {key}={entry[key]!r}; use one of {allowed}."
            )
    instruction = str(entry["instruction"])
    request = str(entry.get("request") or "")
    slots = tuple(dict.fromkeys(_slots_of(instruction) + _slots_of(request)))
    bad = [s for s in slots if not re.fullmatch(r"[a-z_]+", s)]
    if bad:
        raise TemplateError(f"{path}: template {tid!r} has malformed slots {bad}.")
    layout = str(entry.get("layout", "instruction"))
    if layout not in LAYOUTS:
        raise TemplateError(
            f"{path}: template {tid!r} has layout={layout!r}; use one of {LAYOUTS}."
        )
    if layout == "running_list" and (_slots_of(instruction) or entry["task_form"] != "T2"):
        raise TemplateError(
            f"{path}: template {tid!r} has layout=running_list, which continues a list of the "
            "history: it must be task_form T2 with no {slots} in its instruction (the history "
            "follows the instruction as the list; a request: line carries {intention} or "
            "{preference})."
        )
    if request and layout != "running_list":
        raise TemplateError(
            f"{path}: template {tid!r} has a request:, which only the running_list layout "
            "reads; put {intention} or {preference} in its instruction instead."
        )
    unknown = [s for s in _slots_of(request) if s not in REQUEST_SLOTS]
    if unknown:
        raise TemplateError(
            f"{path}: template {tid!r} has request slots {unknown}; a request may use "
            f"{', '.join('{' + s + '}' for s in REQUEST_SLOTS)}."
        )
    return Template(
        layout=layout,
        id=tid,
        preference=entry["preference"],
        intention=entry["intention"],
        task_form=entry["task_form"],
        description=str(entry.get("description", "")),
        instruction=instruction,
        response=str(entry.get("response", "{candidate}")),
        slots=slots,
        request=request,
    )


def _slots_of(text):
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(text) if name))
