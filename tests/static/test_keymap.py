"""The one keymap of the station, labeling and review pages (static/js/lib/keymap.js), in Node.

Each check reads the module itself: a new action without a key, a key given to two actions, or
an action a page has but its help leaves out fails here. That each page handles and shows the
keys of its modes is checked in Chromium (tests/browser/test_station_page.py, test_labeling_page.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

KEYMAP = Path(__file__).resolve().parents[2] / "static" / "js" / "lib" / "keymap.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="no Node.js to run the keymap's module in")


def in_node(script: str):
    """Run `script` with the keymap imported as `keymap`; what it prints as JSON."""
    program = f"import * as keymap from {json.dumps(KEYMAP.as_uri())};\n{script}"
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_no_key_means_two_things_and_every_action_has_a_key():
    facts = in_node(
        "console.log(JSON.stringify({problems: keymap.keymapProblems(),"
        " keys: keymap.KEYMAP.flatMap((entry) => entry.keys),"
        " keyless: keymap.KEYMAP.filter((entry) => !entry.keys.length).map((entry) => entry.action)}))"
    )
    assert facts["problems"] == []
    assert len(facts["keys"]) == len(set(facts["keys"]))
    assert facts["keyless"] == []


def test_a_clashing_key_or_an_action_without_a_key_is_reported():
    problems = in_node(
        'keymap.KEYMAP.push({action: "archive", keys: ["p"], group: "decide", help: {station: "archive"}});'
        'keymap.KEYMAP.push({action: "rotate", keys: [], group: "see", help: {label: "rotate"}});'
        "console.log(JSON.stringify(keymap.keymapProblems()))"
    )
    assert problems == ["key P is both pass and archive", "action rotate has no key"]


def test_the_pages_keys_are_the_ones_the_issue_names():
    # one key per action across the pages: S skips everywhere, T takes the model's regions
    keys = in_node(
        "console.log(JSON.stringify(Object.fromEntries(keymap.KEYMAP.map((e) => [e.action, e.keys]))))"
    )
    assert {action: keys[action][0] for action in ("pass", "fail", "skip", "submit", "accept", "reject")} == {
        "pass": "p",
        "fail": "f",
        "skip": "s",
        "submit": "enter",
        "accept": "a",
        "reject": "r",
    }
    assert keys["fix"] != keys["fail"] and keys["brush"] != keys["reject"]
    assert keys["takeModel"] != keys["accept"]


@pytest.mark.parametrize("page", ["station", "label", "review", "unit"])
def test_each_pages_help_shows_every_action_it_has_with_its_words_filled_in(page):
    facts = in_node(
        f"const sections = keymap.helpSections({json.dumps(page)}, {{undoSeconds: 10}});"
        f"console.log(JSON.stringify({{actions: keymap.actionsOf({json.dumps(page)}),"
        " shown: sections.flatMap((section) => section.rows.map((row) => row.action)),"
        " words: sections.flatMap((section) => section.rows.map((row) => row.words)),"
        " titles: sections.map((section) => section.title)}))"
    )
    assert facts["actions"] and set(facts["shown"]) == set(facts["actions"])
    assert all(words and "{" not in words for words in facts["words"])
    assert len(facts["titles"]) == len(set(facts["titles"]))
