"""A new coverage year, added by the bureau itself (docs/NEW-YEAR.md).

`medins params new YEAR` writes policy_params/YEAR.toml from the latest earlier
year: every value as it was (the dates that move with the year moved on), its
citation emptied and `confirmed = false` beside it, with last year's value and
citation in a comment above, so a clerk can look each one up in the new notice.
A region's overrides of that year get the same, appended to its file.
`medins params check YEAR` lists what is still open; `load_params` refuses the
year until nothing is (pipeline/params.py, `open_items`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from pipeline.errors import ParamsError, ParamsUnconfirmedError
from pipeline.params import VALUE_KEYS, OpenItem, load_params, open_items, read_toml, year_files
from pipeline.vocabulary import PARAMETER_NAMES

# Dates of a year's own calendar (the collection period, the benefit start of 赣医保发〔2025〕12号 (八)3):
# moved on with the year in the scaffold. newborn_full_from is not one: it is the birth date from which a
# policy applies, whatever the year.
MOVES_WITH_YEAR = ("collection_start", "collection_end", "lapsed_early_benefit_start")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _years(base: Path) -> list[int]:
    return sorted(int(p.stem) for p in base.glob("[0-9][0-9][0-9][0-9].toml"))


def _toml(value: Any) -> str:
    """A value as TOML writes it (the kinds policy_params holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, dt.date)):
        return value.isoformat() if isinstance(value, dt.date) else repr(value)
    if isinstance(value, str):  # a JSON string is a TOML basic string, but for DEL
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise ParamsError(f"cannot write {value!r} into a policy_params file")


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _toml(name)


def _moved(value: Any, years: int) -> Any:
    """A date `years` later (29 February -> 28 February)."""
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime) or not years:
        return value
    day = 28 if (value.month, value.day) == (2, 29) else value.day
    return value.replace(year=value.year + years, day=day)


def _shown(raw: dict) -> str:
    """A table's value(s) as last year's comment shows them."""
    if "not_given" in raw:
        return "未规定 not given"
    shown = [
        f"{v} 个月" if k == "window_months" else f"{v} 天" if k == "window_days" else _toml(v)
        for k, v in raw.items()
        if k not in ("cite", "not_given", "confirmed")
    ]
    return ", ".join(shown)


def _value_table(header: str, raw: dict, source_year: int, what: str, shift_years: int = 0) -> list[str]:
    """One cited value (or window, or label list) for a clerk to check: last year's value and citation in a
    comment, the value kept, the citation emptied, `confirmed = false`."""
    cite = str(raw.get("not_given", raw.get("cite", ""))).replace("\n", " ")
    lines = [f"[{header}]", f"# {what}{source_year}年度：{_shown(raw)} ← {cite or '（无出处）'}"]
    for field, value in raw.items():
        if field in ("cite", "not_given"):
            lines.append(f'{field} = ""')
        elif field != "confirmed":
            lines.append(f"{_key(field)} = {_toml(_moved(value, shift_years))}")
    if "cite" not in raw and "not_given" not in raw:
        lines.append('cite = ""')
    return [*lines, "confirmed = false", ""]


def _texts_table(header: str, raw: dict, note: str) -> list[str]:
    """A table of texts that each cite a notice (rule_basis, label_cites): kept for rewriting, unconfirmed."""
    lines = [f"# {note}", f"[{header}]", "confirmed = false"]
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in raw.items() if k != "confirmed"]
    return [*lines, ""]


def _header(year: int, source_year: int, today: dt.date) -> list[str]:
    return [
        f"# {year}年度（待遇年度 {year}）城乡居民医保政策参数：底稿，尚未确认。",
        f"# 由 `medins params new {year}` 于 {today.isoformat()} 照 {source_year}.toml 写出：每一项仍是{source_year}年度的值",
        "# （集中征缴期等随年度变化的日期已顺延），出处 cite 为空，标有 confirmed = false。",
        f"# 对照{year}年度的通知逐项：",
        "#   1. 数值有变的改 value；新通知未规定的（只限大病保险筹资、中央财政补助比例、参保率目标），",
        '#      删去 value 和 cite，改写 not_given = "文号 条款 未规定的说明"；',
        '#   2. 在 cite 中写文号和条款，如 cite = "赣医保发〔2026〕N号 (五) 居民个人缴费标准为每人每年…元"；',
        "#   3. 把 confirmed = false 改为 confirmed = true。",
        f"# 每项上方的注释是{source_year}年度的值和出处，供对照。`medins params check {year}` 列出尚未完成的项；",
        f"# 全部完成之前，`medins run --coverage-year {year}` 拒绝运行。详见 docs/NEW-YEAR.md。",
        "",
        f"coverage_year = {year}",
        "",
    ]


def _year_text(year: int, source_year: int, data: dict, today: dt.date) -> str:
    """policy_params/<year>.toml: last year's file with every value unconfirmed and uncited."""
    lines = _header(year, source_year, today)
    for key in VALUE_KEYS:
        if isinstance(data.get(key), dict):
            shift = year - source_year if key in MOVES_WITH_YEAR else 0
            lines += _value_table(key, data[key], source_year, f"{PARAMETER_NAMES.get(key, key)}。", shift)
    for name, raw in data.get("special_events", {}).items():
        lines += _value_table(f"special_events.{_key(name)}", raw, source_year, f"特殊情形“{name}”的期限。")
    if isinstance(data.get("special_status"), dict):
        lines += _value_table("special_status", data["special_status"], source_year, "不设待遇等待期的身份。")
    if isinstance(data.get("label_cites"), dict):
        note = (
            f"本年度通知重复列出的资助类别及其条款：仍是{source_year}年度的引用，按新通知改写后把 confirmed 改为 true"
        )
        lines += _texts_table("label_cites", data["label_cites"], note)
    if isinstance(data.get("rule_basis"), dict):
        note = (
            f"determinations.rule_basis 的说明文字：仍引用{source_year}年度的通知，按新通知改写文号、条款和日期后"
            "把 confirmed 改为 true（{event}、{window} 由程序填入特殊情形及其期限）"
        )
        lines += _texts_table("rule_basis", data["rule_basis"], note)
    return "\n".join(lines)


def _region_additions(year: int, source_year: int, base: Path, today: dt.date) -> list[tuple[Path, str]]:
    """(region file, text to append): each region's overrides of the source year, as the year's scaffold."""
    additions = []
    for path in sorted((base / "regions").glob("*.toml")):
        data = read_toml(path)
        overrides = data.get(str(source_year))
        if str(year) in data or not isinstance(overrides, dict):
            continue
        lines = [
            "",
            f"# {year}年度：由 `medins params new {year}` 于 {today.isoformat()} 照{source_year}年度写出的底稿；",
            f"# 按本地区{year}年度的文件逐项核对，写出处，把 confirmed 改为 true（docs/NEW-YEAR.md）。",
        ]
        for key, raw in overrides.items():
            shift = year - source_year if key in MOVES_WITH_YEAR else 0
            what = f"{PARAMETER_NAMES.get(key, key)}。"
            lines += _value_table(f"{year}.{_key(key)}", raw, source_year, what, shift)
        text = path.read_text(encoding="utf-8")
        additions.append((path, ("" if text.endswith("\n") else "\n") + "\n".join(lines)))
    return additions


def _exists(path: Path, year: int) -> ParamsError:
    return ParamsError(
        f"{year}年度的政策参数已存在，不会覆盖 / policy parameters for {year} exist already and are not "
        f"overwritten: {path}; edit that file (`medins params check {year}` lists what is left)"
    )


def write_new_year(year: int, base: Path, today: dt.date) -> list[Path]:
    """Write policy_params/<year>.toml (and the regions' overrides of that year) from the latest earlier
    year; the files written. Never overwrites a year."""
    target = base / f"{year}.toml"
    if target.exists():
        raise _exists(target, year)
    earlier = [y for y in _years(base) if y < year]
    if not earlier:
        have = ", ".join(str(y) for y in _years(base)) or "none"
        raise ParamsError(
            f"没有早于{year}年度的政策参数可作底稿 / no earlier coverage year to start {year} from (have: {have})"
        )
    source_year = earlier[-1]
    text = _year_text(year, source_year, read_toml(base / f"{source_year}.toml"), today)
    additions = _region_additions(year, source_year, base, today)
    try:
        with target.open("x", encoding="utf-8") as f:  # "x": a file made meanwhile is not overwritten either
            f.write(text)
    except FileExistsError:
        raise _exists(target, year) from None
    for path, block in additions:
        with path.open("a", encoding="utf-8") as f:
            f.write(block)
    return [target, *(path for path, _ in additions)]


def check_year(year: int, region: str | None, base: Path) -> list[OpenItem]:
    """What is still unconfirmed or uncited in a year and the regions' overrides of it (one region, or
    all). With nothing open the year is loaded for each region too, so a malformed value is named now,
    not at night."""
    regions = [region] if region else sorted(p.stem for p in (base / "regions").glob("*.toml"))
    for name in regions:
        year_files(year, name, base)  # the year and the region exist, or say what does
    items = open_items(year, regions, base)
    if not items:
        for name in regions:
            load_params(year, name, base)
    return items


def open_items_error(year: int, items: list[OpenItem]) -> ParamsUnconfirmedError:
    """The last line of `medins params check` when something is open (the lines above list it)."""
    return ParamsUnconfirmedError(
        f"{year}年度还有{len(items)}项政策参数未确认或未注明出处（见上） / coverage year {year}: "
        f"{len(items)} values above not yet confirmed and cited (docs/NEW-YEAR.md)"
    )
