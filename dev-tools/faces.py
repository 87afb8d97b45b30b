"""One-off (issue 11): route cross-room imports through each room's face and write the faces."""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_layers import PURE, module_name  # noqa: E402

PKG = ROOT / "tray"
FACED = {p.parent.name for p in PKG.glob("*/__init__.py")} - {"commands", "autostart"}
EXEMPT = {("commands.app", "desktop")}  # the GUI loads only when the tray starts
IMPORT_RE = re.compile(r"^(?P<ind>[ \t]*)from tray\.(?P<room>\w+)\.(?P<mod>\w+) import (?P<names>\([^)]*\)|[^\n]+)", re.M)
MODOBJ_RE = re.compile(r"^(?P<ind>[ \t]*)from tray\.(?P<room>\w+) import (?P<mod>\w+)(?: as (?P<alias>\w+))?[ \t]*$", re.M)

exports: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))


def names_of(text: str) -> list[str]:
    return [n.strip() for n in text.strip("()").replace("\n", " ").split(",") if n.strip()]


for path in sorted(PKG.rglob("*.py")):
    name = module_name(path)
    own = name.split(".")[0]
    if name in PURE:
        continue
    text = path.read_text(encoding="utf-8")

    def face_import(m: re.Match[str]) -> str:
        room, mod = m["room"], m["mod"]
        if room == own or room not in FACED or (name, room) in EXEMPT:
            return m.group(0)
        names = names_of(m["names"])
        for n in names:
            exports[room][mod].add(n.split(" as ")[0].strip())
        return f"{m['ind']}from tray.{room} import {', '.join(names)}"

    text = IMPORT_RE.sub(face_import, text)
    for m in list(MODOBJ_RE.finditer(text)):
        room, mod, alias = m["room"], m["mod"], m["alias"] or m["mod"]
        if room == own or room not in FACED or (name, room) in EXEMPT:
            continue
        if not (PKG / room / f"{mod}.py").exists():
            continue
        attrs = sorted(set(re.findall(rf"(?<![\w.]){alias}\.(\w+)", text)))
        for a in attrs:
            exports[room][mod].add(a)
        text = re.sub(rf"(?<![\w.]){alias}\.(\w+)", r"\1", text)
        text = text.replace(m.group(0), f"{m['ind']}from tray.{room} import {', '.join(attrs)}", 1)
    path.write_text(text, encoding="utf-8")

for room, mods in exports.items():
    init = PKG / room / "__init__.py"
    text = init.read_text(encoding="utf-8")
    lines = [f"from tray.{room}.{mod} import {', '.join(sorted(ns))}" for mod, ns in sorted(mods.items())]
    every = sorted({n for ns in mods.values() for n in ns})
    block = "\n".join(lines) + "\n\n__all__ = [" + ", ".join(f'"{n}"' for n in every) + "]\n"
    if "__all__" in text:
        text = re.sub(r"__all__ = \[[^\]]*\]\n", "", text)
    m = re.match(r'(""".*?"""\n)', text, re.S)
    head = m.group(1) if m else ""
    rest = text[len(head):]
    init.write_text(head + "\nfrom __future__ import annotations\n\n" + block + rest.replace("from __future__ import annotations\n", ""),
                    encoding="utf-8")
    print(room, every)
