"""The people, roster, payments and the two departments' lists of the subsidy-list night of
test_subsidy_lists.py: every listed person is one case of docs/RULES.md §9 (the comment beside each
says which)."""

from __future__ import annotations

import datetime as dt

from builders import PAYMENT_HEADER, ROSTER_HEADER, Person, XDate, make_person, with_wrong_check_digit

TODAY = dt.date(2026, 11, 23)
COUNTY = "浮梁县"
FULIANG, EHU = "浮梁镇", "鹅湖镇"
DONGFENG, TAOSHU = "东风村", "桃墅村"
UNKNOWN = "未知"  # a field the list row leaves empty (docs/RULES.md §9 "Who counts as listed")
GROUP = "农村低收入人口和脱贫人口"
LOW = "城乡低保对象"
LIST_HEADER = ["身份证号", "姓名", "身份类别", "纳入资助时间", "退出时间", "认定部门", "乡镇(街道)", "村(社区)"]
MINZHENG_FILE, XIANGCUN_FILE = "list_a_民政.xlsx", "list_b_乡村振兴.xlsx"  # list_a sorts first
MINZHENG_SHEET, XIANGCUN_SHEET = "民政", "监测对象"
MINZHENG, XIANGCUN = "民政局", "乡村振兴局"


# The people. On the roster unless said otherwise; none carries a roster label but 韩十五.
ZHAO = make_person(1, "赵一", dt.date(1971, 3, 1))  # 低保, and 烈士子女 at 54 (gives nothing); not on the roster
QIAN = make_person(2, "钱二", dt.date(1972, 3, 1))  # 特困 on 民政's list; roster row rejected (参保登记日期 "2025")
CHU_LISTED = make_person(
    3, "褚二", dt.date(1973, 3, 1)
)  # 低保 on 民政's list; the roster has their ID with a bad check digit
SUN = make_person(4, "孙三", dt.date(1974, 3, 1))  # 低保 (listed twice, the copy skipped); unpaid
LI = make_person(5, "李四", dt.date(1975, 3, 1))  # 防止返贫监测对象 on 乡村振兴's list; paid 50 of 80
ZHOU = make_person(6, "周五", dt.date(1976, 3, 1))  # 低保 (民政) + 边缘易致贫人口 (乡村振兴); paid 80
WU = make_person(7, "吴六", dt.date(1977, 3, 1))  # 低保 row ended 2025-12-31: not in force; unpaid
FENG = make_person(8, "冯七", dt.date(1978, 3, 1))  # list row with the unknown label 低保户 (rejected); unpaid
CHEN = make_person(9, "陈八", dt.date(1979, 3, 1))  # list row ended before identified (rejected); unpaid
ZHENG = make_person(
    10, "郑九", dt.date(1980, 3, 1)
)  # 低保 (民政, 浮梁镇) + 脱贫不稳定人口 (乡村振兴, 鹅湖镇); not on the roster
WANG = make_person(11, "王十一", dt.date(1985, 7, 1))  # 烈士子女 aged 40: gives nothing, not listed; not on the roster
WEI = make_person(12, "卫十二", dt.date(1982, 3, 1))  # 医疗救助对象 on 民政's list; paid 400
JIANG = make_person(13, "蒋十三", dt.date(1983, 3, 1))  # 低保 identified 2026-05-01 (after CE); paid 400 -> limited
SHEN = make_person(14, "沈十四", dt.date(1984, 3, 1))  # 低保 identified "202511" (2025-11-01); paid 400 -> 320 back
HAN = make_person(15, "韩十五", dt.date(1945, 3, 1))  # 特困供养人员 on the roster only: not listed
YANG = make_person(16, "杨十六", dt.date(1986, 3, 1))  # ordinary resident; paid 400


def _roster_row(
    n: int,
    p: Person,
    township: str,
    village: str,
    labels: str | None = None,
    registered: str = "2025-10-20",
    id_number: str | None = None,
) -> list:
    return [n, p.name, id_number or p.id_number, COUNTY, township, village, labels, "是", None, None, registered, None]


def _payment(n: int, p: Person, amount: float, paid_on: str) -> list:
    return [n, p.name, p.id_number, amount, paid_on, "2026", f"3360000000000000{n:04d}", "微信"]


def _list_row(
    p: Person, labels: str, identified, ended, department: str | None, township: str | None, village: str | None
) -> list:
    return [p.id_number, p.name, labels, identified, ended, department, township, village]


ROSTER = [
    ROSTER_HEADER,
    _roster_row(1, SUN, FULIANG, DONGFENG),  # row 2
    _roster_row(2, LI, FULIANG, DONGFENG),  # row 3
    _roster_row(3, ZHOU, EHU, TAOSHU),  # row 4
    _roster_row(4, WU, EHU, TAOSHU),  # row 5
    _roster_row(5, FENG, FULIANG, DONGFENG),  # row 6
    _roster_row(6, CHEN, FULIANG, DONGFENG),  # row 7
    _roster_row(7, QIAN, FULIANG, DONGFENG, registered="2025"),  # row 8: a year is not a date
    # row 9: 褚二's number with a bad check digit
    _roster_row(8, CHU_LISTED, FULIANG, DONGFENG, id_number=with_wrong_check_digit(CHU_LISTED.id_number)),
    _roster_row(9, WEI, EHU, TAOSHU),  # row 10
    _roster_row(10, JIANG, FULIANG, DONGFENG),  # row 11
    _roster_row(11, SHEN, EHU, TAOSHU),  # row 12
    _roster_row(12, HAN, FULIANG, DONGFENG, labels="特困供养人员"),  # row 13
    _roster_row(13, YANG, EHU, TAOSHU),  # row 14
]
PAYMENTS = [
    PAYMENT_HEADER,
    _payment(1, LI, 50, "2025-11-03"),
    _payment(2, ZHOU, 80, "2025-11-05"),
    _payment(3, WEI, 400, "2025-11-10"),
    _payment(4, JIANG, 400, "2025-12-01"),
    _payment(5, SHEN, 400, "2025-12-01"),
    _payment(6, YANG, 400, "2025-11-20"),
]
MINZHENG_ROWS = [
    LIST_HEADER,
    _list_row(ZHAO, LOW, "2025-08-01", None, MINZHENG, EHU, TAOSHU),  # row 2
    _list_row(QIAN, "特困人员", XDate(dt.date(2025, 3, 1)), None, MINZHENG, FULIANG, DONGFENG),  # row 3
    _list_row(CHU_LISTED, "低保对象", "2025-03-01", None, MINZHENG, FULIANG, DONGFENG),  # row 4
    _list_row(SUN, LOW, "2025-09-01", None, MINZHENG, FULIANG, DONGFENG),  # row 5
    _list_row(SUN, LOW, "2025-09-01", None, MINZHENG, FULIANG, DONGFENG),  # row 6: exact copy, skipped
    _list_row(ZHOU, LOW, "2025-09-01", None, MINZHENG, EHU, TAOSHU),  # row 7
    _list_row(WU, LOW, "2024-05-01", "2025-12-31", MINZHENG, EHU, TAOSHU),  # row 8: ended before YS
    _list_row(FENG, "低保户", "2025-09-01", None, MINZHENG, FULIANG, DONGFENG),  # row 9: unknown label
    _list_row(CHEN, LOW, "2025-06-01", "2025-03-01", MINZHENG, FULIANG, DONGFENG),  # row 10: ends before it starts
    _list_row(ZHENG, LOW, "2025-07-01", None, MINZHENG, FULIANG, DONGFENG),  # row 11
    _list_row(WANG, "烈士子女", "2025-05-01", None, "退役军人事务局", EHU, TAOSHU),  # row 12
    _list_row(WEI, "医疗救助对象", "2025-04-01", None, MINZHENG, EHU, None),  # row 13
    _list_row(JIANG, LOW, "2026-05-01", None, MINZHENG, FULIANG, DONGFENG),  # row 14
    _list_row(SHEN, LOW, "202511", None, MINZHENG, EHU, TAOSHU),  # row 15
    _list_row(ZHAO, "烈士子女", "2025-05-01", None, "退役军人事务局", FULIANG, DONGFENG),  # row 16
]
XIANGCUN_ROWS = [
    LIST_HEADER,
    _list_row(LI, "防止返贫监测对象", "2025-04-01", None, XIANGCUN, FULIANG, DONGFENG),  # row 2
    _list_row(ZHENG, "脱贫不稳定户", "2024-11-01", None, XIANGCUN, EHU, TAOSHU),  # row 3
    _list_row(ZHOU, "边缘易致贫人口", "2025-10-01", "2026-06-30", XIANGCUN, EHU, TAOSHU),  # row 4: ends within Y
]
