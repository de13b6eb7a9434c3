"""Parse and validate the rows read from the workbooks (RULES.md §6).

Each row ends in exactly one place: accepted, rejected (one `rejected_rows`
line per failing cell, with file, sheet, Excel row, column, raw text and a
reason in Chinese) or skipped as an exact duplicate.

Two steps. `check_sheet` (run in each sheet's parser child, pipeline/io/
isolate.py) parses one sheet and applies the pandera model of schemas/: every
failing cell, found by its row position, becomes a line with its file / sheet /
row (never `drop_invalid_rows`, which loses rows silently). `settle_roster` /
`settle_payments` (in the parent) apply the one rule that needs every sheet at
once: duplicates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from pipeline.params import Params
from pipeline.parse import (
    normalise_id,
    parse_amount_fen,
    parse_date,
    parse_year,
    parse_yes_no,
    split_labels,
)
from schemas.headers import HeaderMap
from schemas.models import REASONS, id_facts, id_trusted, payments_schema, roster_schema

REJECTED_SCHEMA = {
    "kind": pl.Utf8, "source_file": pl.Utf8, "sheet": pl.Utf8, "row_number": pl.Int32,
    "column": pl.Utf8, "raw_value": pl.Utf8, "reason": pl.Utf8, "id_number": pl.Utf8,
}
RESIDENCE_ALIASES = {"本地户籍": "本地户籍", "户籍": "本地户籍", "本地": "本地户籍", "本县户籍": "本地户籍",
                     "居住证": "居住证", "持居住证": "居住证"}
DEFAULT_ID_TYPE = "居民身份证"
DEFAULT_RESIDENCE = "本地户籍"
ROSTER_CONTENT = (
    "name", "id_type", "birth_date", "county", "township", "village", "residence_basis",
    "identity_labels", "subsidy_identified_on", "prev_year_insured", "special_event",
    "special_event_date", "registered_on",
)
PAYMENT_CONTENT = ("id_number", "name", "amount_fen", "paid_on", "coverage_year", "channel")
ROSTER_OUT = (
    "coverage_year", "source_file", "sheet", "row_number", "name", "id_number", "id_type",
    "birth_date", "county", "township", "village", "residence_basis", "identity_labels",
    "subsidy_identified_on", "prev_year_insured", "special_event", "special_event_date",
    "registered_on", "extra_columns",
)
PAYMENT_OUT = (
    "source_file", "sheet", "row_number", "id_number", "name", "amount_fen", "paid_on",
    "coverage_year", "ticket_no", "channel", "extra_columns",
)


@dataclass
class Validated:
    accepted: pl.DataFrame
    rejected: pl.DataFrame        # one line per failing cell
    duplicates: pl.DataFrame      # exact duplicates skipped (source_file, sheet, row_number, kept_at)


def _with_raw(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Keep each field's text as `<field>__raw`, and the row's position as `__i`."""
    return frame.with_row_index("__i").with_columns(pl.col(f).alias(f"{f}__raw") for f in fields)


def _per_distinct(frame: pl.DataFrame, columns: list[tuple[str, list[pl.Expr]]]) -> pl.DataFrame:
    """Adds columns that depend on one source column only, computed once per distinct source text.

    Dates, amounts, years and identity labels repeat: a 500,000-row sheet
    holds a few thousand distinct 缴费日期 and a few hundred 缴费金额, so the
    parsers run over those and a hash join carries the result to every row
    (measured: 3 to 10 times less than parsing every row).
    """
    for source, exprs in columns:
        table = frame.select(pl.col(source).unique()).with_columns(exprs)
        replaced = [c for c in table.columns if c != source and c in frame.columns]
        frame = frame.drop(replaced).join(table, on=source, how="left", nulls_equal=True, maintain_order="left")
    return frame


def parse_roster(raw: pl.DataFrame, params: Params) -> pl.DataFrame:
    """Roster text -> typed columns; `<field>__raw` keeps the text for the checks."""
    fields = [c for c in ROSTER_CONTENT + ("id_number",)]
    frame = _with_raw(raw, fields)
    label_aliases = params.label_aliases()
    event_aliases = params.event_aliases()
    tokens = split_labels(pl.col("identity_labels__raw"))
    frame = frame.with_columns(normalise_id(pl.col("id_number__raw")).alias("id_number"))
    frame = frame.with_columns(id_facts(pl.col("id_number")))
    frame = _per_distinct(frame, [
        ("identity_labels__raw", [
            tokens.list.eval(pl.element().replace_strict(label_aliases, default=None, return_dtype=pl.Utf8))
            .list.drop_nulls().list.unique(maintain_order=True).alias("identity_labels"),
            tokens.list.eval(pl.element().filter(~pl.element().is_in(list(label_aliases))))
            .alias("identity_labels__unknown"),
        ]),
        *[(f"{field}__raw", [parse_date(pl.col(f"{field}__raw")).alias(f"{field}__parsed")])
          for field in ("birth_date", "subsidy_identified_on", "special_event_date", "registered_on")],
    ])
    return frame.with_columns(
        pl.lit(params.coverage_year, dtype=pl.Int32).alias("coverage_year"),
        pl.col("id_type__raw").fill_null(DEFAULT_ID_TYPE).alias("id_type"),
        pl.coalesce(pl.col("birth_date__parsed"), pl.col("id_number__birth_date")).alias("birth_date"),
        pl.col("residence_basis__raw").replace_strict(RESIDENCE_ALIASES, default=None, return_dtype=pl.Utf8)
        .alias("residence_basis"),
        pl.col("subsidy_identified_on__parsed").alias("subsidy_identified_on"),
        parse_yes_no(pl.col("prev_year_insured__raw")).alias("prev_year_insured"),
        pl.col("special_event__raw").replace_strict(event_aliases, default=None, return_dtype=pl.Utf8)
        .alias("special_event"),
        pl.col("special_event_date__parsed").alias("special_event_date"),
        pl.col("registered_on__parsed").alias("registered_on"),
    ).with_columns(
        # A missing 参保身份 means 本地户籍 (CONTRACT.md); an unknown one stays null and is rejected.
        pl.when(pl.col("residence_basis__raw").is_null()).then(pl.lit(DEFAULT_RESIDENCE))
        .otherwise(pl.col("residence_basis")).alias("residence_basis"),
    )


def parse_payments(raw: pl.DataFrame) -> pl.DataFrame:
    frame = _with_raw(raw, ["id_number", "name", "amount", "paid_on", "coverage_year", "ticket_no", "channel"])
    frame = frame.with_columns(normalise_id(pl.col("id_number__raw")).alias("id_number"))
    frame = frame.with_columns(
        *id_facts(pl.col("id_number")),
        pl.col("ticket_no__raw").str.replace_all(r"\s+", "").alias("ticket_no"),
    )
    return _per_distinct(frame, [
        ("amount__raw", [parse_amount_fen(pl.col("amount__raw")).alias("amount_fen")]),
        ("paid_on__raw", [parse_date(pl.col("paid_on__raw")).alias("paid_on")]),
        ("coverage_year__raw", [parse_year(pl.col("coverage_year__raw")).alias("coverage_year")]),
    ])


def _failures(schema, frame: pl.DataFrame) -> pl.DataFrame:
    """(index, column, code) of every failing cell; empty when all pass.

    pandera validates the frame's structure (columns, dtypes: a mismatch is
    a bug of the parse step and raises); the checks themselves, polars
    expressions (schemas/models.py), are evaluated in one pass over the frame
    instead of one pass per check (measured: 163 passes, 2.7 s for a
    500,000-row roster sheet), and only the failing rows are unpivoted.
    """
    structure = schema.update_columns({name: {"checks": []} for name in schema.columns})
    structure.validate(frame.head(0))
    tests = [
        (~check.passes(name)).alias(f"{name}\x1f{check.error}")
        for name, column in schema.columns.items() for check in column.checks
    ]
    empty = pl.DataFrame(schema={"index": pl.UInt32, "column": pl.Utf8, "code": pl.Utf8})
    if not tests or frame.height == 0:
        return empty
    failing = (
        frame.lazy().select(*tests).with_row_index("index")
        .filter(pl.any_horizontal(pl.exclude("index")))
        .collect()
    )
    if failing.height == 0:
        return empty
    return (
        failing.unpivot(index="index", variable_name="test", value_name="failed")
        .filter("failed")
        .select(
            pl.col("index").cast(pl.UInt32),
            pl.col("test").str.split_exact("\x1f", 1).struct.field("field_0").alias("column"),
            pl.col("test").str.split_exact("\x1f", 1).struct.field("field_1").alias("code"),
        )
        .sort("index", "column")
    )


def _reason_expr(header: pl.Expr, raw: pl.Expr, code: pl.Expr) -> pl.Expr:
    """REASONS[code] with {header} and {raw} filled in, as one vectorised expression."""
    template = pl.coalesce(code.replace_strict(REASONS, default=None, return_dtype=pl.Utf8), pl.lit("数据不合规"))
    return template.str.replace_all("{header}", header, literal=True).str.replace_all(
        "{raw}", raw.fill_null(""), literal=True
    )


def _rejected_lines(frame: pl.DataFrame, failures: pl.DataFrame, kind: str,
                    headers_seen: pl.DataFrame, header_map: HeaderMap) -> pl.DataFrame:
    """Failure cases -> rejected_rows lines with file, sheet, Excel row, column as written."""
    if failures.height == 0:
        return pl.DataFrame(schema={"__i": pl.UInt32, **REJECTED_SCHEMA})
    field_of = {"amount_fen": "amount"}
    raws = [c for c in frame.columns if c.endswith("__raw")]
    located = failures.with_columns(
        pl.col("column").replace(field_of).alias("field")
    ).join(
        frame.with_row_index("index").select(
            "index", "source_file", "sheet", "row_number", "id_number", *raws
        ),
        on="index",
        how="left",
    )
    raw_value = pl.coalesce(
        *[pl.when(pl.col("field") == c.removesuffix("__raw")).then(pl.col(c)) for c in raws],
        pl.lit(None, dtype=pl.Utf8),
    )
    canonical = {f.name: f.header for f in header_map.fields}
    located = located.join(headers_seen, on=["source_file", "sheet", "field"], how="left").with_columns(
        pl.coalesce(pl.col("header_as_written"),
                    pl.col("field").replace_strict(canonical, default=pl.col("field"))).alias("column_header"),
        raw_value.alias("raw_value"),
    )
    return located.select(
        pl.col("index").alias("__i"),
        pl.lit(kind).alias("kind"),
        "source_file", "sheet", pl.col("row_number").cast(pl.Int32),
        pl.col("column_header").alias("column"),
        "raw_value",
        _reason_expr(pl.col("column_header"), pl.col("raw_value"), pl.col("code")).alias("reason"),
        pl.col("id_number"),
    )


def _mark_duplicates(frame: pl.DataFrame, key: str, content: tuple[str, ...]) -> pl.DataFrame:
    """The rows sharing `key` with another row, flagged (RULES.md §6); all other rows are unique.

    `__conflict`: the key appears with different content (every such row is
    rejected, whatever else is wrong with it). `__dup_skip`: an exact copy of
    an earlier accepted row (skipped, counted, warned). Only rows whose key
    could be read (`__key_ok`) take part; rows already rejected (`__bad`) are
    never skipped. The window work runs on the duplicated keys only (one hash
    pass finds them).
    """
    order = ["source_file", "sheet", "row_number"]
    keyed = pl.when(pl.col("__key_ok").fill_null(False)).then(pl.col(key))
    # A 64-bit hash sieves the candidates (twice as fast as comparing the texts at 1M rows); a row that
    # only shares a hash is alone under its key below (__n = 1) and stays unmarked.
    shared = frame.filter(keyed.hash().is_duplicated() & keyed.is_not_null())
    marked = (
        shared.with_columns(
            pl.col(key).alias("__key"),
            pl.struct(list(content)).hash().alias("__content_hash"),
        )
        .with_columns(
            pl.len().over("__key").alias("__n"),
            pl.col("__content_hash").n_unique().over("__key").alias("__n_versions"),
        )
        .with_columns((pl.col("__n_versions") > 1).alias("__conflict"))
        .with_columns((~pl.col("__bad") & ~pl.col("__conflict")).alias("__clean"))
    )
    first = pl.struct(order).rank("min").over(["__key", "__clean"]) == 1
    kept = pl.struct(order).sort_by(order).first().over(["__key", "__clean"])
    return marked.with_columns(
        (pl.col("__clean") & ~first).alias("__dup_skip"),
        pl.format("{} {} 第{}行", kept.struct.field("source_file"), kept.struct.field("sheet"),
                  kept.struct.field("row_number")).alias("__kept_at"),
    )


@dataclass
class Checked:
    """One sheet's rows after the row-level checks (run in the parser child, cached by sha256).

    `parsed`: the typed output columns plus `__bad` (some cell failed),
    `__key_ok` (the duplicate key can be trusted) and the key's raw text.
    `today_from` / `today_until`: the same rows and reasons come out for any
    "today" in [today_from, today_until) (the checks compare birth dates with
    today); None is unbounded.
    """

    parsed: pl.DataFrame
    rejected: pl.DataFrame
    today_from: dt.date | None = None
    today_until: dt.date | None = None


def _today_window(parsed: pl.DataFrame, dates: list[str], today: dt.date) -> tuple[dt.date | None, dt.date | None]:
    """The latest checked date on or before today and the earliest one after it."""
    row = parsed.select(
        pl.min_horizontal(pl.col(d).filter(pl.col(d) <= today).max() for d in dates).alias("past"),
        pl.min_horizontal(pl.col(d).filter(pl.col(d) > today).min() for d in dates).alias("future"),
    ).row(0)
    return row[0], row[1]


def _checked(parsed: pl.DataFrame, rejected: pl.DataFrame, out_cols: tuple[str, ...], extra: list[pl.Expr],
             dates: list[str], today: dt.date) -> Checked:
    bad = rejected["__i"].unique().implode()
    frame = parsed.select(*out_cols, *extra, pl.col("__i").is_in(bad).alias("__bad"))
    today_from, today_until = _today_window(parsed, dates, today)
    return Checked(parsed=frame, rejected=rejected.drop("__i"), today_from=today_from, today_until=today_until)


def check_roster(raw: pl.DataFrame, params: Params, header_map: HeaderMap, headers_seen: pl.DataFrame,
                 today: dt.date) -> Checked:
    """Parse and check every roster row of one sheet (no cross-row rules: see `settle_roster`)."""
    parsed = parse_roster(raw, params)
    prev_required = header_map.field("prev_year_insured").is_required(params.coverage_year)
    schema = roster_schema(params.coverage_year, prev_required, today)
    rejected = _rejected_lines(parsed, _failures(schema, parsed), "roster", headers_seen, header_map)
    return _checked(parsed, rejected, ROSTER_OUT, [pl.col("id_number__raw"), id_trusted().alias("__key_ok")],
                    ["id_number__birth_date", "birth_date"], today)


def check_payments(raw: pl.DataFrame, header_map: HeaderMap, headers_seen: pl.DataFrame,
                   today: dt.date) -> Checked:
    """Parse and check every payment row of one sheet (no cross-row rules: see `settle_payments`)."""
    parsed = parse_payments(raw)
    rejected = _rejected_lines(parsed, _failures(payments_schema(today), parsed), "payments",
                               headers_seen, header_map)
    return _checked(parsed, rejected, PAYMENT_OUT,
                    [pl.col("ticket_no__raw"), pl.col("ticket_no").is_not_null().alias("__key_ok")],
                    ["id_number__birth_date"], today)


def _settle(checked: list[Checked], key: str, content: tuple[str, ...], out_cols: tuple[str, ...],
            conflict_line: list[pl.Expr]) -> Validated:
    """The cross-row rule over every sheet of a kind: duplicates and conflicts (RULES.md §6)."""
    order = ["source_file", "sheet", "row_number"]
    frame = pl.concat([c.parsed for c in checked], how="vertical").with_row_index("__i")
    rejected = pl.concat([c.rejected for c in checked], how="vertical") if checked else (
        pl.DataFrame(schema=REJECTED_SCHEMA))
    marked = _mark_duplicates(frame, key, content)
    conflicts = marked.filter("__conflict").select(
        *[pl.col(c) for c in ("source_file", "sheet")], pl.col("row_number").cast(pl.Int32), *conflict_line,
        pl.col("id_number"),
    )
    not_accepted = marked.filter(pl.col("__conflict") | pl.col("__dup_skip"))["__i"].implode()
    accepted = frame.filter(~pl.col("__bad") & ~pl.col("__i").is_in(not_accepted)).select(out_cols)
    rejected = pl.concat([rejected, conflicts.select(REJECTED_SCHEMA.keys())], how="vertical")
    skipped = marked.filter("__dup_skip")
    return Validated(accepted=accepted, rejected=rejected,
                     duplicates=skipped.select(*order, key, pl.col("__kept_at").alias("kept_at")))


def settle_roster(checked: list[Checked], header_map: HeaderMap) -> Validated:
    id_header = header_map.header_of("id_number")
    return _settle(checked, "id_number", ROSTER_CONTENT, ROSTER_OUT, [
        pl.lit("roster").alias("kind"),
        pl.lit(id_header).alias("column"),
        pl.col("id_number__raw").alias("raw_value"),
        pl.format(REASONS["duplicate_conflict"].replace("{header}", id_header).replace("{raw}", "{}"),
                  pl.col("__n")).alias("reason"),
    ])


def settle_payments(checked: list[Checked], header_map: HeaderMap) -> Validated:
    return _settle(checked, "ticket_no", PAYMENT_CONTENT, PAYMENT_OUT, [
        pl.lit("payments").alias("kind"),
        pl.lit(header_map.header_of("ticket_no")).alias("column"),
        pl.col("ticket_no__raw").alias("raw_value"),
        pl.lit(REASONS["ticket_conflict"]).alias("reason"),
    ])


def validate_roster(raw: pl.DataFrame, params: Params, header_map: HeaderMap,
                    headers_seen: pl.DataFrame, today: dt.date) -> Validated:
    return settle_roster([check_roster(raw, params, header_map, headers_seen, today)], header_map)


def validate_payments(raw: pl.DataFrame, header_map: HeaderMap, headers_seen: pl.DataFrame,
                      today: dt.date) -> Validated:
    return settle_payments([check_payments(raw, header_map, headers_seen, today)], header_map)


def headers_seen_of(sheets: list) -> pl.DataFrame:
    """(source_file, sheet, field, header_as_written) of read sheets: rejected lines name the column
    as that sheet writes it."""
    rows = [
        {"source_file": s.source_file, "sheet": s.sheet, "field": f, "header_as_written": h}
        for s in sheets for f, h in s.columns_seen.items()
    ]
    schema = {"source_file": pl.Utf8, "sheet": pl.Utf8, "field": pl.Utf8, "header_as_written": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def check_sheet(sheet, params: Params, header_map: HeaderMap, today: dt.date) -> Checked:
    """The row-level checks of one read sheet (pipeline.io.excel_in.SheetRead)."""
    seen = headers_seen_of([sheet])
    if sheet.kind == "roster":
        return check_roster(sheet.data, params, header_map, seen, today)
    return check_payments(sheet.data, header_map, seen, today)
