"""Deterministic sample inputs: roster (参保登记花名册) and tax-payment (税务缴费明细) workbooks.

Why: the pipeline has to be exercised on files that look like what township
clerks and the tax bureau send (title rows, header aliases, text dates,
full-width digits, footers; CONTRACT.md "Inputs") and that carry a known
number of bad rows of every kind of RULES.md §6, so tests can assert exact
rejection counts. Same arguments, same bytes: one seeded `random.Random` per
stream and fixed document properties.

Amounts and dates come from `pipeline.params.load_params`; header aliases and
footer prefixes from `schemas/headers.toml`; identity labels and special
events from `policy_params/labels.toml`. Generation is one pass over the
residents (linear, bounded memory), so a million rows of each kind can be
written; xlsxwriter's `constant_memory` mode is used above
`CONSTANT_MEMORY_ROWS`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import os
import random
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from pipeline.errors import ParamsError, SampleArgumentError
from pipeline.params import TIER_RANK, Params, load_params

REGION = "jingdezhen"
HEADERS_PATH = Path(__file__).resolve().parent.parent / "schemas" / "headers.toml"

# Above this many rows xlsxwriter streams rows to temp files instead of keeping
# the workbook in memory (the benchmark writes a million of each kind).
CONSTANT_MEMORY_ROWS = 50_000
# Payments are sorted by date within chunks of this many rows per sheet: the
# tax export is date-ordered, and a bounded buffer keeps memory flat.
PAYMENT_CHUNK_ROWS = 5_000
EXCEL_MAX_ROWS = 1_048_576
# Planted bad rows need a few residents to hide among.
MIN_ROWS_FOR_BAD = 20
# Fixed document properties: xlsxwriter stamps "now" otherwise.
DOC_CREATED = dt.datetime(2025, 1, 1)
EXCEL_EPOCH = dt.date(1899, 12, 30)


# --------------------------------------------------------------------------
# Places: 景德镇市, GB/T 2260 codes and its townships
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class County:
    name: str
    code: str  # GB/T 2260 region code, the first six digits of a local ID
    slug: str  # ASCII file-name part
    weight: int  # relative share of residents in a city-wide roster
    tax_prefix: str  # first three digits of this county's ticket numbers
    townships: tuple[str, ...]


COUNTIES: tuple[County, ...] = (
    County("浮梁县", "360222", "fuliang", 3, "336", (
        "浮梁镇", "鹅湖镇", "经公桥镇", "蛟潭镇", "瑶里镇", "洪源镇", "寿安镇", "湘湖镇",
        "三龙镇", "王港乡", "庄湾乡", "黄坛乡", "兴田乡", "江村乡", "峙滩镇", "勒功乡", "西湖乡",
    )),
    County("乐平市", "360281", "leping", 8, "036", (
        "洎阳街道", "塔山街道", "鸣山乡", "众埠镇", "接渡镇", "洪岩镇", "礼林镇", "后港镇",
        "塔前镇", "双田镇", "临港镇", "高家镇", "名口镇", "浯口镇", "涌山镇", "镇桥镇",
        "乐港镇", "十里岗乡", "历居山乡",
    )),
    County("昌江区", "360202", "changjiang", 2, "003", (
        "西郊街道", "新枫街道", "吕蒙乡", "鲇鱼山镇", "丽阳镇", "荷塘乡",
    )),
    County("珠山区", "360203", "zhushan", 3, "136", (
        "新村街道", "周路口街道", "石狮埠街道", "昌江街道", "里村街道", "新厂街道", "竟成镇",
    )),
)
CITY_NAME = "景德镇市"
CITY_SLUG = "jingdezhen"

# ID region codes that are valid but not the resident's county: 居住证 holders
# from elsewhere, 港澳台 residence permits, and an abolished Jiangxi code kept
# by people born before it was abolished.
MAINLAND_MIGRANT_CODES = ("361128", "340825", "340881", "430626", "362330", "350781", "330127")
PERMIT_CODES = ("810000", "820000", "830000")
# Further Jiangxi county codes (GB/T 2260), used only once every code above is full for a birth date,
# which happens only at millions of residents (the planted boundary birthdays).
OVERFLOW_CODES = (
    "360102", "360103", "360104", "360111", "360112", "360113", "360121", "360123", "360124", "360302",
    "360313", "360321", "360322", "360323", "360402", "360403", "360404", "360423", "360424", "360425",
    "360428", "360429", "360430", "360481", "360482", "360483", "360502", "360521", "360602", "360603",
    "360681", "360702", "360703", "360704", "360722", "360723",
)
OLD_REGION_CODE = "360426"
OLD_CODE_BORN_BEFORE = 1983

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤饶舒詹揭游洪"
)
# Heavier weight for the most common surnames (roughly the national order).
SURNAME_CUM_WEIGHTS = tuple(
    sum(max(1, 30 - i) for i in range(k + 1)) for k in range(len(SURNAMES))
)
GIVEN_MALE = "伟强磊军勇杰涛明超华平刚辉鹏斌宇浩志建国文俊峰林亮波斌坤鑫海龙飞云春永忠德福荣贵根生"
GIVEN_FEMALE = "芳娟敏静丽艳霞秀英玲燕红梅琴兰萍婷雪慧颖洁琳倩莉凤珍娥桂花月春美佳欣怡"
VILLAGE_WORDS = (
    "新华", "朝阳", "人民", "建设", "胜利", "光明", "东风", "解放", "和平", "幸福", "前进", "友谊",
    "长青", "瓷都", "莲花", "新风", "东郊", "西岭", "南河", "北山", "桃墅", "金竹", "石溪", "枫林",
    "红星", "大洲", "高岭", "沧溪", "严台", "梅岭", "新田", "茶园", "竹山", "杨村", "水口", "港口",
)
CHANNELS = ("微信", "支付宝", "赣服通", "银行柜台", "税务大厅", "职工医保个账代缴")
CHANNEL_CUM_WEIGHTS = (40, 55, 75, 87, 97, 100)

# Clerk mistakes that look like a known label or event but are not one
# (RULES.md §6: an unknown label rejects the row), with what was meant.
UNKNOWN_LABELS = (("特困供养人", "特困供养人员"), ("五保户", "特困供养人员"),
                  ("低保户", "城乡低保对象"), ("建档立卡贫困户", "脱贫不稳定人口"))
UNKNOWN_EVENTS = (("户籍迁入", "户口迁入"), ("退伍", "退役军人"), ("刑释人员", "刑满释放"),
                  ("回国", "出国回国"))

# Identity-label mix: (labels, share of residents, age band).
LABEL_MIX: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("城乡低保对象",), 0.030, "any"),
    (("特困供养人员",), 0.010, "old"),
    (("孤儿",), 0.005, "child"),
    (("脱贫不稳定人口",), 0.010, "any"),
    (("边缘易致贫人口",), 0.008, "any"),
    (("防止返贫监测对象",), 0.008, "any"),
    (("返贫致贫人口",), 0.004, "any"),
    (("在校大学生",), 0.010, "student"),
    (("医疗救助对象",), 0.010, "adult"),
    (("烈士子女",), 0.003, "edge_elderly"),
    (("城镇低收入家庭成员",), 0.008, "edge_both"),
    (("事实无人抚养儿童",), 0.002, "child"),
    (("重度残疾学生儿童",), 0.002, "child"),
    (("丧失劳动能力重度残疾成年人",), 0.003, "adult"),
    (("宗教教职人员",), 0.002, "adult"),
    (("残疾军人",), 0.001, "old"),
    (("烈士遗属",), 0.001, "old"),
    (("带病回乡退伍军人",), 0.001, "old"),
    (("14类退役士兵",), 0.001, "adult"),
    (("企业军转干部",), 0.0005, "old"),
    (("城乡低保对象", "医疗救助对象"), 0.004, "any"),
    (("特困供养人员", "城乡低保对象"), 0.002, "old"),
    (("孤儿", "事实无人抚养儿童"), 0.001, "child"),
    (("边缘易致贫人口", "医疗救助对象"), 0.002, "any"),
    (("在校大学生", "城乡低保对象"), 0.001, "student"),
)
LABEL_SEPARATORS = ("、", "、", "、", "，", "，", ",", ";", " ")
NEWBORN_SHARE = 0.03
SPECIAL_EVENT_SHARE = 0.01
MIGRANT_SHARE = 0.02
PERMIT_SHARE = 0.002
OLD_CODE_SHARE = 0.04
PREV_INSURED_SHARE = 0.9

# Bad rows planted per resident (RULES.md §6); at least one of each kind in a
# messy file of MIN_ROWS_FOR_BAD rows or more. conflicting_duplicate counts
# pairs here, rows (two per pair) in the result.
ROSTER_BAD_RATES: dict[str, float] = {
    "id_numeric": 0.0015, "id_check_digit": 0.002, "id_birth_date": 0.001,
    "required_empty": 0.002, "bad_date": 0.002, "unknown_label": 0.001,
    "unknown_event": 0.001, "exact_duplicate": 0.002, "conflicting_duplicate": 0.001,
}
PAYMENT_BAD_RATES: dict[str, float] = {
    "id_numeric": 0.0015, "id_check_digit": 0.002, "id_birth_date": 0.001,
    "required_empty": 0.002, "bad_date": 0.002, "bad_amount": 0.002,
}
# Why each planted row is rejected (RULES.md §6), for fixtures' README and tests.
BAD_ROW_REASONS: dict[str, str] = {
    "id_numeric": "证件号码以数值存储(Excel只保留15位有效数字) / ID stored as an Excel number",
    "id_check_digit": "证件号码校验位错误 / GB 11643 check digit wrong",
    "id_birth_date": "证件号码出生日期不存在 / impossible birth date in the ID",
    "required_empty": "必填项为空 / required cell empty",
    "bad_date": "日期无法识别 / date cannot be parsed",
    "bad_amount": "金额无法识别 / amount cannot be parsed",
    "unknown_label": "未知人员身份 / unknown identity label",
    "unknown_event": "未知特殊情形 / unknown special event",
    "exact_duplicate": "完全重复行, 合并跳过(不拒绝) / exact duplicate, skipped with a warning",
    "conflicting_duplicate": "同一证件号码内容不一致, 两行均拒绝 / same ID with different contents, both rejected",
}

ROSTER_FIELDS = (
    "name", "id_type", "id_number", "birth_date", "county", "township", "village",
    "residence_basis", "identity_labels", "subsidy_identified_on", "prev_year_insured",
    "special_event", "special_event_date", "registered_on",
)
ROSTER_OPTIONAL_COLUMNS = {"id_type": 0.5, "birth_date": 0.4, "residence_basis": 0.8}
PAYMENT_FIELDS = ("name", "id_number", "coverage_year", "amount", "paid_on", "ticket_no", "channel")
ROSTER_EXTRAS = ("联系电话", "备注信息", "与户主关系")
PAYMENT_EXTRAS = ("征收机关", "备注信息")
SEQ = "#seq"

DATE_STYLES = ("excel_iso", "excel_slash", "excel_cn", "iso", "slash", "dot", "compact", "cn")
EXCEL_DATE_FORMATS = {"excel_iso": "yyyy-mm-dd", "excel_slash": "yyyy/m/d", "excel_cn": 'yyyy"年"m"月"d"日"'}
FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
CN_DIGITS = "零一二三四五六七八九"

Cell = tuple[Any, ...] | None  # ("s", text) | ("n", number) | ("d", date, style)


# --------------------------------------------------------------------------
# Small helpers (pure)
# --------------------------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(body17: str) -> str:
    """GB 11643 check character (ISO 7064 MOD 11-2) of the first 17 digits."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(body17, _ID_WEIGHTS)) % 11]


def add_months(d: dt.date, months: int) -> dt.date:
    """Same day N months on, clamped to the month's last day (民法典 第二百零二条)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return dt.date(year, month, min(d.day, (nxt - dt.timedelta(days=1)).day))


def chinese_yuan(fen: int) -> str:
    """Amount in Chinese numerals ('三百八十元'): what a clerk types and no parser takes."""
    n = abs(fen) // 100
    if n >= 10_000:
        raise ValueError(f"amount {n} yuan is beyond the sample's range")
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit == 0:
            zero = bool(out)
            continue
        out += ("零" if zero else "") + CN_DIGITS[digit] + unit
        zero = False
    return ("负" if fen < 0 else "") + (out or "零") + "元"


def _split(total: int, weights: list[float]) -> list[int]:
    """Integer shares of total proportional to weights (largest remainder)."""
    s = sum(weights)
    raw = [total * w / s for w in weights]
    base = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: (base[i] - raw[i], i))
    for i in order[: total - sum(base)]:
        base[i] += 1
    return base


def _ymd(d: dt.date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def _text_date(d: dt.date, style: str) -> str:
    y, m, day = f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}"
    if style == "iso":
        return f"{y}-{m}-{day}"
    if style == "slash":
        return f"{y}/{m}/{day}"
    if style == "dot":
        return f"{y}.{m}.{day}"
    if style == "compact":
        return f"{y}{m}{day}"
    return f"{y}年{m}月{day}日"


def _money_text(fen: int) -> str:
    a = abs(fen)
    return f"{'-' if fen < 0 else ''}{a // 100:,}.{a % 100:02d}"


def _load_headers() -> dict[str, Any]:
    with HEADERS_PATH.open("rb") as f:
        return tomllib.load(f)


# --------------------------------------------------------------------------
# Residents and payments
# --------------------------------------------------------------------------
@dataclass(slots=True)
class _Person:
    name: str
    id_number: str
    birth: dt.date
    county: County
    township: str
    village: str
    residence_basis: str
    id_type: str
    labels: tuple[str, ...]  # canonical (for the tier)
    labels_shown: tuple[str, ...]  # as written (aliases, typos)
    label_tier: str  # tier from the labels alone
    due_fen: int
    subsidy_identified_on: dt.date | None
    prev_year_insured: bool
    special_event: str | None
    special_event_date: dt.date | None
    registered_on: dt.date | None
    phone: str
    relation: str
    remark: str


@dataclass(slots=True)
class _Payment:
    paid_on: dt.date
    ticket_no: str
    id_number: str
    name: str
    amount_fen: int
    coverage_year: int
    channel: str
    county: County
    defect: str | None = None


# --------------------------------------------------------------------------
# Sheets
# --------------------------------------------------------------------------
class _Sheet:
    """One worksheet being written top to bottom (constant_memory needs row order)."""

    def __init__(self, gen: _Generator, wb: xlsxwriter.Workbook, fmt: dict[str, Format],
                 file_name: str, name: str, kind: str, keys: list[str], headers: list[str],
                 titles: list[str]) -> None:
        self.gen, self.fmt, self.file_name, self.name, self.kind = gen, fmt, file_name, name, kind
        self.ws: Worksheet = wb.add_worksheet(name)
        self.keys = keys
        self.col = {k: i for i, k in enumerate(keys)}
        self.header_of = dict(zip(keys, headers))
        self.row = 0
        self.seq = 0
        self.data_rows = self.blank_rows = self.footer_rows = 0
        self.copies: list[tuple[int, int, str, Any]] = []  # heap of (due index, n, what, payload)
        self.blank_at: set[int] = set()
        self.numeric_rows: set[int] = set()  # Excel row numbers that must hold a numeric ID
        self.style: dict[str, Any] = {}
        for title in titles:
            if len(keys) > 1:
                self.ws.merge_range(self.row, 0, self.row, len(keys) - 1, title, fmt["title"])
            else:
                self.ws.write_string(self.row, 0, title, fmt["title"])
            self.row += 1
        self.header_row = self.row + 1  # as Excel shows it
        for c, h in enumerate(headers):
            self.ws.write_string(self.row, c, h, fmt["header"])
        self.ws.set_column(0, len(keys) - 1, 14)
        self.row += 1

    @property
    def excel_row(self) -> int:
        """Excel row number the next write lands on."""
        return self.row + 1

    def emit(self, cells: dict[str, Cell], defect: tuple[str, str, str] | None = None) -> None:
        """Write one data row; record a planted defect (kind, field, raw) with its place."""
        ws, fmt = self.ws, self.fmt
        self.seq += 1
        if SEQ in self.col:
            ws.write_number(self.row, self.col[SEQ], self.seq)
        for key, cell in cells.items():
            if cell is None or key not in self.col:
                continue
            c = self.col[key]
            if cell[0] == "s":
                ws.write_string(self.row, c, cell[1])
            elif cell[0] == "n":
                ws.write_number(self.row, c, cell[1])
            else:
                ws.write_datetime(self.row, c, cell[1], fmt[cell[2]])
        if defect is not None:
            kind, key, raw = defect
            self.gen.planted.append({"kind": kind, "file": self.file_name, "sheet": self.name,
                                     "row": self.row + 1, "column": self.header_of.get(key, key),
                                     "raw": raw, "what": self.kind})
        self.row += 1
        self.data_rows += 1

    def blank(self) -> None:
        self.row += 1
        self.blank_rows += 1

    def footer(self, text: str) -> None:
        self.ws.write_string(self.row, 0, text)
        self.row += 1
        self.footer_rows += 1

    def info(self) -> dict[str, Any]:
        return {"file": self.file_name, "kind": self.kind, "sheet": self.name,
                "header_row": self.header_row, "data_rows": self.data_rows,
                "blank_rows": self.blank_rows, "footer_rows": self.footer_rows,
                "rows_after_header": self.data_rows + self.blank_rows + self.footer_rows}


# --------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------
class _Generator:
    """Holds the random streams, parameters and running counts of one sample."""

    def __init__(self, rows: int, seed: int, coverage_year: int, out_dir: Path,
                 payment_rows: int | None, messy: bool, sheets_per_file: int,
                 numeric_id_rows: list[int] | None) -> None:
        self.rows, self.seed, self.year, self.out_dir = rows, seed, coverage_year, out_dir
        self.payment_target, self.messy = payment_rows, messy
        self.n_sheets = sheets_per_file
        self.numeric_id_rows = sorted(set(numeric_id_rows or ()))
        self.p: Params = load_params(coverage_year, REGION)
        self.headers = _load_headers()
        # Separate streams: a change in how payments look leaves the roster alone.
        self.rng = random.Random(f"medins-sample:{seed}:residents")
        self.rrng = random.Random(f"medins-sample:{seed}:render")
        self.prng = random.Random(f"medins-sample:{seed}:payments")
        self.issued: set[int] = set()
        self.ticket_counter = self.prng.randrange(10**11, 10**12)
        self.planted: list[dict[str, Any]] = []
        self.cases: Counter[str] = Counter()
        self.pay_count = 0
        self.big = False

        p = self.p
        self.YS, self.YE = p.year_start, p.year_end
        self.CS, self.CE = p.collection_start.value, p.collection_end.value
        self.standard_fen = p.fen("individual_standard_yuan") or 0
        self.subsidy_fen = {"full": p.fen("full_subsidy_yuan") or 0,
                            "fixed": p.fen("fixed_subsidy_yuan") or 0, "none": 0}
        self.labels = {lab.name: lab for lab in p.labels}
        self.label_alias_of = p.label_aliases()
        self.event_alias_of = p.event_aliases()
        for names, _, _ in LABEL_MIX:
            for n in names:
                if n not in self.labels:
                    raise ParamsError(f"labels.toml has no label '{n}' used by pipeline/sample.py")
        self.unknown_labels = [(t, m) for t, m in UNKNOWN_LABELS if t not in self.label_alias_of]
        self.unknown_events = [(t, m) for t, m in UNKNOWN_EVENTS if t not in self.event_alias_of]
        if not self.unknown_labels or not self.unknown_events:
            raise ParamsError("labels.toml now accepts every misspelling pipeline/sample.py plants; "
                              "add new ones to UNKNOWN_LABELS / UNKNOWN_EVENTS")
        events = {name: aliases for name, aliases in p.event_types}
        self.events = [(ev.name, events.get(ev.name, ())) for ev in p.special_events]
        self.event_windows = {ev.name: ev for ev in p.special_events}
        self.mix_cum: list[float] = []
        acc = NEWBORN_SHARE
        for _, share, _ in LABEL_MIX:
            acc += share
            self.mix_cum.append(acc)
        footer_prefixes = tuple(self.headers["footer"]["prefixes"])
        for text in ("合计", "制表人", "备注"):
            if not text.startswith(footer_prefixes):
                raise ParamsError(f"schemas/headers.toml footer prefixes lack '{text}'")
        self.other_year_standard: dict[int, int] = {}
        for y in (coverage_year - 1, coverage_year + 1):
            try:
                self.other_year_standard[y] = load_params(y, REGION).fen("individual_standard_yuan") or 0
            except ParamsError:  # no parameters for that year: reuse this year's standard
                self.other_year_standard[y] = self.standard_fen

    # ---------------------------------------------------------------- dates
    def _day(self, lo: dt.date, hi: dt.date, rng: random.Random | None = None) -> dt.date:
        r = rng or self.rng
        return dt.date.fromordinal(r.randint(lo.toordinal(), hi.toordinal()))

    def _in_period(self, rng: random.Random | None = None) -> dt.date:
        return self._day(self.CS, self.CE, rng)

    def _late(self, rng: random.Random | None = None) -> dt.date:
        return self._day(self.CE + dt.timedelta(days=1), self.CE + dt.timedelta(days=150), rng)

    def _boundary(self, rng: random.Random) -> dt.date:
        one = dt.timedelta(days=1)
        return rng.choice((self.CS, self.CE, self.CE + one, self.YS - one, self.YS))

    def age_on_ys(self, birth: dt.date) -> int:
        """Whole years completed on 1 January of Y (RULES.md §0)."""
        return self.year - birth.year - (1 if (birth.month, birth.day) > (1, 1) else 0)

    def _birth_for_age(self, age: int) -> dt.date:
        """A birth date giving exactly `age` completed years on YS."""
        hi = self.YS.replace(year=self.year - age)
        lo = self.YS.replace(year=self.year - age - 1) + dt.timedelta(days=1)
        return self._day(lo, hi)

    def _birth(self, band: str) -> dt.date:
        r, p = self.rng, self.p
        if band == "child":
            return self._birth_for_age(r.randint(0, p.adult_age - 1))
        if band == "student":
            return self._birth_for_age(r.randint(p.adult_age, p.adult_age + 6))
        if band == "adult":
            return self._birth_for_age(r.randint(p.adult_age, p.elderly_age + 10))
        if band == "old":
            return self._birth_for_age(r.randint(p.elderly_age, 95))
        if band in ("edge_elderly", "edge_both"):
            edge = p.adult_age if band == "edge_both" and r.random() < 0.5 else p.elderly_age
            u = r.random()
            if u < 0.4:  # 1 January: completes the age exactly on YS
                return self.YS.replace(year=self.year - edge)
            if u < 0.7:  # 2 January: one day short
                return self.YS.replace(year=self.year - edge) + dt.timedelta(days=1)
            return self._birth_for_age(r.randint(edge - 2, edge + 1))
        u = r.random()
        for upper, lo, hi in ((0.07, 0, 5), (0.22, 6, 17), (0.47, 18, 39), (0.77, 40, 59),
                              (0.96, 60, 79), (1.0, 80, 95)):
            if u < upper:
                return self._birth_for_age(r.randint(lo, hi))
        raise AssertionError("unreachable")

    def _newborn_birth(self) -> dt.date:
        r, full_from = self.rng, self.p.newborn_full_from.value
        u = r.random()
        if u < 0.06:
            return full_from
        if u < 0.12:
            return full_from - dt.timedelta(days=1)
        # born in Y-2 .. the first half of Y
        return self._day(dt.date(self.year - 2, 1, 1), self.YS + dt.timedelta(days=180))

    # ---------------------------------------------------------------- tiers
    def label_tier(self, canonical: tuple[str, ...], age: int) -> str:
        """Highest tier the labels give at this age (RULES.md §1, 就高原则)."""
        best = "none"
        for name in canonical:
            lab = self.labels[name]
            tier = lab.tier
            if lab.age_rule == "elderly" and age < self.p.elderly_age:
                tier = "none"
            elif lab.age_rule == "minor_or_elderly" and self.p.adult_age <= age < self.p.elderly_age:
                tier = "none"
            if TIER_RANK[tier] > TIER_RANK[best]:
                best = tier
        return best

    def due_fen(self, label_tier: str, birth: dt.date) -> int:
        """Individual due = standard - subsidy of the tier (RULES.md §2); newborns are full."""
        tier = "full" if self.is_full_newborn(birth) else label_tier
        return self.standard_fen - self.subsidy_fen[tier]

    def is_full_newborn(self, birth: dt.date) -> bool:
        p = self.p
        return (birth >= p.newborn_full_from.value
                and self.year - birth.year <= p.newborn_full_years.value - 1)

    # ---------------------------------------------------------------- IDs
    def new_id(self, region: str, birth: dt.date, male: bool, rng: random.Random | None = None) -> str:
        """A valid, unused 18-character ID (GB 11643: region, birth, sequence, check)."""
        r = rng or self.rng
        ymd = _ymd(birth)
        regions = [region] + [c.code for c in COUNTIES if c.code != region] + list(MAINLAND_MIGRANT_CODES)
        for code in regions:
            for _ in range(60):
                seq = r.randrange(0, 500) * 2 + (1 if male else 0)
                if seq == 0:
                    continue
                body = f"{code}{ymd}{seq:03d}"
                key = int(body)
                if key not in self.issued:
                    self.issued.add(key)
                    return body + id_check_digit(body)
        # Millions of residents crowd the planted boundary birthdays (age limits, newborn cut-offs):
        # past the random tries, take the first free sequence in order. Reached only at that scale,
        # so smaller samples (and their random stream) are unchanged.
        for code in regions + [c for c in OVERFLOW_CODES if c not in regions]:
            for half in range(500):
                seq = half * 2 + (1 if male else 0)
                body = f"{code}{ymd}{seq:03d}"
                if seq and int(body) not in self.issued:
                    self.issued.add(int(body))
                    return body + id_check_digit(body)
        raise RuntimeError(f"no free ID sequence for birth date {birth}")

    @staticmethod
    def impossible_birth_id(id_number: str, rng: random.Random) -> str:
        """The ID with a birth date no calendar has (30 February, month 13, ...), check digit right."""
        year = id_number[6:10]
        bad = rng.choice((f"{year}0230", f"{year}1301", f"{year}0431", f"{year}0011", f"{year}0900"))
        body = f"{id_number[:6]}{bad}{id_number[14:17]}"
        return body + id_check_digit(body)

    @staticmethod
    def wrong_check(id_number: str, rng: random.Random) -> str:
        right = id_number[-1]
        return id_number[:-1] + rng.choice([c for c in "0123456789X" if c != right])

    def _name(self, male: bool, rng: random.Random | None = None) -> str:
        r = rng or self.rng
        pool = GIVEN_MALE if male else GIVEN_FEMALE
        given = r.choice(pool) + (r.choice(pool) if r.random() < 0.7 else "")
        return r.choices(SURNAMES, cum_weights=SURNAME_CUM_WEIGHTS)[0] + given

    # ---------------------------------------------------------------- people
    def make_person(self, county: County, township: str, village: str) -> _Person:
        r = self.rng
        male = r.random() < 0.5
        u = r.random()
        canonical: tuple[str, ...] = ()
        band = "any"
        newborn = False
        if u < NEWBORN_SHARE:
            newborn = True
            birth = self._newborn_birth()
        else:
            for cum, (names, _, b) in zip(self.mix_cum, LABEL_MIX):
                if u < cum:
                    canonical, band = names, b
                    break
            birth = self._birth(band)
        shown = tuple(self._label_spelling(n) for n in canonical)
        age = self.age_on_ys(birth)
        ltier = self.label_tier(canonical, age)
        due = self.due_fen(ltier, birth)

        v = r.random()
        if v < PERMIT_SHARE:
            region, basis, id_type = r.choice(PERMIT_CODES), "居住证", "港澳台居民居住证"
        elif v < PERMIT_SHARE + MIGRANT_SHARE:
            region, basis, id_type = r.choice(MAINLAND_MIGRANT_CODES), "居住证", "居民身份证"
        else:
            region, basis, id_type = county.code, "本地户籍", "居民身份证"
            if birth.year < OLD_CODE_BORN_BEFORE and r.random() < OLD_CODE_SHARE:
                region = OLD_REGION_CODE
        id_number = self.new_id(region, birth, male)

        prev = r.random() < PREV_INSURED_SHARE and birth < self.YS - dt.timedelta(days=365)
        if newborn and birth >= self.CS - dt.timedelta(days=120):
            gap = r.choice((0, 3, 10, 20, 35, 60, 89, 90, 91, 120, 200))
            registered: dt.date | None = max(self.CS, birth + dt.timedelta(days=gap))
        else:
            w = r.random()
            registered = (self._in_period() if w < 0.85 else None if w < 0.95 else self._late())

        subsidised = ltier in ("full", "fixed") and any(self.labels[n].subsidized_object for n in canonical)
        subsidy_on = None
        if subsidised:
            w = r.random()
            if w < 0.80:
                subsidy_on = self._day(self.CS - dt.timedelta(days=365), self.CE)
            elif w < 0.85:
                subsidy_on = self.CE
            elif w < 0.88:
                subsidy_on = self.CE + dt.timedelta(days=1)
            else:
                subsidy_on = self._late()

        event = event_date = None
        if r.random() < SPECIAL_EVENT_SHARE and self.events:
            name, aliases = r.choice(self.events)
            event = r.choice(aliases) if aliases and r.random() < 0.2 else name
            prev = r.random() < 0.3

        phone = f"1{r.choice('3578')}{r.randrange(10**9):09d}" if r.random() < 0.8 else ""
        relation = r.choice(("户主", "配偶", "子", "女", "父亲", "母亲", "孙子", "孙女"))
        remark = r.choice(("", "", "", "", "", "新增", "续保", "外出务工", "本人已确认"))
        return _Person(
            name=self._name(male), id_number=id_number, birth=birth, county=county,
            township=township, village=village, residence_basis=basis, id_type=id_type,
            labels=canonical, labels_shown=shown, label_tier=ltier, due_fen=due,
            subsidy_identified_on=subsidy_on, prev_year_insured=prev, special_event=event,
            special_event_date=event_date, registered_on=registered, phone=phone,
            relation=relation, remark=remark)

    def _label_spelling(self, name: str) -> str:
        aliases = self.labels[name].aliases
        if aliases and self.rng.random() < 0.15:
            return self.rng.choice(aliases)
        return name

    # ---------------------------------------------------------------- payments
    def _ticket(self, county: County, paid_on: dt.date) -> str:
        """20 digits, kept as text: county tax prefix, year, running number."""
        self.ticket_counter += self.prng.randint(1, 40)
        return f"{county.tax_prefix}{paid_on.year % 100:02d}{self.ticket_counter:015d}"

    def _pay(self, person: _Person, paid_on: dt.date, fen: int, year: int | None = None) -> _Payment:
        r = self.prng
        channel = r.choices(CHANNELS, cum_weights=CHANNEL_CUM_WEIGHTS)[0]
        return _Payment(paid_on, self._ticket(person.county, paid_on), person.id_number, person.name,
                        fen, year or self.year, channel, person.county)

    def plan_payments(self, person: _Person) -> list[_Payment]:
        """The person's payments for Y (the cases of RULES.md §3 and §5), registration adjusted."""
        r, due, std = self.prng, person.due_fen, self.standard_fen
        out: list[_Payment] = []
        if person.special_event is not None:
            paid = self._late(r) if r.random() < 0.7 else self._in_period(r)
            if due > 0:
                out.append(self._pay(person, paid, due))
                self.cases["special_event_payer"] += 1
            else:
                person.registered_on = paid
            person.special_event_date = self._event_date(person.special_event, paid)
            return out
        if person.subsidy_identified_on is not None and r.random() < 0.12:
            # paid the whole standard before the subsidy was identified: a refund case
            paid = self._in_period(r)
            out.append(self._pay(person, paid, std))
            person.subsidy_identified_on = self._identified_after(paid)
            self.cases["subsidised_paid_standard"] += 1
        elif due > 0:
            out = self._owed_payments(person)
        if out:
            first = min(p.paid_on for p in out)
            if person.registered_on is not None and person.registered_on > first:
                person.registered_on = first - dt.timedelta(days=r.randint(0, 10))
        return out

    def _owed_payments(self, person: _Person) -> list[_Payment]:
        r, due = self.prng, person.due_fen
        u = r.random()
        if u < 0.06:
            self.cases["unpaid"] += 1
            return []
        if u < 0.09:
            part = max(1, due * r.randint(2, 9) // 10 // 1000) * 1000
            self.cases["underpaid"] += 1
            return [self._pay(person, self._in_period(r), min(part, due - 100))]
        if u < 0.11:
            first = max(1000, due * r.randint(3, 7) // 10 // 1000 * 1000)
            d1 = self._in_period(r)
            d2 = max(d1, min(d1 + dt.timedelta(days=r.randint(1, 90)), self.CE + dt.timedelta(days=60)))
            self.cases["instalments"] += 1
            return [self._pay(person, d1, first), self._pay(person, d2, due - first)]
        if u < 0.12:
            d1 = self._in_period(r)
            self.cases["duplicate_refund"] += 1
            if r.random() < 0.5:  # paid twice, one refunded
                d2 = d1 + dt.timedelta(days=r.randint(0, 3))
                return [self._pay(person, d1, due), self._pay(person, d2, due),
                        self._pay(person, d2 + dt.timedelta(days=r.randint(10, 60)), -due)]
            # typed three times the amount, the excess refunded
            return [self._pay(person, d1, 3 * due),
                    self._pay(person, d1 + dt.timedelta(days=r.randint(10, 60)), -2 * due)]
        w = r.random()
        paid = self._boundary(r) if w < 0.03 else self._late(r) if w < 0.11 else self._in_period(r)
        if person.registered_on is not None and person.birth >= self.CS - dt.timedelta(days=120):
            paid = person.registered_on + dt.timedelta(days=r.randint(0, 5))  # a newborn's parents
        self.cases["paid_in_full"] += 1
        return [self._pay(person, paid, due)]

    def _identified_after(self, paid: dt.date) -> dt.date:
        """A subsidy identified after the payment, half the time after the collection end."""
        after = max(self.CE + dt.timedelta(days=1), paid) if self.prng.random() < 0.5 else paid
        return after + dt.timedelta(days=self.prng.randint(0, 40))

    def _event_date(self, event_shown: str, anchor: dt.date) -> dt.date:
        """An event date around the payment: inside, at and past its window (RULES.md §4)."""
        r = self.prng
        ev = self.event_windows.get(self.event_alias_of.get(event_shown, ""))
        if ev is None:
            return anchor - dt.timedelta(days=r.randint(0, 120))
        if ev.window_months:
            k = ev.window_months
            return r.choice((add_months(anchor, -k), add_months(anchor, -k) - dt.timedelta(days=1),
                             anchor - dt.timedelta(days=r.randint(0, 60)), anchor,
                             anchor + dt.timedelta(days=r.randint(1, 20)), add_months(anchor, -k - 1)))
        n = ev.window_days or 0
        return anchor - dt.timedelta(days=r.choice((0, 1, 30, n - 1, n, n + 1, n + 30, -5)))

    def stranger_payment(self, county: County) -> _Payment:
        """A payment by someone not on the roster (a relative registered elsewhere, a typo)."""
        r = self.prng
        male = r.random() < 0.5
        birth = dt.date.fromordinal(r.randint(self.YS.replace(year=self.year - 70).toordinal(),
                                              self.YS.replace(year=self.year - 18).toordinal()))
        paid = self._in_period(r)
        self.cases["not_on_roster_payments"] += 1
        return _Payment(paid, self._ticket(county, paid), self.new_id(county.code, birth, male, r),
                        self._name(male, r), self.standard_fen, self.year,
                        r.choices(CHANNELS, cum_weights=CHANNEL_CUM_WEIGHTS)[0], county)

    def extra_payments(self, person: _Person) -> list[_Payment]:
        """Rows the tax export holds beside this person's: strangers, other coverage years."""
        r, out = self.prng, []
        if r.random() < 0.01:
            out.append(self.stranger_payment(person.county))
        if r.random() < 0.005:  # the wrong 费款所属期 picked at the counter or in the app
            year = self.year + r.choice((-1, 1))
            out.append(self._pay(person, self._in_period(r), self.other_year_standard[year], year))
            self.cases["other_year_payments"] += 1
        return out


def _positions(gen: _Generator, counties: list[County], n: int):
    """Yield (county, township, village) for n residents, sorted like a real roster."""
    r = random.Random(f"medins-sample:{gen.seed}:places:{','.join(c.slug for c in counties)}:{n}")
    for county, cn in zip(counties, _split(n, [c.weight for c in counties])):
        tws = list(county.townships)
        for township, tn in zip(tws, _split(cn, [r.uniform(0.5, 2.0) for _ in tws])):
            villages = _villages(county, township)
            for village, vn in zip(villages, _split(tn, [r.uniform(0.5, 2.0) for _ in villages])):
                for _ in range(vn):
                    yield county, township, village


def _villages(county: County, township: str) -> list[str]:
    """Plausible, stable village names of one township (X家村, X村委会, X社区)."""
    r = random.Random(f"villages:{county.code}:{township}")
    names: list[str] = []
    street = township.endswith("街道")
    wanted = r.randint(5, 10) + (3 if street else 0)
    while len(names) < wanted:
        w = r.random()
        if street:
            name = r.choice(VILLAGE_WORDS) + "社区"
        elif w < 0.45:
            name = r.choice(SURNAMES[:60]) + "家村"
        elif w < 0.9:
            name = r.choice(VILLAGE_WORDS) + "村委会"
        else:
            name = township[:2] + r.choice(("社区", "居委会"))
        if name not in names:
            names.append(name)
    return names


# --------------------------------------------------------------------------
# Workbook writing
# --------------------------------------------------------------------------
class _Writer:
    """Renders residents and payments into messy (or clean) workbooks."""

    def __init__(self, gen: _Generator) -> None:
        self.g = gen
        self.r = gen.rrng

    # ------------------------------------------------------------ layouts
    def _header(self, section: str, key: str) -> str:
        aliases = self.g.headers[section]["fields"][key]["aliases"]
        if not self.g.messy:
            return aliases[0]
        r = self.r
        h = aliases[0] if r.random() < 0.6 else r.choice(aliases)
        w = r.random()
        if w < 0.08 and self.g.headers[section]["fields"][key].get("required"):
            h += "*"
        elif w < 0.16 and "(" in h:
            h = h.replace("(", "（").replace(")", "）")
        elif w < 0.24 and len(h) == 2:
            h = h[0] + " " + h[1]
        return h

    def layout(self, section: str, fields: tuple[str, ...], extras: tuple[str, ...],
               optional: dict[str, float]) -> tuple[list[str], list[str]]:
        r = self.r
        keys = [f for f in fields if not self.g.messy or r.random() < optional.get(f, 1.0)]
        if self.g.messy:
            r.shuffle(keys)
            extra = r.choice(extras)
            keys.insert(r.randint(1, len(keys)), "extra:" + extra)
            keys.insert(0, SEQ)
        headers = []
        for k in keys:
            if k == SEQ:
                headers.append(r.choice(self.g.headers["ignore"]["aliases"]))
            elif k.startswith("extra:"):
                headers.append(k[6:])
            else:
                headers.append(self._header(section, k))
        return keys, headers

    def sheet_style(self, sh: _Sheet) -> None:
        """The sheet's habits: its usual date form per column, amount form, 是/否 spelling."""
        r, messy = self.r, self.g.messy
        date_main = {k: (r.choice(DATE_STYLES) if messy else "excel_iso") for k in sh.keys}
        sh.style = {
            "date": date_main,
            "amount": r.choice(("number", "number", "text_yuan", "text")) if messy else "number",
            "yes_no": r.choices(("是否", "YN", "10t", "10n"), cum_weights=(80, 88, 94, 100))[0]
            if messy else "是否",
            "coverage": r.choice(("number", "text", "nian", "range")) if messy else "number",
        }

    # ------------------------------------------------------------ cells
    def date_cell(self, sh: _Sheet, key: str, d: dt.date | None) -> Cell:
        if d is None:
            return None
        style = sh.style["date"].get(key, "excel_iso")
        if self.g.messy:
            u = self.r.random()
            if u > 0.99:
                return ("n", (d - EXCEL_EPOCH).days)  # a bare serial: the date format got lost
            if u > 0.85:
                style = self.r.choice(DATE_STYLES)
        if style.startswith("excel"):
            return ("d", d, style)
        return ("s", _text_date(d, style))

    def id_cell(self, id_number: str) -> Cell:
        if not self.g.messy:
            return ("s", id_number)
        r = self.r
        u = r.random()
        text = id_number
        if text.endswith("X") and r.random() < 0.5:
            text = text[:-1] + "x"
        if u < 0.03:
            text = text.translate(FULL_WIDTH)
        elif u < 0.06:
            text = r.choice((" ", "\u3000", "")) + text + r.choice((" ", "  ", "\u3000"))
        return ("s", text)

    def amount_cell(self, sh: _Sheet, fen: int) -> Cell:
        style = sh.style["amount"]
        if self.g.messy and self.r.random() < 0.15:
            style = self.r.choice(("number", "text_yuan", "text"))
        if style == "number":
            return ("n", fen / 100)
        return ("s", _money_text(fen) + ("元" if style == "text_yuan" else ""))

    def yes_no_cell(self, sh: _Sheet, yes: bool) -> Cell:
        style = sh.style["yes_no"]
        if style == "是否":
            return ("s", "是" if yes else "否")
        if style == "YN":
            return ("s", "Y" if yes else "N")
        if style == "10t":
            return ("s", "1" if yes else "0")
        return ("n", 1 if yes else 0)

    def coverage_cell(self, sh: _Sheet, year: int) -> Cell:
        style = sh.style["coverage"]
        if style == "number":
            return ("n", year)
        if style == "text":
            return ("s", str(year))
        if style == "nian":
            return ("s", f"{year}年")
        ys, ye = self.g.YS.replace(year=year), self.g.YE.replace(year=year)
        return ("s", f"{ys.isoformat()}..{ye.isoformat()}")

    def bad_date_text(self, d: dt.date) -> str:
        if self.r.random() < 0.5:
            return f"{d.year:04d}-13-{self.r.randint(32, 45)}"
        return f"{d.day:02d}/{d.month:02d}/{d.year:04d}"  # dd/mm/yyyy: ambiguous, rejected

    def roster_cells(self, sh: _Sheet, p: _Person, township: str | None = None) -> dict[str, Cell]:
        messy, r = self.g.messy, self.r
        name = p.name + (" " if messy and r.random() < 0.01 else "")
        sep = r.choice(LABEL_SEPARATORS) if messy else "、"
        return {
            "name": ("s", name),
            "id_type": ("s", p.id_type),
            "id_number": self.id_cell(p.id_number),
            "birth_date": self.date_cell(sh, "birth_date", p.birth),
            "county": ("s", p.county.name),
            "township": ("s", township or p.township),
            "village": ("s", p.village if township is None else _villages(p.county, township)[0]),
            "residence_basis": ("s", p.residence_basis),
            "identity_labels": ("s", sep.join(p.labels_shown)) if p.labels_shown else None,
            "subsidy_identified_on": self.date_cell(sh, "subsidy_identified_on", p.subsidy_identified_on),
            "prev_year_insured": self.yes_no_cell(sh, p.prev_year_insured),
            "special_event": ("s", p.special_event) if p.special_event else None,
            "special_event_date": self.date_cell(sh, "special_event_date", p.special_event_date),
            "registered_on": self.date_cell(sh, "registered_on", p.registered_on),
            "extra:联系电话": ("s", p.phone) if p.phone else None,
            "extra:备注信息": ("s", p.remark) if p.remark else None,
            "extra:与户主关系": ("s", p.relation),
        }

    def payment_cells(self, sh: _Sheet, pay: _Payment) -> dict[str, Cell]:
        messy, r = self.g.messy, self.r
        return {
            "id_number": self.id_cell(pay.id_number),
            "name": ("s", pay.name + (" " if messy and r.random() < 0.01 else "")),
            "amount": self.amount_cell(sh, pay.amount_fen),
            "paid_on": self.date_cell(sh, "paid_on", pay.paid_on),
            "coverage_year": self.coverage_cell(sh, pay.coverage_year),
            "ticket_no": ("s", pay.ticket_no),
            "channel": ("s", pay.channel) if not messy or r.random() < 0.97 else None,
            "extra:征收机关": ("s", f"国家税务总局{pay.county.name}税务局"),
            "extra:备注信息": ("s", "退费") if pay.amount_fen < 0 else None,
        }

    # ------------------------------------------------------------ defects
    def _spoil_id(self, kind: str, id_number: str, cells: dict[str, Cell]) -> str | None:
        """The three ways an ID arrives broken (RULES.md §6); None for other kinds."""
        if kind == "id_numeric":
            value = int(id_number[:15]) * 1000  # what Excel keeps of an 18-digit number
            cells["id_number"] = ("n", value)
            return str(value)
        if kind == "id_check_digit":
            text = self.g.wrong_check(id_number, self.r)
        elif kind == "id_birth_date":
            text = self.g.impossible_birth_id(id_number, self.r)
            cells["birth_date"] = None
        else:
            return None
        cells["id_number"] = ("s", text)
        return text

    def roster_defect(self, kind: str, p: _Person, cells: dict[str, Cell]) -> tuple[str, str, str]:
        """Spoil one roster cell the way kind says; (kind, field, raw value) for the record."""
        raw = self._spoil_id(kind, p.id_number, cells)
        if raw is not None:
            return (kind, "id_number", raw)
        if kind == "required_empty":
            key = self.r.choice(("township", "township", "name", "county"))
            cells[key] = None
            return (kind, key, "")
        if kind == "bad_date":
            text = self.bad_date_text(p.registered_on or self.g.CS)
            cells["registered_on"] = ("s", text)
            return (kind, "registered_on", text)
        if kind == "unknown_label":  # the typo is already in the person's labels
            return (kind, "identity_labels", p.labels_shown[0])
        if kind == "unknown_event":
            return (kind, "special_event", p.special_event or "")
        raise ValueError(f"unknown roster defect {kind!r}")

    def payment_defect(self, pay: _Payment, cells: dict[str, Cell]) -> tuple[str, str, str]:
        """Spoil one payment cell the way pay.defect says; (kind, field, raw value)."""
        kind = pay.defect or ""
        raw = self._spoil_id(kind, pay.id_number, cells)
        if raw is not None:
            return (kind, "id_number", raw)
        if kind == "required_empty":
            key = self.r.choice(("ticket_no", "name"))
            cells[key] = None
            return (kind, key, "")
        if kind == "bad_date":
            text = self.bad_date_text(pay.paid_on)
            cells["paid_on"] = ("s", text)
            return (kind, "paid_on", text)
        if kind == "bad_amount":
            text = chinese_yuan(pay.amount_fen)
            cells["amount"] = ("s", text)
            return (kind, "amount", text)
        raise ValueError(f"unknown payment defect {kind!r}")


# --------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------
def _workbook(gen: _Generator, path: Path, title: str) -> tuple[xlsxwriter.Workbook, dict[str, Format]]:
    """A workbook with fixed properties (same bytes for the same seed) and its formats."""
    options: dict[str, Any] = {"constant_memory": True} if gen.big else {"in_memory": True}
    wb = xlsxwriter.Workbook(str(path), options)
    wb.set_properties({
        "title": title, "author": "medins sample", "company": f"{CITY_NAME}医疗保障局",
        "comments": f"pipeline.sample seed={gen.seed} coverage_year={gen.year}",
        "created": DOC_CREATED,
    })
    fmt = {"title": wb.add_format({"bold": True, "align": "center", "font_size": 14}),
           "header": wb.add_format({"bold": True, "border": 1, "align": "center"})}
    for style, num_format in EXCEL_DATE_FORMATS.items():
        fmt[style] = wb.add_format({"num_format": num_format})
    return wb, fmt


def _planted_indices(rng: random.Random, n: int, rates: dict[str, float], messy: bool,
                     population: int) -> dict[int, str]:
    """Which resident indices carry which planted defect: exact counts, seeded."""
    if not messy or n < MIN_ROWS_FOR_BAD:
        return {}
    counts = {k: max(1, round(rate * n)) for k, rate in rates.items()}
    chosen = iter(rng.sample(range(population), min(sum(counts.values()), population)))
    out: dict[int, str] = {}
    for kind, c in counts.items():
        for idx in [next(chosen, None) for _ in range(c)]:
            if idx is not None:
                out[idx] = kind
    return out


class _PaymentBook:
    """The tax export: written alongside the rosters, date-sorted within bounded chunks."""

    def __init__(self, gen: _Generator, w: _Writer, out_dir: Path, plan: dict[int, str]) -> None:
        self.gen, self.w, self.plan = gen, w, plan
        self.pending_defects = len(plan)
        self.path = out_dir / "payments.xlsx"
        self.tmp = out_dir / ".payments.xlsx.part"
        self.wb, fmt = _workbook(gen, self.tmp, f"{CITY_NAME}{gen.year}年度城乡居民医保缴费明细")
        self.sheets: list[_Sheet] = []
        for j in range(gen.n_sheets):
            keys, headers = w.layout("payments", PAYMENT_FIELDS, PAYMENT_EXTRAS, {})
            titles = _titles(gen, f"{CITY_NAME}{gen.year}年度城乡居民基本医疗保险费缴费明细（税务）",
                             f"数据来源：国家税务总局{CITY_NAME}税务局　导出日期："
                             f"{_cn_date(gen.CE + dt.timedelta(days=20))}")
            sh = _Sheet(gen, self.wb, fmt, self.path.name, _sheet_name("缴费明细", j, gen.n_sheets),
                        "payments", keys, headers, titles)
            w.sheet_style(sh)
            self.sheets.append(sh)
        self.buffers: list[list[_Payment]] = [[] for _ in self.sheets]
        expected_per_sheet = int((gen.rows if gen.payment_target is None else gen.payment_target)
                                 * 0.9 / gen.n_sheets)
        if gen.messy and expected_per_sheet >= 10:
            for sh in self.sheets:
                sh.blank_at = set(gen.rrng.sample(range(1, expected_per_sheet),
                                                  max(1, round(expected_per_sheet * 0.003))))

    def add(self, g: int, person: _Person, pays: list[_Payment]) -> None:
        """Queue resident g's payment rows; a planted defect goes on the first of them."""
        gen = self.gen
        kind = self.plan.get(g)
        if kind is not None:
            self.pending_defects -= 1
            if not pays:
                pays = [gen._pay(person, gen._in_period(gen.prng), gen.standard_fen)]
                gen.cases["paid_while_not_due"] += 1
            pays[0].defect = kind
        if gen.payment_target is not None:
            pays = _fit_to_target(gen, g, pays, self.pending_defects)
        gen.pay_count += len(pays)
        j = min(len(self.sheets) - 1, g * len(self.sheets) // gen.rows)
        self.buffers[j].extend(pays)
        if len(self.buffers[j]) >= PAYMENT_CHUNK_ROWS:
            self._flush(j)

    def _flush(self, j: int) -> None:
        buf, sh = self.buffers[j], self.sheets[j]
        buf.sort(key=lambda x: (x.paid_on, x.ticket_no))
        for pay in buf:
            if sh.data_rows in sh.blank_at:
                sh.blank()
            cells = self.w.payment_cells(sh, pay)
            sh.emit(cells, self.w.payment_defect(pay, cells) if pay.defect else None)
        buf.clear()

    def close(self) -> Path:
        """Top up to payment_rows with strangers' payments, write the rest and the footers."""
        gen = self.gen
        if gen.payment_target is not None:
            while gen.pay_count < gen.payment_target:
                self.buffers[-1].append(gen.stranger_payment(COUNTIES[gen.pay_count % len(COUNTIES)]))
                gen.pay_count += 1
        for j, sh in enumerate(self.sheets):
            self._flush(j)
            _write_footers(gen, sh, "笔")
        self.wb.close()
        os.replace(self.tmp, self.path)
        return self.path


def _fit_to_target(gen: _Generator, g: int, pays: list[_Payment], pending_defects: int) -> list[_Payment]:
    """Keep the running payment count on course for payment_rows: drop or split payments.

    Rows carrying a planted defect are always kept (slots are reserved for them).
    """
    target = gen.payment_target or 0
    expected = target * (g + 1) / gen.rows
    have = gen.pay_count + len(pays)
    room = target - gen.pay_count - pending_defects
    if have > expected + 3 or len(pays) > room:
        kept = [p for p in pays if p.defect]
        gen.cases["dropped_for_target"] += len(pays) - len(kept)
        return kept
    deficit = int(expected - have)
    whole = pays[0] if len(pays) == 1 else None
    k = min(12, deficit + 1, room)
    if whole is None or whole.defect or whole.amount_fen <= 0 or k < 2:
        return pays
    step = whole.amount_fen // k // 100 * 100
    if step <= 0:
        return pays
    out = []
    for i, amount in enumerate([step] * (k - 1) + [whole.amount_fen - step * (k - 1)]):
        day = whole.paid_on + dt.timedelta(days=3 * i)
        out.append(_Payment(day, gen._ticket(whole.county, day), whole.id_number, whole.name,
                            amount, whole.coverage_year, whole.channel, whole.county))
    gen.cases["split_for_target"] += 1
    return out


def _roster_files(rows: int, roster_files: int) -> list[tuple[str, str, list[County], int]]:
    """(file slug, place, counties, residents): one city-wide file, or one per county."""
    if roster_files == 1:
        return [(CITY_SLUG, CITY_NAME, list(COUNTIES), rows)]
    files = []
    for k, n in enumerate(_split(rows, [1.0] * roster_files)):
        county = COUNTIES[k % len(COUNTIES)]
        part = k // len(COUNTIES)
        files.append((county.slug + (f"_{part + 1}" if part else ""), county.name, [county], n))
    return files


def _write_roster(gen: _Generator, w: _Writer, book: _PaymentBook, first_file: bool, slug: str,
                  place: str, counties: list[County], n_file: int, g: int,
                  plan: dict[int, str]) -> tuple[Path, list[_Sheet], int]:
    """One roster workbook; residents g, g+1, ... with their payments queued on the way."""
    path = gen.out_dir / f"roster_{slug}.xlsx"
    tmp = gen.out_dir / f".roster_{slug}.xlsx.part"
    wb, fmt = _workbook(gen, tmp, f"{place}{gen.year}年度城乡居民医保参保登记花名册")
    sheets: list[_Sheet] = []
    for j in range(gen.n_sheets):
        keys, headers = w.layout("roster", ROSTER_FIELDS, ROSTER_EXTRAS, ROSTER_OPTIONAL_COLUMNS)
        titles = _titles(gen, f"{place}{gen.year}年度城乡居民医保参保登记花名册",
                         f"填报单位：{place}医疗保障局（盖章）　　统计截至：{_cn_date(gen.CE)}")
        sh = _Sheet(gen, wb, fmt, path.name, _sheet_name("参保登记", j, gen.n_sheets), "roster",
                    keys, headers, titles)
        w.sheet_style(sh)
        sheets.append(sh)
    sizes = _split(n_file, [1.0] * gen.n_sheets)
    for sh, size in zip(sheets, sizes):
        if gen.messy and size >= 10:
            sh.blank_at = set(gen.rrng.sample(range(1, size), max(1, round(size * 0.003))))
    if first_file and gen.numeric_id_rows:
        first = sheets[0].excel_row
        last = first + sizes[0] - 1
        outside = [x for x in gen.numeric_id_rows if not first <= x <= last]
        if outside:
            raise SampleArgumentError(
                f"numeric_id_rows {outside} 不在第一张花名册表的数据行 / are outside the data rows "
                f"{first}..{last} of the first roster sheet")
        sheets[0].numeric_rows = set(gen.numeric_id_rows)

    positions = _positions(gen, counties, n_file)
    for j, size in enumerate(sizes):
        sh = sheets[j]
        for local in range(size):
            county, township, village = next(positions)
            _emit_due_copies(gen, w, sh, local)
            if local in sh.blank_at and sh.excel_row not in sh.numeric_rows:
                sh.blank()
            kind = "id_numeric" if sh.excel_row in sh.numeric_rows else plan.get(g)
            person = gen.make_person(county, township, village)
            typo = None
            if kind == "unknown_label":
                typo, meant = gen.rng.choice(gen.unknown_labels)
                person.labels, person.labels_shown = (meant,), (typo,)
                person.label_tier = gen.label_tier(person.labels, gen.age_on_ys(person.birth))
                person.due_fen = gen.due_fen(person.label_tier, person.birth)
            elif kind == "unknown_event":
                typo, meant = gen.rng.choice(gen.unknown_events)
                person.special_event = meant
            pays = gen.plan_payments(person)
            if kind == "unknown_event":
                person.special_event = typo
            cells = w.roster_cells(sh, person)
            if kind == "exact_duplicate":
                sh.emit(cells)
                heapq.heappush(sh.copies, (local + gen.rrng.randint(1, 15), g, "copy", cells))
            elif kind == "conflicting_duplicate":
                sh.emit(cells, (kind, "id_number", cells["id_number"][1]))
                t = (j + 1) % len(sheets)
                due = gen.rrng.randint(0, sizes[t] - 1) if t != j else local + gen.rrng.randint(1, 15)
                heapq.heappush(sheets[t].copies, (due, g, "conflict", person))
            else:
                sh.emit(cells, w.roster_defect(kind, person, cells) if kind else None)
            book.add(g, person, pays + gen.extra_payments(person))
            g += 1
    for sh in sheets:
        _emit_due_copies(gen, w, sh, None)
        _write_footers(gen, sh, "人")
    wb.close()
    os.replace(tmp, path)
    return path, sheets, g


def generate_sample(rows: int, seed: int, coverage_year: int, out_dir: Path, *,
                    payment_rows: int | None = None, roster_files: int = 1, messy: bool = True,
                    sheets_per_file: int = 2, numeric_id_rows: list[int] | None = None) -> dict[str, Any]:
    """Write roster and payment workbooks for coverage year Y into out_dir; say what was planted.

    rows: residents, one roster row each (planted duplicate copies come on top).
    payment_rows: exact number of payment data rows, or None for the natural
    mix (about 0.9 per resident). roster_files: 1 writes one city-wide roster
    (roster_jingdezhen.xlsx); more write one per county in COUNTIES order.
    messy=False writes clean files with no planted bad rows.
    numeric_id_rows: Excel row numbers of the first roster sheet that must
    hold an ID stored as a number (planted as id_numeric).

    Returns: roster_files, payment_files, files (Paths); residents,
    roster_rows, payment_rows (data rows written); bad_rows {"roster":
    {kind: rows}, "payments": {kind: rows}} (exact_duplicate is skipped, not
    rejected; conflicting_duplicate counts both rows); expected (accepted /
    rejected / skipped counts a correct reader reports, RULES.md §6);
    payment_cases (how many people paid in full, underpaid, ...); sheets
    (per sheet: header_row, data, blank and footer rows); planted (one dict
    per bad row: kind, file, sheet, row as Excel shows it, column header,
    raw value, what = roster/payments).
    """
    if rows < 1 or roster_files < 1 or sheets_per_file < 1:
        raise SampleArgumentError("行数、文件数、工作表数至少为1 / rows, roster_files and sheets_per_file "
                                  "must be at least 1")
    if payment_rows is not None and payment_rows < 0:
        raise SampleArgumentError("缴费行数不能为负 / payment_rows must not be negative")
    files = _roster_files(rows, roster_files)
    pay_basis = rows if payment_rows is None else payment_rows
    biggest = max(max(n for *_, n in files), pay_basis) / sheets_per_file
    if biggest * 1.05 + 50 > EXCEL_MAX_ROWS:
        raise SampleArgumentError(f"每张工作表约{int(biggest)}行, 超出Excel上限 / {int(biggest)} rows per "
                                  "sheet do not fit in Excel; raise sheets_per_file or roster_files")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = _Generator(rows, seed, coverage_year, out_dir, payment_rows, messy, sheets_per_file,
                     numeric_id_rows)
    gen.big = rows + pay_basis > CONSTANT_MEMORY_ROWS
    w = _Writer(gen)

    plant_rng = random.Random(f"medins-sample:{seed}:plant")
    roster_plan = _planted_indices(plant_rng, rows, ROSTER_BAD_RATES, messy, rows)
    payment_plan = _planted_indices(plant_rng, min(pay_basis, rows), PAYMENT_BAD_RATES, messy, rows)
    book = _PaymentBook(gen, w, out_dir, payment_plan)

    roster_paths: list[Path] = []
    sheets: list[_Sheet] = []
    g = 0
    for k, (slug, place, counties, n_file) in enumerate(files):
        path, file_sheets, g = _write_roster(gen, w, book, k == 0, slug, place, counties, n_file, g,
                                             roster_plan)
        roster_paths.append(path)
        sheets += file_sheets
    pay_path = book.close()
    return _summary(gen, roster_paths, [pay_path], sheets + book.sheets)


def _emit_due_copies(gen: _Generator, w: _Writer, sh: _Sheet, local: int | None) -> None:
    """Write the duplicate copies whose turn has come (all that are left when local is None)."""
    while sh.copies and (local is None or sh.copies[0][0] <= local) and sh.excel_row not in sh.numeric_rows:
        _, _, what, payload = heapq.heappop(sh.copies)
        if what == "copy":  # the same cells again: merged by the reader, counted as skipped
            raw = payload["id_number"][1]
            sh.emit(payload, ("exact_duplicate", "id_number", str(raw)))
        else:  # the same person under another township: both rows rejected
            others = [t for t in payload.county.townships if t != payload.township]
            cells = w.roster_cells(sh, payload, township=gen.rrng.choice(others))
            sh.emit(cells, ("conflicting_duplicate", "id_number", cells["id_number"][1]))


def _titles(gen: _Generator, title: str, subtitle: str) -> list[str]:
    if not gen.messy:
        return []
    return [title, subtitle] if gen.rrng.random() < 0.5 else [title]


def _sheet_name(base: str, j: int, n: int) -> str:
    return base if n == 1 else f"{base}{j + 1}"


def _cn_date(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _write_footers(gen: _Generator, sh: _Sheet, unit: str) -> None:
    """合计 / 制表人 (/ 备注) rows under the data, which the reader skips and counts."""
    if not gen.messy:
        return
    r = gen.rrng
    if r.random() < 0.5:
        sh.blank()
    sh.footer(f"合计：{sh.data_rows}{unit}")
    clerk, checker = gen._name(r.random() < 0.5, r), gen._name(r.random() < 0.5, r)
    sh.footer(f"制表人：{clerk}  审核人：{checker}  填报日期：{_cn_date(gen.CE + dt.timedelta(days=21))}")
    if r.random() < 0.3:
        sh.footer("备注：本表由乡镇(街道)医保经办机构填报，身份证号码以公安户籍系统为准。")


def _summary(gen: _Generator, roster_paths: list[Path], payment_paths: list[Path],
             sheets: list[_Sheet]) -> dict[str, Any]:
    bad: dict[str, Counter[str]] = {"roster": Counter(), "payments": Counter()}
    for item in gen.planted:
        bad[item["what"]][item["kind"]] += 1
    skipped_dup = bad["roster"]["exact_duplicate"]
    rejected_roster = sum(bad["roster"].values()) - skipped_dup
    rejected_pay = sum(bad["payments"].values())
    info = [sh.info() for sh in sheets]
    roster_rows = sum(s["data_rows"] for s in info if s["kind"] == "roster")
    payment_rows = sum(s["data_rows"] for s in info if s["kind"] == "payments")
    return {
        "coverage_year": gen.year,
        "seed": gen.seed,
        "region": REGION,
        "messy": gen.messy,
        "roster_files": roster_paths,
        "payment_files": payment_paths,
        "files": roster_paths + payment_paths,
        "residents": gen.rows,
        "roster_rows": roster_rows,
        "payment_rows": payment_rows,
        "bad_rows": {k: {kind: n for kind, n in sorted(v.items()) if n} for k, v in bad.items()},
        "expected": {
            "roster_accepted": roster_rows - rejected_roster - skipped_dup,
            "roster_rejected": rejected_roster,
            "roster_skipped_duplicate": skipped_dup,
            "payments_accepted": payment_rows - rejected_pay,
            "payments_rejected": rejected_pay,
            "skipped_blank": sum(s["blank_rows"] for s in info),
            "skipped_footer": sum(s["footer_rows"] for s in info),
        },
        "payment_cases": dict(sorted(gen.cases.items())),
        "sheets": info,
        "planted": gen.planted,
    }


def main_sample(rows: int, seed: int, coverage_year: int, out: Path | str, *,
                payment_rows: int | None = None, roster_files: int = 1, messy: bool = True,
                sheets_per_file: int = 2) -> str:
    """Generate a sample and return a one-line summary for the terminal (CLI `medins sample`)."""
    res = generate_sample(rows, seed, coverage_year, Path(out), payment_rows=payment_rows,
                          roster_files=roster_files, messy=messy, sheets_per_file=sheets_per_file)
    bad = sum(res["bad_rows"]["roster"].values()) + sum(res["bad_rows"]["payments"].values())
    names = ", ".join(p.name for p in res["files"])
    return (f"已生成样例数据 / sample written: {out} ({names}); 花名册 {res['roster_rows']} 行 roster rows, "
            f"缴费 {res['payment_rows']} 行 payment rows, 预置错误行 {bad} planted bad rows")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write deterministic sample roster and payment workbooks.")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--coverage-year", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--payment-rows", type=int, default=None)
    ap.add_argument("--roster-files", type=int, default=1)
    ap.add_argument("--sheets-per-file", type=int, default=2)
    ap.add_argument("--clean", action="store_true", help="no messiness, no planted bad rows")
    a = ap.parse_args()
    print(main_sample(a.rows, a.seed, a.coverage_year, a.out, payment_rows=a.payment_rows,
                      roster_files=a.roster_files, messy=not a.clean, sheets_per_file=a.sheets_per_file))
