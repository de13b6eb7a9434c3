"""Parse and validate the rows read from the input files (docs/RULES.md §6, §9).

Each row ends in exactly one place: accepted, rejected (one `rejected_rows`
line per failing cell, with file, sheet, row number, column, raw text and a
reason in Chinese) or skipped as an exact duplicate.

Two steps. `check_sheet` (run in each sheet's parser child, pipeline/io/
isolate.py) parses one sheet and validates it with its pandera model
(schemas/models.py, `lazy=True`): every failure case, found by its row
position, becomes a line with its file / sheet / row (never
`drop_invalid_rows`, which loses rows silently). `settle_*` (in the parent)
apply the one rule that needs every sheet at once: duplicates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from pipeline.hints import with_spelling_hints
from pipeline.params import Params
from pipeline.parse import (
    is_bare_year,
    is_partial_date,
    normalise_id,
    parse_amount_fen,
    parse_date,
    parse_date_or_month,
    parse_yes_no,
    period_bounds,
    split_labels,
)
from schemas.headers import HeaderMap
from schemas.models import REASONS, id_facts, id_trusted, payments_schema, roster_schema, subsidy_list_schema
from schemas.registry import TABLES

REJECTED_SCHEMA = TABLES["rejected_rows"].frame_schema
DEFAULT_ID_TYPE = "居民身份证"
DEFAULT_RESIDENCE = "本地户籍"
# the roster columns two rows of one person are compared on (docs/RULES.md §6): all but the row's
# place and the phone (docs/CONTRACT.md: not part of the duplicate-contents comparison)
ROSTER_CONTENT = tuple(
    c
    for c in TABLES["residents"].frame_columns
    if c not in ("coverage_year", "source_file", "sheet", "row_number", "id_number", "phone", "extra_columns")
)
ROSTER_OUT = TABLES["residents"].frame_columns
PAYMENT_OUT = TABLES["payments"].frame_columns
# two rows of one ticket number are compared on all but the row's place (docs/RULES.md §6)
PAYMENT_CONTENT = tuple(
    c for c in PAYMENT_OUT if c not in ("source_file", "sheet", "row_number", "ticket_no", "extra_columns")
)
LIST_OUT = TABLES["subsidy_list_rows"].frame_columns
LIST_CONTENT = tuple(c for c in LIST_OUT if c not in ("source_file", "sheet", "row_number", "extra_columns"))


@dataclass
class Validated:
    accepted: pl.DataFrame
    rejected: pl.DataFrame  # one line per failing cell
    duplicates: pl.DataFrame  # exact duplicates skipped (source_file, sheet, row_number, kept_at)


# --- parsing ---------------------------------------------------------------------------


def _with_raw(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Keep each field's text as `<field>__raw`, and the row's position as `__i`."""
    return frame.with_row_index("__i").with_columns(pl.col(f).alias(f"{f}__raw") for f in fields)


def _per_distinct(frame: pl.DataFrame, columns: list[tuple[str, list[pl.Expr]]]) -> pl.DataFrame:
    """Adds columns that depend on one source column only, computed once per distinct source text.

    Dates, amounts, years and identity labels repeat: a 500,000-row sheet
    holds a few thousand distinct 缴费日期 and a few hundred 缴费金额, so the
    parsers run over those and a hash join carries the result to every row.
    """
    for source, exprs in columns:
        table = frame.select(pl.col(source).unique()).with_columns(exprs)
        replaced = [c for c in table.columns if c != source and c in frame.columns]
        frame = frame.drop(replaced).join(table, on=source, how="left", nulls_equal=True, maintain_order="left")
    return frame


def _date_parsers(field: str, month_ok: bool = False) -> tuple[str, list[pl.Expr]]:
    """A date field parsed (a month meaning its first day where `month_ok`), with `<field>__partial`
    flagging a bare year or year-month."""
    text = pl.col(f"{field}__raw")
    return (
        f"{field}__raw",
        [
            (parse_date_or_month(text) if month_ok else parse_date(text)).alias(field),
            (is_bare_year(text) if month_ok else is_partial_date(text)).alias(f"{field}__partial"),
        ],
    )


def _label_parsers(params: Params) -> tuple[str, list[pl.Expr]]:
    """人员身份 text -> canonical labels, and the tokens no label of labels.toml spells."""
    aliases = params.label_aliases()
    tokens = split_labels(pl.col("identity_labels__raw"))
    return (
        "identity_labels__raw",
        [
            tokens.list.eval(pl.element().replace_strict(aliases, default=None, return_dtype=pl.Utf8))
            .list.drop_nulls()
            .list.unique(maintain_order=True)
            .alias("identity_labels"),
            tokens.list.eval(pl.element().filter(~pl.element().is_in(list(aliases)))).alias("identity_labels__unknown"),
        ],
    )


def _with_id(frame: pl.DataFrame) -> pl.DataFrame:
    """The normalised ID and what the checks need of it. Lazy, so the check digit's seventeen digit
    terms share one parse of the number (common subexpressions are found only in a lazy plan)."""
    return (
        frame.lazy()
        .with_columns(normalise_id(pl.col("id_number__raw")).alias("id_number"))
        .with_columns(id_facts(pl.col("id_number")))
        .collect()
    )


def parse_roster(raw: pl.DataFrame, params: Params, header_map: HeaderMap) -> pl.DataFrame:
    """Roster text -> typed columns; `<field>__raw` keeps the text for the checks."""
    frame = _with_id(_with_raw(raw, [*ROSTER_CONTENT, "id_number"]))
    frame = _per_distinct(
        frame,
        [
            _label_parsers(params),
            _date_parsers("birth_date"),
            _date_parsers("subsidy_identified_on", month_ok=True),
            _date_parsers("special_event_date"),
            _date_parsers("registered_on"),
        ],
    )
    residence = header_map.value_aliases("residence_basis")
    return frame.with_columns(
        pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year"),
        pl.col("id_type__raw").replace(header_map.value_aliases("id_type")).fill_null(DEFAULT_ID_TYPE).alias("id_type"),
        pl.coalesce(pl.col("birth_date"), pl.col("id_number__birth_date")).alias("birth_date"),
        # a missing 参保身份 means 本地户籍 (docs/CONTRACT.md); an unknown one stays null and is rejected
        pl.when(pl.col("residence_basis__raw").is_null())
        .then(pl.lit(DEFAULT_RESIDENCE))
        .otherwise(pl.col("residence_basis__raw").replace_strict(residence, default=None, return_dtype=pl.Utf8))
        .alias("residence_basis"),
        parse_yes_no(pl.col("prev_year_insured__raw")).alias("prev_year_insured"),
        pl.col("special_event__raw")
        .replace_strict(params.event_aliases(), default=None, return_dtype=pl.Utf8)
        .alias("special_event"),
    )


def parse_payments(raw: pl.DataFrame) -> pl.DataFrame:
    """Payment text -> typed columns. 费款所属期 comes from one column or from 起 / 止 (both needed)."""
    frame = _with_id(
        _with_raw(
            raw,
            [
                "id_number",
                "name",
                "amount",
                "paid_on",
                "coverage_year",
                "period_start",
                "period_end",
                "ticket_no",
                "channel",
            ],
        )
    )
    start, end = pl.col("period_start__raw"), pl.col("period_end__raw")
    frame = frame.with_columns(
        pl.col("ticket_no__raw").str.replace_all(r"\s+", "").alias("ticket_no"),
        pl.coalesce(
            pl.col("coverage_year__raw"),
            pl.when(start.is_not_null() & end.is_not_null()).then(pl.concat_str([start, pl.lit("至"), end])),
        ).alias("coverage_year__raw"),
    )
    frame = _per_distinct(
        frame,
        [
            ("amount__raw", [parse_amount_fen(pl.col("amount__raw")).alias("amount_fen")]),
            _date_parsers("paid_on"),
            ("coverage_year__raw", [period_bounds(pl.col("coverage_year__raw")).alias("__bounds")]),
        ],
    )
    first, last = pl.col("__bounds").struct.field("first"), pl.col("__bounds").struct.field("last")
    return frame.with_columns(
        pl.when(first == last).then(first).alias("coverage_year"),
        (first != last).fill_null(False).alias("coverage_year__cross_year"),
        pl.col("period_start__raw").alias("period_start"),
        pl.col("period_end__raw").alias("period_end"),
    ).drop("__bounds")


def parse_subsidy_list(raw: pl.DataFrame, params: Params) -> pl.DataFrame:
    """A list row's text -> typed columns (纳入 / 退出时间 may be a month: its first day)."""
    frame = _with_id(_with_raw(raw, list(LIST_CONTENT)))
    return _per_distinct(
        frame,
        [
            _label_parsers(params),
            _date_parsers("identified_on", month_ok=True),
            _date_parsers("ended_on", month_ok=True),
        ],
    )


# --- failures -> rejected lines ------------------------------------------------------------


def failures(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """(index, column, code) of every failing cell, from pandera's failure cases (validated with
    `lazy=True` on the collected frame, so every value check runs: on a LazyFrame only names and dtypes)."""
    empty = pl.DataFrame(schema={"index": pl.UInt32, "column": pl.Utf8, "code": pl.Utf8})
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as e:
        cases = pl.DataFrame(e.failure_cases)
        unknown = cases.filter(~pl.col("check").is_in(list(REASONS)) | pl.col("index").is_null())
        if unknown.height:  # a column of the wrong type: a bug of the parse step, not bad input
            raise RuntimeError(f"schema {schema.name}: {unknown.head(5).to_dicts()}") from None
        return (
            cases.select(pl.col("index").cast(pl.UInt32), pl.col("column"), pl.col("check").alias("code"))
            .unique()
            .sort("index", "column")
        )
    return empty


# Where a reason names the data date before it is filled in: kept so in the cache of checked sheets,
# whose reasons then hold for any night of their window (no cell holds it: text is normalised).
DATA_DATE_MARK = "\x00"


def _reason_expr(header: pl.Expr, raw: pl.Expr, code: pl.Expr, today: dt.date | None) -> pl.Expr:
    """REASONS[code] with {header}, {raw} and {today} filled in (None: the mark), vectorised."""
    template = pl.coalesce(code.replace_strict(REASONS, default=None, return_dtype=pl.Utf8), pl.lit("数据不合规"))
    return (
        template.str.replace_all("{header}", header, literal=True)
        .str.replace_all("{raw}", raw.fill_null(""), literal=True)
        .str.replace_all("{today}", pl.lit(today.isoformat() if today else DATA_DATE_MARK), literal=True)
    )


def with_data_date(rejected: pl.DataFrame, data_date: dt.date) -> pl.DataFrame:
    """Rejected lines whose reasons name the data date by its mark, the date filled in."""
    return rejected.with_columns(pl.col("reason").str.replace_all(DATA_DATE_MARK, data_date.isoformat(), literal=True))


def _rejected_lines(
    frame: pl.DataFrame,
    failed: pl.DataFrame,
    kind: str,
    headers_seen: pl.DataFrame,
    header_map: HeaderMap,
    today: dt.date | None,
) -> pl.DataFrame:
    """Failure cases -> rejected_rows lines with file, sheet, row number, column as written."""
    if failed.height == 0:
        return pl.DataFrame(schema={"__i": pl.UInt32, **REJECTED_SCHEMA})
    raws = [c for c in frame.columns if c.endswith("__raw")]
    located = failed.with_columns(pl.col("column").replace({"amount_fen": "amount"}).alias("field")).join(
        frame.with_row_index("index").select("index", "source_file", "sheet", "row_number", "id_number", *raws),
        on="index",
        how="left",
    )
    raw_value = pl.coalesce(
        *[pl.when(pl.col("field") == c.removesuffix("__raw")).then(pl.col(c)) for c in raws],
        pl.lit(None, dtype=pl.Utf8),
    )
    canonical = {f.name: f.header for f in header_map.fields}
    located = located.join(headers_seen, on=["source_file", "sheet", "field"], how="left").with_columns(
        pl.coalesce(
            pl.col("header_as_written"), pl.col("field").replace_strict(canonical, default=pl.col("field"))
        ).alias("column_header"),
        raw_value.alias("raw_value"),
    )
    return located.select(
        pl.col("index").alias("__i"),
        pl.lit(kind).alias("kind"),
        "source_file",
        "sheet",
        pl.col("row_number").cast(pl.Int32),
        pl.col("column_header").alias("column"),
        "raw_value",
        _reason_expr(pl.col("column_header"), pl.col("raw_value"), pl.col("code"), today).alias("reason"),
        pl.col("id_number"),
    )


@dataclass
class Checked:
    """One sheet's rows after the row-level checks.

    `parsed`: the typed output columns plus `__bad` (some cell failed),
    `__key_ok` (the duplicate key can be trusted) and the key's raw text;
    `rejected`: one rejected_rows line per failing cell. `valid_from` /
    `valid_until`: the same rows and lines come out for any data date in
    [valid_from, valid_until) (the checks compare dates with it; None is
    unbounded): what a kept copy of them may be reused for.
    """

    parsed: pl.DataFrame
    rejected: pl.DataFrame
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None


# What the row checks read besides a sheet's rows and the data date, named in one place: a checked
# sheet kept beside its rows in the cache (pipeline/io/cache.py) is reused only where all of it is the
# same. The code of the checks, the libraries that run them, and of the parameters only the year and
# the spellings of the labels and special events.
CHECK_FILES = (
    "pipeline/validate.py",
    "pipeline/parse.py",
    "pipeline/hints.py",
    "schemas/models.py",
    "schemas/headers.py",
    "schemas/headers.toml",
    "schemas/registry.py",
    "schemas/tables.toml",
)
CHECK_LIBRARIES = ("polars", "pandera")
# the dates each kind compares with the data date (docs/RULES.md §6 "after the run date")
DATA_DATE_COMPARED = {
    "roster": ("id_number__birth_date", "birth_date", "registered_on", "special_event_date", "subsidy_identified_on"),
    "payments": ("id_number__birth_date", "paid_on"),
    "subsidy_list": ("id_number__birth_date", "identified_on"),
}


def check_inputs(params: Params) -> dict:
    """Of the parameters, what the checks read (docs/RULES.md §6: labels and events spelled as
    policy_params/ lists them; 上年度参保 required from a year on)."""
    return {
        "coverage_year": params.coverage_year,
        "labels": sorted((lab.name, sorted(lab.aliases)) for lab in params.labels),
        "events": sorted((name, sorted(aliases)) for name, aliases in params.event_types),
    }


def _valid_window(parsed: pl.DataFrame, kind: str, data_date: dt.date) -> tuple:
    """[latest compared date on or before the data date, earliest one after it): where the checks give
    the same verdicts."""
    dates = [d for d in DATA_DATE_COMPARED[kind] if d in parsed.columns]
    past, future = parsed.select(
        pl.max_horizontal(pl.col(d).filter(pl.col(d) <= data_date).max() for d in dates).alias("past"),
        pl.min_horizontal(pl.col(d).filter(pl.col(d) > data_date).min() for d in dates).alias("future"),
    ).row(0)
    return past, future


def headers_seen_of(sheets: list) -> pl.DataFrame:
    """(source_file, sheet, field, header_as_written) of read sheets: rejected lines name the column
    as that sheet writes it."""
    rows = [
        {"source_file": s.source_file, "sheet": s.sheet, "field": f, "header_as_written": h}
        for s in sheets
        for f, h in s.columns_seen.items()
    ]
    schema = {"source_file": pl.Utf8, "sheet": pl.Utf8, "field": pl.Utf8, "header_as_written": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def check_sheet(
    sheet, rows: pl.DataFrame, params: Params, header_map: HeaderMap, data_date: dt.date, *, dated: bool = True
) -> Checked:
    """The row-level checks of one sheet's rows as read (`sheet`: its pipeline.io.excel_in.SheetRead,
    `rows`: the rows it read), against the night's parameters and data date (docs/RULES.md §6). Not
    `dated`: a reason naming the data date holds its mark instead (`with_data_date` fills it in)."""
    kind = sheet.kind
    raw = rows.with_columns(pl.lit(sheet.source_file).alias("source_file"), pl.lit(sheet.sheet).alias("sheet"))
    out: tuple[str, ...]
    if kind == "roster":
        parsed = parse_roster(raw, params, header_map)
        prev_required = header_map.field("prev_year_insured").is_required(params.coverage_year)
        schema = roster_schema(params.coverage_year, prev_required, data_date)
        out, key_ok = ROSTER_OUT, [pl.col("id_number__raw"), id_trusted().alias("__key_ok")]
    elif kind == "payments":
        parsed, schema, out = parse_payments(raw), payments_schema(data_date), PAYMENT_OUT
        key_ok = [pl.col("ticket_no__raw"), pl.col("ticket_no").is_not_null().alias("__key_ok")]
    else:
        parsed, schema, out = parse_subsidy_list(raw, params), subsidy_list_schema(data_date), LIST_OUT
        key_ok = [pl.col("id_number__raw"), id_trusted().alias("__key_ok")]
    failed = failures(schema, parsed)
    rejected = with_spelling_hints(
        _rejected_lines(parsed, failed, kind, headers_seen_of([sheet]), header_map, data_date if dated else None),
        params,
    )
    bad = rejected["__i"].unique().implode()
    frame = parsed.select(*out, *key_ok, pl.col("__i").is_in(bad).alias("__bad"))
    valid_from, valid_until = _valid_window(parsed, kind, data_date)
    return Checked(parsed=frame, rejected=rejected.drop("__i"), valid_from=valid_from, valid_until=valid_until)


# --- across sheets: duplicates ---------------------------------------------------------------


def _mark_duplicates(frame: pl.DataFrame, key: str, content: tuple[str, ...]) -> pl.DataFrame:
    """The rows sharing `key` with another row, flagged (docs/RULES.md §6); all other rows are unique.

    `__conflict`: the key appears with different content (every such row is
    rejected, whatever else is wrong with it). `__dup_skip`: an exact copy of
    an earlier accepted row (skipped, counted, warned). Only rows whose key
    could be read (`__key_ok`) take part; rows already rejected (`__bad`) are
    never skipped. The window work runs on the duplicated keys only.
    """
    order = ["source_file", "sheet", "row_number"]
    keyed = pl.when(pl.col("__key_ok").fill_null(False)).then(pl.col(key))
    # a 64-bit hash sieves the candidates; a row that only shares a hash is alone under its key below
    shared = frame.filter(keyed.hash().is_duplicated() & keyed.is_not_null())
    marked = (
        shared.with_columns(pl.col(key).alias("__key"), pl.struct(list(content)).hash().alias("__content_hash"))
        .with_columns(
            pl.len().over("__key").alias("__n"), pl.col("__content_hash").n_unique().over("__key").alias("__n_versions")
        )
        .with_columns((pl.col("__n_versions") > 1).alias("__conflict"))
        .with_columns((~pl.col("__bad") & ~pl.col("__conflict")).alias("__clean"))
    )
    first = pl.struct(order).rank("min").over(["__key", "__clean"]) == 1
    kept = pl.struct(order).sort_by(order).first().over(["__key", "__clean"])
    return marked.with_columns(
        (pl.col("__clean") & ~first).alias("__dup_skip"),
        pl.format(
            "{} {} 第{}行",
            kept.struct.field("source_file"),
            kept.struct.field("sheet"),
            kept.struct.field("row_number"),
        ).alias("__kept_at"),
    )


def _settle(
    checked: list[Checked],
    key: str,
    content: tuple[str, ...],
    out_cols: tuple[str, ...],
    conflict_line: list[pl.Expr] | None,
) -> Validated:
    """The cross-row rule over every sheet of a kind: duplicates and conflicts (docs/RULES.md §6)."""
    order = ["source_file", "sheet", "row_number"]
    frame = pl.concat([c.parsed for c in checked], how="vertical").with_row_index("__i")
    rejected = pl.concat([pl.DataFrame(schema=REJECTED_SCHEMA), *[c.rejected for c in checked]], how="vertical")
    marked = _mark_duplicates(frame, key, content)
    if conflict_line is None:  # no conflicts of this kind: only exact copies are skipped
        marked = marked.with_columns(pl.lit(False).alias("__conflict"))
    conflicts = marked.filter("__conflict").select(
        "source_file", "sheet", pl.col("row_number").cast(pl.Int32), *(conflict_line or []), "id_number"
    )
    not_accepted = marked.filter(pl.col("__conflict") | pl.col("__dup_skip"))["__i"].implode()
    accepted = frame.filter(~pl.col("__bad") & ~pl.col("__i").is_in(not_accepted)).select(out_cols)
    if conflict_line is not None:
        rejected = pl.concat([rejected, conflicts.select(REJECTED_SCHEMA.keys())], how="vertical")
    skipped = marked.filter("__dup_skip")
    return Validated(
        accepted=accepted, rejected=rejected, duplicates=skipped.select(*order, pl.col("__kept_at").alias("kept_at"))
    )


def settle_roster(checked: list[Checked], header_map: HeaderMap) -> Validated:
    id_header = header_map.header_of("id_number")
    return _settle(
        checked,
        "id_number",
        ROSTER_CONTENT,
        ROSTER_OUT,
        [
            pl.lit("roster").alias("kind"),
            pl.lit(id_header).alias("column"),
            pl.col("id_number__raw").alias("raw_value"),
            pl.format(
                REASONS["duplicate_conflict"].replace("{header}", id_header).replace("{raw}", "{}"), pl.col("__n")
            ).alias("reason"),
        ],
    )


def settle_payments(checked: list[Checked], header_map: HeaderMap) -> Validated:
    return _settle(
        checked,
        "ticket_no",
        PAYMENT_CONTENT,
        PAYMENT_OUT,
        [
            pl.lit("payments").alias("kind"),
            pl.lit(header_map.header_of("ticket_no")).alias("column"),
            pl.col("ticket_no__raw").alias("raw_value"),
            pl.lit(REASONS["ticket_conflict"]).alias("reason"),
        ],
    )


def settle_subsidy_list(checked: list[Checked]) -> Validated:
    """List rows never reject each other (one ID may be on several lists, with several labels); an
    exact copy of a row in the same sheet is skipped as a duplicate (docs/RULES.md §9)."""
    key = pl.concat_str(
        [pl.col("source_file"), pl.col("sheet"), pl.col("id_number")], separator="\x1f", ignore_nulls=True
    ).alias("__list_key")
    keyed = [Checked(parsed=c.parsed.with_columns(key), rejected=c.rejected) for c in checked]
    content = tuple(f for f in LIST_CONTENT if f != "id_number")
    return _settle(keyed, "__list_key", content, LIST_OUT, None)
