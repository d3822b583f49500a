"""Scoring rules as data: what a marketer edits, stored as one JSON document per version.

`Rules.from_dict` validates everything (fields, operators, regular expressions, numbers) and
raises `RuleError` naming the rule at fault, so an editor can say which rule is wrong and save
nothing. A `Rules` value is immutable; the regular expressions are compiled once and cached.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from app.leads.event_columns import with_send

# Lead columns a fit rule may read; `email_domain` and `attributes.<name>` are derived.
LEAD_FIELDS = ("first_name", "last_name", "company", "job_title", "phone", "country")
FIT_FIELDS = LEAD_FIELDS + ("email_domain",)
ATTRIBUTE_PREFIX = "attributes."
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")

# In the editor's order: plain tests first, the regular expression last, as the advanced one.
FIT_OPERATORS = {
    "contains": "contains",
    "equals": "equals",
    "in": "is one of",
    "present": "is filled in",
    "free_mail": "is a free-mail domain",
    "between": "is a number between",
    "matches": "matches a pattern (advanced)",
}
LIST_OPERATORS = ("contains", "in")  # values are a comma-separated list: any of them

EVENT_TYPES = (
    "form_submitted", "asset_downloaded", "email_sent", "email_delivered", "email_opened",
    "email_clicked", "page_viewed", "site_returned", "unsubscribed", "bounced",
    "subscription_confirmed",
)

# Custom events other systems send through the REST API (`custom.<type>`, app.api.events).
CUSTOM_EVENT = re.compile(r"custom\.[a-z][a-z0-9_]{0,32}")

# Best first. F is every fit below the D band.
GRADES = ("A", "B", "C", "D", "F")

FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
    "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com", "msn.com",
    "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com", "gmx.com",
    "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.com", "yandex.ru", "zoho.com",
    "fastmail.com", "hey.com", "qq.com", "163.com", "126.com", "naver.com", "mail.ru",
    "free.fr", "orange.fr", "laposte.net", "libero.it", "t-online.de", "btinternet.com",
})

# How the "why" names activity: (one, many) per event type.
EVENT_NOUNS = {
    "form_submitted": ("form submission", "form submissions"),
    "asset_downloaded": ("download", "downloads"),
    "email_opened": ("email open", "email opens"),
    "email_clicked": ("email click", "email clicks"),
    "page_viewed": ("visit", "visits"),
    "site_returned": ("return to the site", "returns to the site"),
    "subscription_confirmed": ("subscription confirmed", "subscriptions confirmed"),
}


class RuleError(ValueError):
    """A rule that cannot be saved. `where` names it ("Fit rule 2"); `section` and `index`
    (0-based) locate it in the editor."""

    def __init__(self, where: str, message: str, section: str = "", index: int | None = None):
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.section = section
        self.index = index


@functools.lru_cache(maxsize=512)
def compiled(pattern: str) -> re.Pattern[str]:
    """Rule patterns are case-insensitive searches (`Director` matches "Sales director")."""
    return re.compile(pattern, re.IGNORECASE)


def _check_pattern(pattern: str, where: str, section: str, index: int | None) -> None:
    try:
        compiled(pattern)
    except re.error as exc:
        raise RuleError(where, f"“{pattern}” is not a valid pattern ({exc}).", section,
                        index) from None


def email_domain(email: str | None) -> str:
    return (email or "").rpartition("@")[2].lower()


@dataclass(frozen=True)
class FitRule:
    field: str
    op: str
    value: Any = ""  # str (matches, equals), list[str] (contains, in), [low, high] (between)
    points: int = 0

    def read(self, lead: Any) -> Any:
        """The value this rule looks at on a lead (an ORM Lead or a row with the same names)."""
        if self.field == "email_domain":
            return email_domain(getattr(lead, "email", ""))
        if self.field.startswith(ATTRIBUTE_PREFIX):
            return (getattr(lead, "attributes", None) or {}).get(self.field[len(ATTRIBUTE_PREFIX):])
        return getattr(lead, self.field, None)

    @functools.cached_property
    def _operand(self) -> Any:
        """The rule's value prepared once (pattern compiled, list folded, bounds as numbers):
        a rebuild tests every rule on every lead."""
        if self.op == "matches":
            return compiled(self.value)
        if self.op == "equals":
            return str(self.value).strip().casefold()
        if self.op == "in":
            return frozenset(str(v).strip().casefold() for v in self.value)
        if self.op == "contains":
            return tuple(str(v).strip().casefold() for v in self.value)
        if self.op == "between":
            low, high = self.value
            return float(low), float(high)
        return None

    def test(self, value: Any) -> bool:
        text = "" if value is None else str(value).strip()
        if self.op == "matches":
            return bool(text) and self._operand.search(text) is not None
        if self.op == "equals":
            return text.casefold() == self._operand
        if self.op == "in":
            return text.casefold() in self._operand
        if self.op == "contains":
            folded = text.casefold()
            return any(part in folded for part in self._operand)
        if self.op == "present":
            return bool(text)
        if self.op == "free_mail":
            return text.lower() in FREE_MAIL_DOMAINS
        if self.op == "between":
            try:
                number = float(text)
            except ValueError:
                return False
            low, high = self._operand
            return low <= number <= high
        return False

    def describe(self) -> str:
        """The rule in plain words, for the lead page, alerts and the editor: never the
        pattern of a regular-expression rule (`pattern_in_words`, else "a custom pattern")."""
        field_label = self.field.replace("_", " ")
        if self.op == "matches":
            words = pattern_in_words(self.value)
            return f"{field_label} {words}" if words else f"{field_label} matches a custom pattern"
        if self.op == "equals":
            return f"{field_label} is “{self.value}”"
        if self.op == "in":
            return f"{field_label} is one of {', '.join(map(str, self.value))}"
        if self.op == "contains":
            return f"{field_label} contains {_any_of([f'“{v}”' for v in self.value])}"
        if self.op == "present":
            return f"{field_label} is filled in"
        if self.op == "free_mail":
            return f"{field_label} is a free-mail domain"
        low, high = self.value
        return f"{field_label} is between {low:g} and {high:g}"


def _any_of(items: list[str]) -> str:
    """"a", "a or b", "a, b or c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


# Patterns that only ask for something to be there: \S, ., .+, \w …
_ANYTHING = {r"\S", r"\S+", ".", ".+", r"\w", r"\w+", "^.+$", r"[^\s]"}
_META = set(".^$*+?{}[]()|\\")


def _literal(text: str) -> str | None:
    """The text a regex piece matches literally (escaped punctuation allowed), else None."""
    out, escaped = [], False
    for char in text:
        if escaped:
            if char.isalnum():  # \d, \s, \b …: a class or an anchor, not a literal
                return None
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _META:
            return None
        else:
            out.append(char)
    return None if escaped or not out else "".join(out)


def _alternatives(body: str, anchored: bool) -> list[str] | None:
    """The literals of "a|b|c", "(a|b)" or "(?:a|b)", else None. An `anchored` body (^ … $,
    \\b … \\b) must group its alternatives: in `^a|b$` the anchors bind to a and b alone."""
    grouped = False
    for opening in ("(?:", "("):
        if body.startswith(opening) and body.endswith(")") and not body.endswith("\\)"):
            inner = body[len(opening):-1]
            if "(" not in inner.replace("\\(", "") and ")" not in inner.replace("\\)", ""):
                body, grouped = inner, True
            break
    parts, current, escaped = [], "", False
    for char in body:
        if char == "|" and not escaped:
            parts.append(current)
            current = ""
            continue
        current += char
        escaped = char == "\\" and not escaped
    parts.append(current)
    if anchored and len(parts) > 1 and not grouped:
        return None
    literals = [_literal(part) for part in parts]
    return None if any(item is None for item in literals) else literals  # type: ignore[return-value]


def pattern_in_words(pattern: str) -> str | None:
    r"""A rule's regular expression said in plain words when it is one of the common shapes,
    e.g. `^(CEO|CTO)$` → "is one of CEO, CTO", `\b(VP|Director)\b` → "contains the word “VP”
    or “Director”", `\S` → "is filled in"; None when it cannot be put in words."""
    pattern = (pattern or "").strip()
    if pattern in _ANYTHING:
        return "is filled in"
    start = end = word = False
    body = pattern
    if body.startswith(("^", "\\A")):
        start, body = True, body[1:] if body.startswith("^") else body[2:]
    if body.endswith(("$", "\\Z", "\\z")) and not body.endswith("\\$"):
        end, body = True, body[:-1] if body.endswith("$") else body[:-2]
    if not (start or end) and body.startswith("\\b") and body.endswith("\\b") and len(body) > 4:
        word, body = True, body[2:-2]
    literals = _alternatives(body, start or end or word)
    if not literals:
        return None
    quoted = [f"“{item}”" for item in literals]
    if start and end:
        return f"is “{literals[0]}”" if len(literals) == 1 else f"is one of {', '.join(literals)}"
    if start:
        return f"starts with {_any_of(quoted)}"
    if end:
        return f"ends with {_any_of(quoted)}"
    if word:
        return f"contains the word {_any_of(quoted)}"
    return f"contains {_any_of(quoted)}"


@dataclass(frozen=True)
class EventFilter:
    """An event type with optional filters; empty filters match everything."""

    event_type: str
    url_pattern: str = ""
    form_id: str = ""
    campaign_id: str = ""
    send_id: str = ""  # one send of the ledger (rules saved before `step_id` existed)
    step_id: str = ""  # an email of a sequence: every send of it

    def matches(self, event: Any) -> bool:
        if event.type != self.event_type:
            return False
        data = getattr(event, "data", None)
        if self.send_id or self.step_id:  # the columns of the email it is about, as data
            data = with_send(data, getattr(event, "send_id", None),
                             getattr(event, "step_id", None))
        return self.matches_fields(event.url, event.campaign_id if self.campaign_id else None,
                                   data)

    def matches_fields(self, url: str | None, campaign_id: Any, data: Any) -> bool:
        """The filters beyond the event type, on an event's parts (`matches` and the
        rebuild, which reads events as plain tuples, share this)."""
        if self.url_pattern and compiled(self.url_pattern).search(url or "") is None:
            return False
        if self.campaign_id:
            campaign = campaign_id
            if campaign is None:
                campaign = (data or {}).get("campaign_id")
            if str(campaign) != self.campaign_id:
                return False
        if self.form_id or self.send_id or self.step_id:
            data = data or {}
            if self.form_id and str(data.get("form_id")) != self.form_id:
                return False
            if self.send_id and str(data.get("send_id")) != self.send_id:
                return False
            if self.step_id and str(data.get("step_id")) != self.step_id:
                return False
        return True

    @property
    def filtered(self) -> bool:
        """Has filters beyond the event type."""
        return bool(self.url_pattern or self.form_id or self.campaign_id or self.send_id
                    or self.step_id)

    @property
    def needs_data(self) -> bool:
        return bool(self.form_id or self.send_id or self.step_id)

    # What each filter names, as (kind, value): the kind is the picker's (app.pickers).
    def named(self) -> list[tuple[str, str]]:
        return [(kind, value) for kind, value in (
            ("form", self.form_id), ("campaign", self.campaign_id), ("email", self.step_id),
            ("send", self.send_id)) if value]

    def _details(self, names: Mapping[str, str] | None) -> list[str]:
        """"form “Demo request”" when `names` ("form:4" -> label) knows it, else "form 4"."""
        names = names or {}
        return [f"{kind} “{names[f'{kind}:{value}']}”" if f"{kind}:{value}" in names
                else f"{kind} {value}" for kind, value in self.named()]

    def phrase(self, count: int, names: Mapping[str, str] | None = None) -> str:
        """"2 visits to /pricing", "1 form submission (form “Demo request”)"."""
        one, many = EVENT_NOUNS.get(self.event_type, (self.event_type.replace("_", " "),) * 2)
        text = f"{count} {one if count == 1 else many}"
        if self.url_pattern:
            joiner = " to" if self.event_type == "page_viewed" else " matching"
            text += f"{joiner} {self.url_pattern}"
        details = self._details(names)
        if details:
            text += f" ({', '.join(details)})"
        return text

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        parts = [self.event_type]
        if self.url_pattern:
            parts.append(f"URL /{self.url_pattern}/")
        parts += self._details(names)
        return " · ".join(parts)


@dataclass(frozen=True)
class EngagementRule(EventFilter):
    points: float = 0.0
    daily_cap: float | None = None  # most points this rule gives one lead in one UTC day


@dataclass(frozen=True)
class InstantRule(EventFilter):
    """One matching human event (within `within_days`) makes an MQL at once, when the fit
    grade is at least `min_grade` (any grade when empty)."""

    min_grade: str = ""
    within_days: int = 30


def grade_at_least(grade: str, minimum: str) -> bool:
    return GRADES.index(grade) <= GRADES.index(minimum)


@dataclass(frozen=True)
class Rules:
    fit: tuple[FitRule, ...] = ()
    engagement: tuple[EngagementRule, ...] = ()
    half_life_days: float = 30.0
    # Minimum fit points for A, B, C, D (descending); below D is F.
    grade_bands: tuple[int, int, int, int] = (30, 20, 10, 0)
    mql_grade: str = "C"
    mql_engagement: float = 50.0
    instant: tuple[InstantRule, ...] = ()
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def grade(self, points: int) -> str:
        for grade, minimum in zip(GRADES, self.grade_bands):
            if points >= minimum:
                return grade
        return "F"

    def engagement_by_type(self) -> dict[str, list[tuple[int, EngagementRule, bool]]]:
        """event type -> [(rule number, rule, has filters beyond the type)]."""
        index = self._cache.get("by_type")
        if index is None:
            index = {}
            for number, rule in enumerate(self.engagement):
                index.setdefault(rule.event_type, []).append((number, rule, rule.filtered))
            self._cache["by_type"] = index
        return index

    @property
    def needs_event_data(self) -> bool:
        return any(rule.needs_data for rule in (*self.engagement, *self.instant))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fit": [asdict(rule) for rule in self.fit],
            "engagement": [asdict(rule) for rule in self.engagement],
            "half_life_days": self.half_life_days,
            "grade_bands": list(self.grade_bands),
            "mql_grade": self.mql_grade,
            "mql_engagement": self.mql_engagement,
            "instant": [asdict(rule) for rule in self.instant],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rules:
        """Validate and build. Raises RuleError naming the first rule at fault."""
        fit = tuple(_fit_rule(raw, i) for i, raw in enumerate(data.get("fit") or []))
        engagement = tuple(_engagement_rule(raw, i)
                           for i, raw in enumerate(data.get("engagement") or []))
        instant = tuple(_instant_rule(raw, i) for i, raw in enumerate(data.get("instant") or []))
        half_life = _number(data.get("half_life_days", 30), "Half-life", "settings")
        if half_life <= 0:
            raise RuleError("Half-life", "must be more than 0 days.", "settings")
        bands = tuple(int(_number(v, f"Grade {g}", "grades"))
                      for g, v in zip(GRADES, data.get("grade_bands") or (30, 20, 10, 0)))
        if len(bands) != 4 or list(bands) != sorted(bands, reverse=True):
            raise RuleError("Grades", "the minimum points must go down from A to D.", "grades")
        mql_grade = str(data.get("mql_grade") or "C")
        if mql_grade not in GRADES:
            raise RuleError("MQL threshold", f"“{mql_grade}” is not a grade.", "thresholds")
        mql_engagement = _number(data.get("mql_engagement", 50), "MQL threshold", "thresholds")
        return cls(fit=fit, engagement=engagement, half_life_days=half_life,
                   grade_bands=bands, mql_grade=mql_grade,
                   mql_engagement=mql_engagement, instant=instant)


def _number(value: Any, where: str, section: str, index: int | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RuleError(where, f"“{value}” is not a number.", section, index) from None
    if not math.isfinite(number):
        raise RuleError(where, "must be a finite number.", section, index)
    return number


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def _fit_rule(raw: Mapping[str, Any], index: int) -> FitRule:
    where = f"Fit rule {index + 1}"
    name = _text(raw, "field")
    if name.startswith(ATTRIBUTE_PREFIX):
        if not _ATTRIBUTE_NAME.fullmatch(name[len(ATTRIBUTE_PREFIX):]):
            raise RuleError(where, f"“{name}” is not a valid attribute name.", "fit", index)
    elif name not in FIT_FIELDS:
        raise RuleError(where, f"there is no lead field “{name}” (use one of "
                        f"{', '.join(FIT_FIELDS)} or attributes.<name>).", "fit", index)
    op = _text(raw, "op")
    if op not in FIT_OPERATORS:
        raise RuleError(where, f"“{op}” is not an operator.", "fit", index)
    value: Any = raw.get("value")
    if op == "matches":
        value = _text(raw, "value")
        if not value:
            raise RuleError(where, "a pattern is required.", "fit", index)
        _check_pattern(value, where, "fit", index)
    elif op == "equals":
        value = _text(raw, "value")
    elif op in LIST_OPERATORS:
        items = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
        value = [str(v).strip() for v in items if str(v).strip()]
        if not value:
            raise RuleError(where, "list at least one value.", "fit", index)
    elif op == "between":
        items = value if isinstance(value, (list, tuple)) else re.split(r"\s*(?:,|\.\.|–|-(?=\d))\s*",
                                                                         str(value or "").strip())
        if len(items) != 2:
            raise RuleError(where, "give two numbers, low and high (for example 50, 500).",
                            "fit", index)
        low, high = (_number(v, where, "fit", index) for v in items)
        if low > high:
            raise RuleError(where, "the low number is above the high one.", "fit", index)
        value = [low, high]
    else:
        value = ""
    points = _number(raw.get("points"), where, "fit", index)
    return FitRule(field=name, op=op, value=value, points=int(points))


def _filter_values(raw: Mapping[str, Any], where: str, section: str,
                   index: int) -> dict[str, str]:
    event_type = _text(raw, "event_type")
    if event_type not in EVENT_TYPES and not CUSTOM_EVENT.fullmatch(event_type):
        raise RuleError(where, f"“{event_type}” is not an event type.", section, index)
    url_pattern = _text(raw, "url_pattern")
    if url_pattern:
        _check_pattern(url_pattern, where, section, index)
    return {"event_type": event_type, "url_pattern": url_pattern,
            "form_id": _text(raw, "form_id"), "campaign_id": _text(raw, "campaign_id"),
            "send_id": _text(raw, "send_id"), "step_id": _text(raw, "step_id")}


def _engagement_rule(raw: Mapping[str, Any], index: int) -> EngagementRule:
    where = f"Engagement rule {index + 1}"
    values = _filter_values(raw, where, "engagement", index)
    points = _number(raw.get("points"), where, "engagement", index)
    cap_raw = raw.get("daily_cap")
    cap = None
    if cap_raw not in (None, ""):
        cap = _number(cap_raw, where, "engagement", index)
        if cap <= 0:
            raise RuleError(where, "the daily cap must be more than 0 (or empty for none).",
                            "engagement", index)
    return EngagementRule(points=points, daily_cap=cap, **values)


def _instant_rule(raw: Mapping[str, Any], index: int) -> InstantRule:
    where = f"Instant-MQL rule {index + 1}"
    values = _filter_values(raw, where, "instant", index)
    min_grade = _text(raw, "min_grade")
    if min_grade and min_grade not in GRADES:
        raise RuleError(where, f"“{min_grade}” is not a grade.", "instant", index)
    within = _number(raw.get("within_days") or 30, where, "instant", index)
    if within <= 0:
        raise RuleError(where, "“within days” must be more than 0.", "instant", index)
    return InstantRule(min_grade=min_grade, within_days=int(within), **values)


TARGET_COUNTRIES = ["US", "GB", "CA", "DE", "FR", "NL", "IE", "AU"]

DEFAULT_RULES: dict[str, Any] = {
    "fit": [
        {"field": "job_title", "op": "matches", "value": r"\b(VP|Vice President|Director|Head)\b",
         "points": 15},
        {"field": "email_domain", "op": "free_mail", "value": "", "points": -10},
        {"field": "country", "op": "in", "value": TARGET_COUNTRIES, "points": 10},
        {"field": "company", "op": "present", "value": "", "points": 5},
    ],
    "engagement": [
        {"event_type": "form_submitted", "points": 15, "daily_cap": 30},
        {"event_type": "asset_downloaded", "points": 10, "daily_cap": 20},
        {"event_type": "email_clicked", "points": 5, "daily_cap": 15},
        {"event_type": "email_opened", "points": 1, "daily_cap": 3},
        {"event_type": "site_returned", "points": 5, "daily_cap": 10},
        {"event_type": "page_viewed", "url_pattern": "/pricing", "points": 20, "daily_cap": 20},
    ],
    "half_life_days": 30,
    "grade_bands": [30, 20, 10, 0],
    "mql_grade": "C",
    "mql_engagement": 50,
    "instant": [],
}


def default_rules() -> Rules:
    return Rules.from_dict(DEFAULT_RULES)


