"""Load and check the policy parameters of one coverage year and region.

The numbers of the notices live in ``policy_params/`` (TOML), each beside its
citation. This module reads them once into a frozen object; any missing year,
unknown key or bad value fails here, naming the file and the key. A year the
bureau added with `medins params new` is refused until every value in it is
confirmed and cited (`open_items`, docs/NEW-YEAR.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.errors import ParamsError, ParamsUnconfirmedError

PARAMS_DIR = Path(__file__).resolve().parent.parent / "policy_params"
# Another policy_params folder (tests; a trial of a new year's file away from the installed one).
PARAMS_DIR_ENV = "MEDINS_PARAMS_DIR"
TIERS = ("full", "fixed", "none")
TIER_RANK = {"none": 0, "fixed": 1, "full": 2}
# labels giving a tier are tested as the bits of one Int64 (rules/tier.py: with_label_tier)
MAX_TIER_LABELS = 62
AGE_RULES = ("", "elderly", "minor_or_elderly")
BENEFIT_MODELS = ("wait_days", "wait_months", "continuity")
NEWBORN_MODELS = ("registration_only", "payment", "registration")


@dataclass(frozen=True)
class Cited:
    """A value from a notice with its citation (document number + clause)."""

    value: Any
    cite: str


@dataclass(frozen=True)
class Label:
    name: str
    aliases: tuple[str, ...]
    tier: str
    age_rule: str
    subsidized_object: bool
    cite: str
    medical_assistance: bool = False


@dataclass(frozen=True)
class LabelGroup:
    """Labels reported together in the progress of the subsidy lists (docs/RULES.md §9)."""

    name: str
    labels: tuple[str, ...]
    cite: str


@dataclass(frozen=True)
class SpecialEvent:
    name: str
    window_months: int | None
    window_days: int | None
    cite: str


@dataclass(frozen=True)
class Params:
    """Every number and date of docs/RULES.md §2, §7 for one coverage year and region."""

    coverage_year: int
    region: str
    individual_standard_yuan: Cited
    fiscal_per_capita_yuan: Cited
    full_subsidy_yuan: Cited
    fixed_subsidy_yuan: Cited
    critical_illness_per_capita_yuan: Cited  # value None: not given
    central_share: Cited  # value None: not given
    collection_start: Cited
    collection_end: Cited
    benefit_model: Cited
    subsidized_no_waiting: Cited
    newborn_model: Cited
    newborn_window_days: Cited
    newborn_full_from: Cited
    newborn_full_years: Cited
    waiting_days: Cited | None
    waiting_months: Cited | None
    lapsed_early_benefit_start: Cited | None
    newborn_grace_months: Cited | None
    special_events: tuple[SpecialEvent, ...]
    special_status_labels: tuple[str, ...]
    special_status_cite: str
    labels: tuple[Label, ...]
    event_types: tuple[tuple[str, tuple[str, ...]], ...]
    elderly_age: int
    adult_age: int
    ages_cite: str
    low_income_enrolment_target: Cited  # value None: the notice names no rate
    rule_basis: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] = field(default=())
    groups: tuple[LabelGroup, ...] = ()
    # label -> the clause of this year's own notice that names it (where the notice repeats the label)
    label_cites: tuple[tuple[str, str], ...] = ()

    def label_cite(self, name: str) -> str:
        """The clause a tier-giving label is cited with: this year's notice where it repeats the
        label, else labels.toml's (the notice that defined it)."""
        own = dict(self.label_cites).get(name)
        return own or next((lab.cite for lab in self.labels if lab.name == name), "")

    def need(self, name: str) -> Any:
        """The value of a parameter the year's models require (checked present when loading)."""
        cited = getattr(self, name)
        if cited is None or cited.value is None:
            raise ParamsError(f"policy parameter '{name}' is not given for {self.coverage_year}")
        return cited.value

    def basis(self, rule_id: str) -> str:
        return dict(self.rule_basis).get(rule_id, "")

    # --- derived, for the rules -------------------------------------------
    @property
    def year_start(self) -> dt.date:
        return dt.date(self.coverage_year, 1, 1)

    @property
    def year_end(self) -> dt.date:
        return dt.date(self.coverage_year, 12, 31)

    def fen(self, name: str) -> int | None:
        """A yuan parameter as integer fen (None where the notice gives none)."""
        v = getattr(self, name).value
        return None if v is None else int(Decimal(str(v)) * 100)

    def label_aliases(self) -> dict[str, str]:
        """Every accepted spelling of a label -> its canonical name."""
        out: dict[str, str] = {}
        for lab in self.labels:
            out[lab.name] = lab.name
            for a in lab.aliases:
                out[a] = lab.name
        return out

    def event_aliases(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, aliases in self.event_types:
            out[name] = name
            for a in aliases:
                out[a] = name
        return out

    def as_rows(self) -> list[dict[str, str]]:
        """The parameters with their citations, for reports and `explain`."""
        rows = []
        for key in (
            "individual_standard_yuan",
            "fiscal_per_capita_yuan",
            "full_subsidy_yuan",
            "fixed_subsidy_yuan",
            "critical_illness_per_capita_yuan",
            "central_share",
            "collection_start",
            "collection_end",
            "benefit_model",
            "waiting_days",
            "waiting_months",
            "lapsed_early_benefit_start",
            "subsidized_no_waiting",
            "newborn_model",
            "newborn_window_days",
            "newborn_grace_months",
            "newborn_full_from",
            "newborn_full_years",
            "low_income_enrolment_target",
        ):
            c = getattr(self, key)
            if c is None:
                continue
            rows.append({"parameter": key, "value": "未规定" if c.value is None else str(c.value), "citation": c.cite})
        for ev in self.special_events:
            window = f"{ev.window_months}个月" if ev.window_months else f"{ev.window_days}天"
            rows.append({"parameter": f"special_event:{ev.name}", "value": window, "citation": ev.cite})
        return rows

    def digest(self) -> str:
        """sha256 of every value loaded (each field, nested ones too; dates and Decimals as text),
        recorded in `runs.params_digest`: `medins explain` compares it with today's."""
        payload = json.dumps(asdict(self), ensure_ascii=False, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


_SCALARS: dict[str, tuple[type, ...]] = {
    "individual_standard_yuan": (int,),
    "fiscal_per_capita_yuan": (int,),
    "full_subsidy_yuan": (int,),
    "fixed_subsidy_yuan": (int,),
    "critical_illness_per_capita_yuan": (int,),
    "central_share": (float, int),
    "collection_start": (dt.date,),
    "collection_end": (dt.date,),
    "benefit_model": (str,),
    "subsidized_no_waiting": (bool,),
    "newborn_model": (str,),
    "newborn_window_days": (int,),
    "newborn_full_from": (dt.date,),
    "newborn_full_years": (int,),
    "waiting_days": (int,),
    "waiting_months": (int,),
    "lapsed_early_benefit_start": (dt.date,),
    "newborn_grace_months": (int,),
    "low_income_enrolment_target": (float,),
}
VALUE_KEYS: tuple[str, ...] = tuple(_SCALARS)  # the keys holding one cited value, in the files' order
_OPTIONAL_VALUE = {"critical_illness_per_capita_yuan", "central_share", "low_income_enrolment_target"}
_MODEL_NEEDS = {
    "wait_days": ("waiting_days",),
    "wait_months": ("waiting_months",),
    "continuity": ("waiting_months", "lapsed_early_benefit_start"),
}
_NEWBORN_NEEDS = {"payment": ("newborn_grace_months",)}
_TOP_KEYS = set(_SCALARS) | {"coverage_year", "special_events", "special_status", "rule_basis", "label_cites"}
# rule_basis texts each benefit model must give (docs/RULES.md §4), besides the shared ones.
_BASIS_NEEDS = {
    "wait_days": ("in_collection_period", "late_waiting"),
    "wait_months": ("in_collection_period", "late_waiting"),
    "continuity": (
        "continuous_before_year",
        "continuous_in_period",
        "lapsed_before_year",
        "lapsed_in_year",
        "continuous_after_period",
    ),
}
_BASIS_SHARED = (
    "special_status",
    "special_event",
    "newborn_from_birth",
    "refund_overpaid",
    "refund_identified_in_period",
    "refund_identified_after_period",
)


def read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ParamsError(f"{path}: not valid TOML: {e}") from None


def _cited(path: Path, key: str, raw: Any, shown_key: str | None = None) -> Cited:
    shown = shown_key or key
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: key '{shown}' must be a table with value and cite")
    extra = set(raw) - {"value", "cite", "not_given", "confirmed"}
    if extra:
        raise ParamsError(f"{path}: key '{shown}' has unknown field(s) {sorted(extra)}")
    if "not_given" in raw:
        if key not in _OPTIONAL_VALUE:
            raise ParamsError(f"{path}: key '{shown}' cannot be 'not_given'; the rules need a value")
        return Cited(None, str(raw["not_given"]))
    if "value" not in raw or not str(raw.get("cite", "")).strip():
        raise ParamsError(f"{path}: key '{shown}' needs both 'value' and a non-empty 'cite'")
    value = raw["value"]
    types = _SCALARS[key]
    if isinstance(value, bool) and bool not in types:
        raise ParamsError(f"{path}: key '{shown}' has bad value {value!r}")
    if not isinstance(value, types) or isinstance(value, dt.datetime):
        raise ParamsError(f"{path}: key '{shown}' has bad value {value!r} (expected {types[0].__name__})")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ParamsError(f"{path}: key '{shown}' has negative value {value!r}")
    if key in ("central_share", "low_income_enrolment_target") and not 0 <= float(str(value)) <= 1:
        raise ParamsError(f"{path}: key '{shown}' must be between 0 and 1, got {value!r}")
    if key == "central_share":
        value = Decimal(str(value))
    return Cited(value, str(raw["cite"]))


def _load_groups(path: Path, data: dict, names: set[str]) -> tuple[LabelGroup, ...]:
    groups = []
    for raw in data.get("group", []):
        if set(raw) != {"name", "labels", "cite"} or not raw["cite"]:
            raise ParamsError(f"{path}: a [[group]] needs exactly name, labels and a cite")
        unknown = [lab for lab in raw["labels"] if lab not in names]
        if unknown:
            raise ParamsError(f"{path}: group '{raw['name']}' names unknown label(s) {unknown}")
        groups.append(LabelGroup(raw["name"], tuple(raw["labels"]), raw["cite"]))
    return tuple(groups)


def _load_labels(path: Path) -> tuple[tuple[Label, ...], tuple, int, int, str, tuple[LabelGroup, ...]]:
    data = read_toml(path)
    labels = []
    for i, raw in enumerate(data.get("label", [])):
        unknown = set(raw) - {"name", "aliases", "tier", "age_rule", "subsidized_object", "medical_assistance", "cite"}
        if unknown:
            raise ParamsError(f"{path}: label #{i + 1} has unknown key(s) {sorted(unknown)}")
        if raw.get("tier") not in TIERS:
            raise ParamsError(f"{path}: label '{raw.get('name')}' has bad tier {raw.get('tier')!r}")
        if raw.get("age_rule", "") not in AGE_RULES:
            raise ParamsError(f"{path}: label '{raw.get('name')}' has bad age_rule {raw.get('age_rule')!r}")
        if not raw.get("cite"):
            raise ParamsError(f"{path}: label '{raw.get('name')}' needs a 'cite'")
        labels.append(
            Label(
                name=raw["name"],
                aliases=tuple(raw.get("aliases", [])),
                tier=raw["tier"],
                age_rule=raw.get("age_rule", ""),
                subsidized_object=bool(raw.get("subsidized_object", raw["tier"] != "none")),
                cite=raw["cite"],
                medical_assistance=bool(raw.get("medical_assistance", False)),
            )
        )
    events = tuple((e["name"], tuple(e.get("aliases", []))) for e in data.get("event", []))
    ages = data.get("ages", {})
    try:
        elderly, adult, cite = int(ages["elderly_age"]), int(ages["adult_age"]), str(ages["cite"])
    except KeyError as e:
        raise ParamsError(f"{path}: [ages] needs key {e}") from None
    if sum(TIER_RANK[lab.tier] > 0 for lab in labels) > MAX_TIER_LABELS:
        raise ParamsError(
            f"{path}: at most {MAX_TIER_LABELS} labels may give a tier (one bit each, pipeline/rules/tier.py)"
        )
    seen: dict[str, str] = {}
    for lab in labels:
        for spelling in (lab.name, *lab.aliases):
            if spelling in seen:
                raise ParamsError(f"{path}: label spelling '{spelling}' is given twice")
            seen[spelling] = lab.name
    return tuple(labels), events, elderly, adult, cite, _load_groups(path, data, set(seen.values()))


def _label_cites(path: Path, data: dict, names: set[str]) -> tuple[tuple[str, str], ...]:
    cites = {k: v for k, v in data.get("label_cites", {}).items() if k != "confirmed"}
    unknown = sorted(set(cites) - names)
    if unknown:
        raise ParamsError(f"{path}: label_cites names unknown label(s) {unknown}")
    if any(not str(v).strip() for v in cites.values()):
        raise ParamsError(f"{path}: every label_cites entry needs a citation")
    return tuple((str(k), str(v)) for k, v in cites.items())


def year_files(coverage_year: int, region: str, base: Path) -> tuple[Path, Path]:
    """policy_params/<year>.toml and regions/<region>.toml, or a message saying what exists."""
    path = base / f"{coverage_year}.toml"
    if not path.exists():
        have = sorted(p.stem for p in base.glob("[0-9][0-9][0-9][0-9].toml"))
        raise ParamsError(
            f"没有{coverage_year}年度的政策参数 / no policy parameters for coverage year "
            f"{coverage_year} (have: {', '.join(have)}); write them with `medins params new {coverage_year}` "
            "(docs/NEW-YEAR.md)"
        )
    region_path = base / "regions" / f"{region}.toml"
    if not region_path.exists():
        have = sorted(p.stem for p in (base / "regions").glob("*.toml"))
        raise ParamsError(f"未知地区 / unknown region '{region}' (have: {', '.join(have)})")
    return path, region_path


_OPTIONAL_KEYS = {"waiting_days", "waiting_months", "lapsed_early_benefit_start", "newborn_grace_months"}


def _scalar_values(coverage_year: int, path: Path, data: dict, region_path: Path) -> dict[str, Cited | None]:
    """Every scalar of the year, the region's overrides first; the required ones checked present."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ParamsError(f"{path}: unknown key(s) {sorted(unknown)}")
    if data.get("coverage_year") != coverage_year:
        raise ParamsError(f"{path}: key 'coverage_year' is {data.get('coverage_year')!r}, expected {coverage_year}")
    overrides = read_toml(region_path).get(str(coverage_year), {})
    for key in overrides:
        if key not in _SCALARS:
            raise ParamsError(f"{region_path}: unknown key '{coverage_year}.{key}'")
    values: dict[str, Cited | None] = {}
    for key in _SCALARS:
        if key in overrides:
            values[key] = _cited(region_path, key, overrides[key], f"{coverage_year}.{key}")
        else:
            values[key] = _cited(path, key, data[key]) if key in data else None
    for key in sorted(set(_SCALARS) - _OPTIONAL_KEYS):
        if values[key] is None:
            raise ParamsError(f"{path}: missing key '{key}'")
    return values


def _required(values: dict[str, Cited | None], key: str) -> Cited:
    cited = values[key]
    assert cited is not None, key  # _scalar_values checked every required key
    return cited


def _check_models(coverage_year: int, path: Path, values: dict[str, Cited | None]) -> tuple[str, str]:
    """The year's benefit and newborn models, each with the keys it needs; the collection period."""
    model = _required(values, "benefit_model").value
    if model not in BENEFIT_MODELS:
        raise ParamsError(f"{path}: key 'benefit_model' has bad value {model!r} (one of {BENEFIT_MODELS})")
    for need in _MODEL_NEEDS[model]:
        if values[need] is None:
            raise ParamsError(f"{path}: benefit_model '{model}' needs key '{need}'")
    nmodel = _required(values, "newborn_model").value
    if nmodel not in NEWBORN_MODELS:
        raise ParamsError(f"{path}: key 'newborn_model' has bad value {nmodel!r} (one of {NEWBORN_MODELS})")
    for need in _NEWBORN_NEEDS.get(nmodel, ()):
        if values[need] is None:
            raise ParamsError(f"{path}: newborn_model '{nmodel}' needs key '{need}'")
    start, end = _required(values, "collection_start").value, _required(values, "collection_end").value
    if start > end:
        raise ParamsError(f"{path}: collection_start is after collection_end")
    if end > dt.date(coverage_year, 12, 31):
        raise ParamsError(f"{path}: collection_end is after the end of the coverage year")
    return model, nmodel


def _special_events(path: Path, data: dict, event_types: tuple) -> tuple[SpecialEvent, ...]:
    known_events = {name for name, _ in event_types}
    events = []
    for name, raw in data.get("special_events", {}).items():
        if name not in known_events:
            raise ParamsError(f"{path}: special_events.{name} is not an event type of labels.toml")
        unknown = set(raw) - {"window_months", "window_days", "cite", "confirmed"}
        if unknown or ("window_months" in raw) == ("window_days" in raw) or not raw.get("cite"):
            raise ParamsError(
                f"{path}: special_events.{name} needs exactly one of window_months/window_days and a cite"
            )
        events.append(SpecialEvent(name, raw.get("window_months"), raw.get("window_days"), raw["cite"]))
    return tuple(events)


def _rule_basis(path: Path, data: dict, model: str, nmodel: str, no_waiting: bool) -> tuple[tuple[str, str], ...]:
    """What `rule_basis` says when each rule wins; every rule the year's models can pick needs one."""
    basis = {k: v for k, v in data.get("rule_basis", {}).items() if k != "confirmed"}
    needed = set(_BASIS_NEEDS[model]) | set(_BASIS_SHARED)
    if no_waiting:
        needed.add("subsidized_no_waiting")
    if nmodel in ("payment", "registration"):
        needed.add("newborn_next_day")
    for key in sorted(needed):
        if not str(basis.get(key, "")).strip():
            raise ParamsError(f"{path}: missing key 'rule_basis.{key}'")
    return tuple((str(k), str(v)) for k, v in basis.items())


# --- a year the bureau added: every value confirmed and cited before it runs (docs/NEW-YEAR.md) ---

SHOWN_OPEN_KEYS = 3  # the refusal names this many keys, then "and N more"


def default_params_dir() -> Path:
    """The policy_params folder: $MEDINS_PARAMS_DIR where set, else the one installed with the package."""
    override = os.environ.get(PARAMS_DIR_ENV, "").strip()
    return Path(override) if override else PARAMS_DIR


@dataclass(frozen=True)
class OpenItem:
    """A value not ready for a run: marked `confirmed = false`, or with an empty citation."""

    source: str  # the file within policy_params/: 2027.toml, regions/jingdezhen.toml
    key: str
    unconfirmed: bool
    uncited: bool

    @property
    def name(self) -> str:
        """The key as the refusal names it (a region's key with its file)."""
        return self.key if "/" not in self.source else f"{self.key} ({self.source})"

    def line(self) -> str:
        """One line of `medins params check`."""
        zh = "、".join(word for word, on in (("未确认", self.unconfirmed), ("未注明出处", self.uncited)) if on)
        en = ", ".join(word for word, on in (("unconfirmed", self.unconfirmed), ("uncited", self.uncited)) if on)
        return f"{self.source} {self.key}: {zh} / {en}"


def _confirmed(path: Path, key: str, table: dict) -> bool:
    flag = table.get("confirmed", True)  # no marker: a year shipped with the product (CONTRACT)
    if not isinstance(flag, bool):
        raise ParamsError(f"{path}: key '{key}' field 'confirmed' must be true or false, got {flag!r}")
    return flag


def _cite_missing(table: dict) -> bool:
    """The value's citation is empty (`cite`, or the `not_given` text saying the notice is silent)."""
    cite = table["not_given"] if "not_given" in table else table.get("cite", "")
    return not str(cite).strip()


def _text_missing(table: dict) -> bool:
    """rule_basis, label_cites: each text is its own citation."""
    return any(not str(v).strip() for k, v in table.items() if k != "confirmed")


_Marked = list[tuple[str, Any, Callable[[dict], bool]]]  # (key, table, its test for a missing citation)


def _marked_tables(data: dict) -> _Marked:
    """Every part of a year's file that cites a notice."""
    tables: _Marked = [(key, data[key], _cite_missing) for key in _SCALARS if key in data]
    events = data.get("special_events")
    if isinstance(events, dict):
        tables += [(f"special_events.{name}", raw, _cite_missing) for name, raw in events.items()]
    if "special_status" in data:
        tables.append(("special_status", data["special_status"], _cite_missing))
    tables += [(key, data[key], _text_missing) for key in ("rule_basis", "label_cites") if key in data]
    return tables


def open_items(coverage_year: int, regions: Iterable[str], base: Path) -> list[OpenItem]:
    """The values of policy_params/<year>.toml and of the regions' overrides for that year that are
    still unconfirmed or uncited (a malformed part is left to `load_params` to name)."""
    path = base / f"{coverage_year}.toml"
    files: list[tuple[Path, str, _Marked]] = [(path, path.name, _marked_tables(read_toml(path)))]
    for region in regions:
        region_path = base / "regions" / f"{region}.toml"
        overrides = read_toml(region_path).get(str(coverage_year))
        pairs = overrides.items() if isinstance(overrides, dict) else ()
        tables: _Marked = [(f"{coverage_year}.{key}", raw, _cite_missing) for key, raw in pairs]
        files.append((region_path, f"regions/{region_path.name}", tables))
    items = []
    for file, source, marked in files:
        for key, table, cite_missing in marked:
            if not isinstance(table, dict):
                continue
            unconfirmed, uncited = not _confirmed(file, key, table), cite_missing(table)
            if unconfirmed or uncited:
                items.append(OpenItem(source, key, unconfirmed, uncited))
    return items


def refuse_open_items(coverage_year: int, items: list[OpenItem]) -> None:
    """A year with values still to confirm or cite does not load: the run names them (CONTRACT)."""
    if not items:
        return
    names = [item.name for item in items]
    more = len(names) - SHOWN_OPEN_KEYS
    shown = ", ".join(names[:SHOWN_OPEN_KEYS]) + (f" and {more} more" if more > 0 else "")
    raise ParamsUnconfirmedError(
        f"{coverage_year}年度的政策参数还有{len(items)}项未确认或未注明出处 / coverage year {coverage_year}: "
        f"{len(items)} values not yet confirmed and cited: {shown}; "
        f"see `medins params check {coverage_year}` and docs/NEW-YEAR.md"
    )


def load_params(coverage_year: int, region: str = "jiangxi", params_dir: Path | None = None) -> Params:
    """Read policy_params/<year>.toml with the region's overrides; check every key."""
    base = params_dir or default_params_dir()
    path, region_path = year_files(coverage_year, region, base)
    refuse_open_items(coverage_year, open_items(coverage_year, (region,), base))
    data = read_toml(path)
    values = _scalar_values(coverage_year, path, data, region_path)
    model, nmodel = _check_models(coverage_year, path, values)
    labels, event_types, elderly, adult, ages_cite, groups = _load_labels(base / "labels.toml")
    status = data.get("special_status", {})
    label_names = {lab.name for lab in labels}
    for lab in status.get("labels", []):
        if lab not in label_names:
            raise ParamsError(f"{path}: special_status label '{lab}' is not in labels.toml")
    required = {key: _required(values, key) for key in set(_SCALARS) - _OPTIONAL_KEYS}
    return Params(
        coverage_year=coverage_year,
        region=region,
        rule_basis=_rule_basis(path, data, model, nmodel, bool(required["subsidized_no_waiting"].value)),
        special_events=_special_events(path, data, event_types),
        special_status_labels=tuple(status.get("labels", [])),
        special_status_cite=str(status.get("cite", "")),
        labels=labels,
        event_types=event_types,
        elderly_age=elderly,
        adult_age=adult,
        ages_cite=ages_cite,
        sources=(str(path.name), f"regions/{region_path.name}", "labels.toml"),
        groups=groups,
        label_cites=_label_cites(path, data, label_names),
        waiting_days=values["waiting_days"],
        waiting_months=values["waiting_months"],
        lapsed_early_benefit_start=values["lapsed_early_benefit_start"],
        newborn_grace_months=values["newborn_grace_months"],
        **required,
    )
